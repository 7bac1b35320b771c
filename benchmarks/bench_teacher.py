"""Throughput of the teacher engine against the fake OpenAI server run as its own process.

Three scenarios, each with a fresh server process and the project's real prompts on a synthetic COCO split:

- latency-bound: no limits, so the ceiling is concurrency / latency. The engine runs beside a bare ``AsyncOpenAI``
  loop at the same concurrency (a semaphore and ``gather``, nothing else) and a sequential baseline (one at a time).
- RPM-bound and TPM-bound: the server enforces the limit (429 + Retry-After when exceeded) and the engine is told the
  same limit; the ceiling is RPM / 60 or TPM / 60 / tokens per request (the server's own token count per request).

Achieved rates come from the server's request log (answers with status 200 per second over the middle 80% of
the answers), never from the client. Goals: the engine reaches >= 90% of the bare loop, and >= 90% of the RPM/TPM
ceiling when that is the binding limit.

    .venv/bin/python benchmarks/bench_teacher.py            # ~1 minute
    .venv/bin/python benchmarks/bench_teacher.py --scale 2  # twice the requests per scenario
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keypoint_instruct.coco.annotations import load_scenes  # noqa: E402
from keypoint_instruct.coco.context import select_scenes  # noqa: E402
from keypoint_instruct.coco.synthetic import write_coco_tree  # noqa: E402
from keypoint_instruct.llm.online.engine import EngineSettings, run_requests  # noqa: E402
from keypoint_instruct.llm.providers.openai import OpenAIChat  # noqa: E402
from keypoint_instruct.llm.request import GenerationSettings  # noqa: E402
from keypoint_instruct.llm.store.cache import ResponseCache  # noqa: E402
from keypoint_instruct.teacher.requests import build_requests  # noqa: E402
from keypoint_instruct.vocab import TASKS  # noqa: E402
from tests.fake_openai import estimate_tokens  # noqa: E402


class Server:
    """``python -m tests.fake_openai`` as a child process with a JSONL request log."""

    def __init__(self, workdir: Path, name: str, *args: str) -> None:
        self.log = workdir / f"{name}.jsonl"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_openai", "--port", "0", "--log", str(self.log), *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.url = self.proc.stdout.readline().strip()

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def rate(self) -> tuple[float, int, int]:
        """(answers per second in the steady state, answers, 429s) from the log.

        The steady state is the middle 80% of the answers: the first ones ride on the allowance a rate bucket
        holds at the start and the last ones on the tail of the queue.
        """
        entries = self.entries()
        ok = sorted(e["time"] for e in entries if e["status"] == 200)
        refused = sum(e["status"] == 429 for e in entries)
        lo, hi = int(0.1 * len(ok)), int(0.9 * len(ok)) - 1
        if hi <= lo:
            lo, hi = 0, len(ok) - 1
        rate = (hi - lo) / (ok[hi] - ok[lo]) if hi > lo and ok[hi] > ok[lo] else 0.0
        return rate, len(ok), refused

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


async def bare_loop(url: str, bodies: list[dict], concurrency: int) -> None:
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="bench", max_retries=0)
    gate = asyncio.Semaphore(concurrency)

    async def one(body: dict) -> None:
        async with gate:
            await client.chat.completions.create(**body)

    await asyncio.gather(*(one(b) for b in bodies))
    await client.close()


def engine_run(url: str, requests, cache_path: Path, **settings) -> None:
    async def go() -> None:
        teacher = OpenAIChat(base_url=url)
        with ResponseCache(cache_path, create=True) as cache:
            await run_requests(teacher, requests, cache, EngineSettings(progress=False, **settings))
        await teacher.aclose()

    asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the requests of every scenario")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (engine and bare loop)")
    args = parser.parse_args()
    conc = args.concurrency
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_coco_tree(work / "coco", "train2017", 400, seed=1, draw_images=False)
        scenes = select_scenes(load_scenes(work / "coco", "train2017").values())
        requests = [r for task in TASKS for r in build_requests(scenes, task, GenerationSettings(), "paper")]
        tokens = sum(estimate_tokens(r.body["messages"]) + r.body["max_tokens"] for r in requests) / len(requests)
        print(
            f"{len(requests)} distinct requests from {len(scenes)} synthetic train2017 images; "
            f"{tokens:.0f} tokens per request (server count incl. max_tokens)"
        )
        n = lambda k: min(len(requests), int(k * args.scale))  # noqa: E731
        rows = []

        # 1. latency-bound
        latency = 0.5
        ceiling = conc / latency
        for label, fn in (
            ("engine", lambda url, reqs: engine_run(url, reqs, work / "a.sqlite", concurrency=conc)),
            ("bare AsyncOpenAI loop", lambda url, reqs: asyncio.run(bare_loop(url, [r.body for r in reqs], conc))),
            ("sequential (1 in flight)", lambda url, reqs: asyncio.run(bare_loop(url, [r.body for r in reqs], 1))),
        ):
            server = Server(work, label.split()[0], "--latency", str(latency))
            count = n(8) if label.startswith("sequential") else n(384)
            fn(server.url, requests[:count])
            rate, ok, refused = server.rate()
            server.stop()
            top = 1 / latency if label.startswith("sequential") else ceiling
            rows.append((f"latency {latency}s, c={conc}", label, ok, refused, rate, top))

        # 2. RPM-bound: 1800 RPM = 30 req/s < 32 / 0.3 s
        rpm, latency = 1800, 0.3
        server = Server(work, "rpm", "--latency", str(latency), "--rpm", str(rpm))
        engine_run(server.url, requests[: n(240)], work / "b.sqlite", concurrency=conc, rpm=rpm)
        rate, ok, refused = server.rate()
        server.stop()
        rows.append(
            (
                f"RPM {rpm}, latency {latency}s, c={conc}",
                "engine --rpm",
                ok,
                refused,
                rate,
                min(conc / latency, rpm / 60),
            )
        )

        # 2b. the same limit, not told to the engine: it follows the x-ratelimit-* headers
        server = Server(work, "rpm-headers", "--latency", str(latency), "--rpm", str(rpm))
        engine_run(server.url, requests[: n(240)], work / "b2.sqlite", concurrency=conc)
        rate, ok, refused = server.rate()
        server.stop()
        rows.append(
            (
                f"RPM {rpm}, latency {latency}s, c={conc}",
                "engine, headers only",
                ok,
                refused,
                rate,
                min(conc / latency, rpm / 60),
            )
        )

        # 3. TPM-bound: 20 requests/s worth of tokens
        subset = requests[: n(160)]
        per_request = sum(estimate_tokens(r.body["messages"]) + r.body["max_tokens"] for r in subset) / len(subset)
        tpm = int(20 * 60 * per_request)
        server = Server(work, "tpm", "--latency", str(latency), "--tpm", str(tpm))
        engine_run(server.url, subset, work / "c.sqlite", concurrency=conc, tpm=tpm)
        rate, ok, refused = server.rate()
        server.stop()
        rows.append(
            (
                f"TPM {tpm}, latency {latency}s, c={conc}",
                "engine --tpm",
                ok,
                refused,
                rate,
                min(conc / latency, tpm / 60 / per_request),
            )
        )

    bare = next(r[4] for r in rows if r[1].startswith("bare"))
    print(
        f"\n{'scenario':34} {'client':26} {'answers':>7} {'429s':>5} {'req/s':>7} {'ceiling':>7} "
        f"{'of ceiling':>10} {'of bare':>8}"
    )
    for scenario, label, ok, refused, rate, top in rows:
        of_bare = f"{rate / bare:.1%}" if label == "engine" else ""
        print(f"{scenario:34} {label:26} {ok:7d} {refused:5d} {rate:7.2f} {top:7.2f} {rate / top:10.1%} {of_bare:>8}")


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"\n(benchmark took {time.monotonic() - started:.0f} s)")
