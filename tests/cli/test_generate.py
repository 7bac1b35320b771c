"""`keypoint-instruct generate` / `cache` through the real CLI against the fake OpenAI server."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import quicktok

from keypoint_instruct.cli import main
from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.context import select_scenes
from keypoint_instruct.llm.request import Completion, GenerationSettings, request_key
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.llm.store.claims import Claims
from keypoint_instruct.teacher.requests import build_requests
from keypoint_instruct.teacher.templates import load_prompt
from keypoint_instruct.vocab import TASKS
from tests.paths import REPO

CLI = [sys.executable, "-m", "keypoint_instruct"]
SECRET = "sk-test-DO-NOT-LEAK-7f3a9c"


def generate_args(coco_root, cache, *extra) -> list[str]:
    return ["generate", "--coco-root", str(coco_root), "--split", "val2014", "--cache", str(cache), *extra]


def run_argv(coco_root, cache, url) -> list[str]:
    """A real `generate` process: all tasks of 16 images (48 requests), 4 in flight."""
    argv = generate_args(coco_root, cache, "--task", "all", "--limit", "16", "--base-url", url)
    return [*CLI, *argv, "--concurrency", "4", "--no-progress"]


def selected_images(coco_root, limit=None) -> list[int]:
    return [s.image_id for s in select_scenes(load_scenes(coco_root, "val2014").values(), limit=limit)]


def one_line_error(capsys, code: int, expected: int = 2) -> str:
    err = capsys.readouterr().err
    assert code == expected, err
    lines = [line for line in err.splitlines() if not line.startswith(("INFO ", "DEBUG "))]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@contextmanager
def started_server(tmp_path, latency: float):
    """The fake server as its own process with a request log file (as a crash test needs)."""
    log = tmp_path / "server.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_openai", "--port", "0", "--latency", str(latency), "--log", str(log)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url, log
    finally:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def server_process(tmp_path):
    with started_server(tmp_path, 0.1) as server:
        yield server


@pytest.fixture
def slow_server_process(tmp_path):
    """Answers take 0.4 s: a run of 48 requests at concurrency 4 lasts about 5 s, long enough to overlap another."""
    with started_server(tmp_path, 0.4) as server:
        yield server


def read_log(path: Path) -> list[dict]:
    """The server's JSONL log; a last line still being written is left out."""
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line.strip()]


def answers_in(cache_path: Path) -> int:
    try:
        with sqlite3.connect(f"file:{cache_path}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def test_kill_minus_nine_then_rerun_pays_each_request_once(server_process, coco_root, tmp_path):
    url, log_path = server_process
    cache_path = tmp_path / "crash.sqlite"
    argv = [
        *CLI,
        *generate_args(
            coco_root,
            cache_path,
            "--task",
            "all",
            "--limit",
            "16",
            "--base-url",
            url,
            "--concurrency",
            "4",
            "--no-progress",
        ),
    ]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if answers_in(cache_path) >= 12:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL

    with ResponseCache(cache_path) as cache:
        saved_before = {r.key for r in cache.iter_responses()}
        left = Claims(cache).stale()  # the dead run's claims: the requests it held and had not answered
    sent_before = len(read_log(log_path))
    assert 12 <= len(saved_before) < 48  # it really died in the middle, with answers committed
    assert left and not left & saved_before

    rerun = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"48 requests: {len(saved_before)} already cached" in rerun.stdout
    # One line says what becomes of all of them, and the summary that every one was taken over.
    assert (
        f"the cache holds {len(left)} claims of runs that ended without releasing them (a run killed with kill -9 "
        f"leaves its claims): {len(left)} on requests of this run, taken over as the run reaches them (4 at a time)"
    ) in rerun.stderr
    assert rerun.stdout.strip().endswith(f"; took over {len(left)} claims of ended runs"), rerun.stdout

    resent = [request_key(e["body"]) for e in read_log(log_path)[sent_before:]]
    assert not saved_before & set(resent)  # no request for an already-cached key reached the server
    with ResponseCache(cache_path) as cache:
        rows = list(cache.iter_responses())
    assert len(rows) == len({r.key for r in rows}) == 48
    assert {(r.task, r.image_id) for r in rows} == {
        (task, image_id)
        for task in ("conversation", "detailed_description", "complex_reasoning")
        for image_id in selected_images(coco_root, 16)
    }
    assert all(r.finish_reason == "stop" and r.model == "gpt-4o-2024-08-06" for r in rows)


def test_ctrl_c_stops_cleanly_keeps_every_paid_answer_and_prints_the_summary(server_process, coco_root, tmp_path):
    url, log_path = server_process
    cache_path = tmp_path / "sigint.sqlite"
    argv = run_argv(coco_root, cache_path, url)
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_answers(cache_path, 8)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command again" in err
    assert out.startswith("interrupted: 48 requests: 0 already cached"), out
    answered = int(re.search(r"(\d+) answered", out)[1])
    assert 8 <= answered < 48 and answers_in(cache_path) == answered
    # Every answer the server gave reached the cache: the requests in flight were allowed to finish.
    assert len([e for e in read_log(log_path) if e["status"] == 200]) == answered

    rerun = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"48 requests: {answered} already cached" in rerun.stdout
    ok_keys = [request_key(e["body"]) for e in read_log(log_path) if e["status"] == 200]
    assert len(ok_keys) == len(set(ok_keys)) == 48  # each request paid once over both runs


def wait_for_answers(cache_path: Path, n: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and answers_in(cache_path) < n:
        time.sleep(0.05)
    assert answers_in(cache_path) >= n


def test_two_runs_on_one_cache_send_each_request_once(slow_server_process, coco_root, tmp_path):
    url, log_path = slow_server_process
    cache_path = tmp_path / "shared.sqlite"
    argv = run_argv(coco_root, cache_path, url)
    first = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_answers(cache_path, 4)  # the first run is under way (and has more than a chunk left)
    second = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, err + second.stderr

    sent = [request_key(e["body"]) for e in read_log(log_path) if e["path"] == "/v1/chat/completions"]
    assert len(sent) == len(set(sent)) == 48  # each request sent exactly once over both runs
    assert answers_in(cache_path) == 48
    skipped = int(re.search(r"(\d+) being sent by another run", second.stdout)[1])
    assert skipped > 0 and f"{skipped} requests are being sent by another run on this cache" in second.stderr
    answered = [int(re.search(r"(\d+) answered", text)[1]) for text in (out, second.stdout)]
    assert sum(answered) == 48 and answered[1] > 0  # the second run took its share, not nothing


def test_a_stopped_runs_claims_are_taken_over_after_the_lease(slow_server_process, coco_root, tmp_path):
    url, log_path = slow_server_process
    cache_path = tmp_path / "stopped.sqlite"
    argv = run_argv(coco_root, cache_path, url)
    stuck = subprocess.Popen(
        [*argv, "--claim-lease", "1"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_answers(cache_path, 4)
        stuck.send_signal(signal.SIGSTOP)  # alive (its process exists) but no longer renewing its claims
        with ResponseCache(cache_path) as cache:
            keys = [request_key(r.body) for r in all_requests(coco_root, 16)]
            held = Claims(cache).held_elsewhere(keys)
            saved = cache.answered(keys)
        assert held and not held & saved  # its claims still bind: the lease has not run out
        time.sleep(1.2)
        with ResponseCache(cache_path) as cache:
            assert not Claims(cache).held_elsewhere(keys)
        sent_before = len(read_log(log_path))
        rerun = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
    finally:
        stuck.kill()
        stuck.wait(10)
    assert rerun.returncode == 0, rerun.stderr
    assert "being sent by another run" not in rerun.stdout + rerun.stderr  # every claim was taken over
    assert answers_in(cache_path) == 48
    resent = {request_key(e["body"]) for e in read_log(log_path)[sent_before:]}
    assert not resent & saved  # nothing answered before was sent again


def all_requests(coco_root, limit):
    scenes = select_scenes(load_scenes(coco_root, "val2014").values(), limit=limit)
    return [r for task in TASKS for r in build_requests(scenes, task, GenerationSettings(), "paper", "val2014")]


def test_faulty_endpoint_completes_and_never_leaks_the_key(
    fake_openai, coco_root, tmp_path, capsys, caplog, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    fake_openai.set_faults(rate=0.2, seed=11, stall_s=0.6, retry_after_s=0.05)
    cache_path = tmp_path / "faults.sqlite"
    code = main(
        [
            "-v",
            *generate_args(
                coco_root,
                cache_path,
                "--task",
                "conversation",
                "--base-url",
                fake_openai.base_url,
                "--request-timeout",
                "0.3",
                "--max-attempts",
                "10",
            ),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    images = selected_images(coco_root)
    assert f"{len(images)} requests: 0 already cached, 0 waiting in a batch, {len(images)} answered" in out
    with ResponseCache(cache_path) as cache:
        assert sorted(r.image_id for r in cache.iter_responses()) == sorted(images)
        assert cache.stats().failed_attempts > 0
    time.sleep(0.7)  # let stalled requests finish on the server
    assert any(e.fault for e in fake_openai.chat_log())
    files = [p for p in tmp_path.iterdir() if p.name.startswith("faults.sqlite")]
    for blob in [out, err, caplog.text] + [p.read_bytes().decode("latin-1") for p in files]:
        assert SECRET not in blob


def test_no_key_and_no_url_is_one_line(coco_root, tmp_path, capsys):
    code = main(generate_args(coco_root, tmp_path / "c.sqlite", "--task", "conversation", "--limit", "1"))
    line = one_line_error(capsys, code)
    assert "OPENAI_API_KEY" in line and "--base-url" in line
    assert not (tmp_path / "c.sqlite").exists()


@pytest.mark.parametrize(
    ("access", "fault", "extra", "expected"),
    [
        ({"api_key": "sk-the-right-one-0000"}, None, (), ("HTTP 401", "OPENAI_API_KEY")),
        ({"models": {"gpt-4o-2024-08-06"}}, None, ("--model", "gpt-4x"), ("HTTP 404", "'gpt-4x'", "--model")),
        ({}, None, ("--base-url-path", "/v2"), ("HTTP 404", "--base-url")),
        ({"reasoning_models": {"gpt-4o-2024-08-06"}}, None, (), ("HTTP 400", "refuses a setting", "max_tokens")),
        ({}, "insufficient_quota", (), ("HTTP 429 insufficient_quota", "no quota or credit left")),
        ({}, "payment_required", (), ("HTTP 402", "no quota or credit left")),
    ],
    ids=["wrong-key", "wrong-model", "wrong-path", "refused-parameter", "no-quota", "no-credit"],
)
def test_a_refusing_endpoint_stops_the_run_after_one_request_with_one_line(
    fake_openai, coco_root, tmp_path, capsys, monkeypatch, access, fault, extra, expected
):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    fake_openai.set_access(**access)
    fake_openai.set_faults(rule=(lambda body: fault) if fault else None)  # every request would get it
    url = fake_openai.base_url
    if extra[:1] == ("--base-url-path",):
        url, extra = url.removesuffix("/v1") + extra[1], ()
    argv = generate_args(coco_root, tmp_path / "c.sqlite", "--task", "all", "--base-url", url, *extra)
    line = one_line_error(capsys, main([*argv, "--concurrency", "16", "--no-progress"]))
    assert all(part in line for part in expected), line
    assert SECRET not in line and SECRET[-6:] not in line
    assert len(fake_openai.log()) == 1  # one request went first; the other 15 slots never sent theirs


def test_unreachable_endpoint_stops_after_one_request_exhausts_its_attempts(coco_root, tmp_path, capsys):
    argv = generate_args(coco_root, tmp_path / "c.sqlite", "--task", "all", "--base-url", "http://127.0.0.1:9/v1")
    line = one_line_error(capsys, main([*argv, "--max-attempts", "2", "--no-progress"]), expected=1)
    assert "no request has been answered yet" in line and "--base-url" in line and "connection" in line, line
    assert "run the same command again" in line


def test_an_endpoint_failing_every_request_with_500_stops_short_with_exit_1(fake_openai, coco_root, tmp_path, capsys):
    fake_openai.set_faults(rule=lambda body: "500")
    argv = generate_args(coco_root, tmp_path / "c.sqlite", "--task", "all", "--base-url", fake_openai.base_url)
    line = one_line_error(capsys, main([*argv, "--max-attempts", "2", "--no-progress"]), expected=1)
    assert line.startswith("keypoint-instruct: error: stopped: no request has been answered yet and one just failed 2")
    assert "HTTP 500" in line
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        assert cache.stats().responses == 0 and not Claims(cache).stale()  # nothing stored, every claim released


def test_an_empty_answer_is_paid_for_retried_and_never_stored(fake_openai, coco_root, tmp_path, capsys):
    empty = []  # the first request to arrive is always answered empty

    def rule(body):
        empty[:] = empty or [body["messages"]]
        return "empty" if body["messages"] == empty[0] else None

    fake_openai.set_faults(rule=rule)
    cache_path = tmp_path / "c.sqlite"
    argv = generate_args(coco_root, cache_path, "--task", "conversation", "--limit", "3", "--base-url")
    argv = [*argv, fake_openai.base_url, "--max-attempts", "3", "--no-progress"]
    assert main(argv) == 1  # given up after its attempts: stopped short
    out = capsys.readouterr().out
    assert "2 answered (stop 2), 1 gave up; 5 attempts, 3 failed (3 empty answers, paid and retried)" in out
    paid = float(re.search(r"\$(\d+\.\d+);", out)[1])
    with ResponseCache(cache_path) as cache:
        stats = cache.stats()
        stored = sum(r.cost_usd for r in cache.iter_responses())
        reasons = [f["reason"] for f in cache.failures()]
    assert stats.responses == 2 and [row["status"] for row in stats.rows] == ["ok"]
    assert len(reasons) == 3 and all("empty answer (finish_reason stop;" in r and " paid)" in r for r in reasons)
    assert stats.empty_answers == 3 and stats.empty_usd > 0
    assert paid == pytest.approx(stored + stats.empty_usd, abs=1e-4)  # the run's summary counts what they cost
    assert main(["cache", "stats", "--cache", str(cache_path)]) == 0
    assert "empty answers paid for: 3" in capsys.readouterr().out

    fake_openai.set_faults()  # the endpoint answers it now: a rerun asks again for that one request only
    fake_openai.clear_log()
    assert main(argv) == 0
    assert "3 requests: 2 already cached, 0 waiting in a batch, 1 answered (stop 1)" in capsys.readouterr().out
    assert len(fake_openai.chat_log()) == 1


def test_an_empty_answer_then_a_real_one_completes_the_run(fake_openai, coco_root, tmp_path, capsys):
    fake_openai.set_faults(script=["empty"])
    argv = generate_args(coco_root, tmp_path / "c.sqlite", "--task", "conversation", "--limit", "3", "--base-url")
    assert main([*argv, fake_openai.base_url, "--no-progress"]) == 0
    assert "3 answered (stop 3), 0 gave up; 4 attempts, 1 failed (1 empty answers" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra",
    [
        ("--task", "all", "--shard", "2/2"),
        ("--task", "poses"),
        ("--task", "all", "--concurrency", "0"),
        ("--task", "all", "--teacher", "offline", "--base-url", "http://127.0.0.1:9/v1"),
        ("--task", "all", "--teacher", "offline", "--cache", "/proc/no-such-dir/c.sqlite"),
    ],
)
def test_bad_options_are_one_line(coco_root, tmp_path, capsys, extra):
    with pytest.raises(SystemExit) as caught:
        code = main(generate_args(coco_root, tmp_path / "c.sqlite", *extra))
        raise SystemExit(code)
    one_line_error(capsys, caught.value.code)


def test_missing_coco_root_is_one_line(tmp_path, capsys):
    code = main(generate_args(tmp_path / "nowhere", tmp_path / "c.sqlite", "--task", "all", "--teacher", "offline"))
    assert "nowhere" in one_line_error(capsys, code)


def test_offline_teacher_shards_and_merge(coco_root, tmp_path, capsys):
    for index in range(2):
        argv = generate_args(
            coco_root,
            tmp_path / f"s{index}.sqlite",
            "--task",
            "all",
            "--teacher",
            "offline",
            "--limit",
            "10",
            "--shard",
            f"{index}/2",
            "--no-progress",
        )
        assert main(argv) == 0
    assert (
        main(
            ["cache", "merge", str(tmp_path / "all.sqlite"), str(tmp_path / "s0.sqlite"), str(tmp_path / "s1.sqlite")]
        )
        == 0
    )
    capsys.readouterr()
    whole = generate_args(
        coco_root, tmp_path / "all.sqlite", "--task", "all", "--teacher", "offline", "--limit", "10", "--no-progress"
    )
    assert main(whole) == 0  # the union of the shards is the whole selection: nothing left to send
    assert "30 requests: 30 already cached, 0 waiting in a batch, 0 answered" in capsys.readouterr().out
    with ResponseCache(tmp_path / "all.sqlite") as cache:
        rows = list(cache.iter_responses())
    assert {r.model for r in rows} == {"offline-posefacts"} and len(rows) == 30
    assert {r.image_id for r in rows} == set(selected_images(coco_root, 10))


def test_stage_cli_imports_no_heavy_library():
    code = (
        "import sys, argparse, importlib; from keypoint_instruct.cli import COMMAND_MODULES; "
        "sub = argparse.ArgumentParser().add_subparsers(); "
        "[importlib.import_module(f'keypoint_instruct.cli.{m}').register(sub) for m in COMMAND_MODULES]; "
        "print(sorted(m for m in ('openai', 'httpx2', 'torch', 'datasets', 'tqdm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def hand_count(messages: list[dict]) -> int:
    """o200k tokens of a chat body as OpenAI bills it: 3 per message around role + content, 3 to prime the reply."""
    enc = quicktok.get_encoding("o200k_base")
    return 3 + sum(3 + len(enc.encode(m["role"])) + len(enc.encode(m["content"])) for m in messages)


def test_dry_run_figures_equal_a_hand_count(coco_root, tmp_path, capsys):
    scenes = select_scenes(load_scenes(coco_root, "val2014").values(), limit=6)
    requests = [r for task in TASKS for r in build_requests(scenes, task, GenerationSettings(), "paper", "val2014")]
    cache_path = tmp_path / "dry.sqlite"
    assert main(generate_args(coco_root, cache_path, "--task", "all", "--limit", "6", "--dry-run")) == 0
    assert not cache_path.exists()  # a dry run creates nothing
    with ResponseCache(cache_path, create=True) as cache:  # two answered already: left out of the estimate
        for request in requests[:2]:
            cache.put(request, Completion("x", "stop", 1, 1, 0, "gpt-4o-2024-08-06"), 0.0)
    assert main(generate_args(coco_root, cache_path, "--task", "all", "--limit", "6", "--dry-run")) == 0
    out = capsys.readouterr().out.split("requests selected:")[-1]
    todo = requests[2:]

    enc = quicktok.get_encoding("o200k_base")
    input_tokens = sum(hand_count(r.body["messages"]) for r in todo)
    expected = {
        task: round(sum(len(enc.encode(resp)) for _, resp in load_prompt(task).examples) / 2) for task in TASKS
    }
    output_tokens = sum(expected[r.task] for r in todo)
    sync = (input_tokens * 2.50 + output_tokens * 10.00) / 1e6
    assert f" 18; already cached: 2; waiting in a batch: 0; to send: {len(todo)}" in out
    assert f"estimated input tokens: {input_tokens:,} (counted with o200k (quicktok-v1), exact" in out
    assert f"estimated output tokens: {output_tokens:,} " in out
    assert f"estimated cost sync: ${sync:,.2f} without prompt-cache hits" in out
    assert f"estimated cost Batch API: ${sync / 2:,.2f}" in out
    # every request after the first of its task can hit the prompt cache on its static prefix, in steps of 128
    cacheable = 0
    for task in TASKS:
        mine = [r for r in todo if r.task == task]
        prefix = hand_count(mine[0].body["messages"][:-1]) - 3  # no reply priming inside a prefix
        cacheable += (len(mine) - 1) * (prefix // 128 * 128)
    assert f"{cacheable:,} of them in repeated static prefixes" in out
    assert f"${sync - cacheable * (2.50 - 1.25) / 1e6:,.2f} if every repeated prefix hits the cache" in out


def test_batch_round_trip_then_generate_sends_nothing(fake_openai, coco_root, tmp_path, capsys):
    cache_path = tmp_path / "batch.sqlite"
    select = [
        "--task",
        "all",
        "--coco-root",
        str(coco_root),
        "--split",
        "val2014",
        "--cache",
        str(cache_path),
        "--limit",
        "5",
        "--base-url",
        fake_openai.base_url,
    ]
    assert main(["batch", "submit", *select, "--out-dir", str(tmp_path / "jsonl")]) == 0
    assert "submitted 15 requests" in capsys.readouterr().out
    assert main(["batch", "status", "--cache", str(cache_path), "--base-url", fake_openai.base_url]) == 0
    assert "in_progress" in capsys.readouterr().out
    fake_openai.complete_batches()
    for added in (15, 0):  # collected exactly once
        assert main(["batch", "collect", "--cache", str(cache_path), "--base-url", fake_openai.base_url]) == 0
        assert f"{added} answers added" in capsys.readouterr().out
    with ResponseCache(cache_path) as cache:
        rows = list(cache.iter_responses())
    assert len(rows) == 15 and all(r.cost_usd > 0 for r in rows)
    assert main(["generate", *select, "--no-progress"]) == 0
    assert "15 requests: 15 already cached, 0 waiting in a batch, 0 answered" in capsys.readouterr().out
    assert fake_openai.chat_log() == []  # batch answers are the same cache keys: nothing sent again


def test_generate_never_resends_what_waits_in_a_batch(fake_openai, coco_root, tmp_path, capsys):
    cache_path = tmp_path / "pending.sqlite"
    select = ["--coco-root", str(coco_root), "--split", "val2014", "--cache", str(cache_path), "--limit", "4"]
    endpoint = ["--base-url", fake_openai.base_url]
    assert main(["batch", "submit", "--task", "conversation", *select, *endpoint]) == 0
    capsys.readouterr()
    # the batch is still running: a sync run over a wider selection sends only what is not in it
    assert main(["generate", "--task", "all", *select, *endpoint, "--dry-run"]) == 0
    assert "waiting in a batch: 4; to send: 8" in capsys.readouterr().out
    assert main(["generate", "--task", "all", *select, *endpoint, "--no-progress"]) == 0
    assert "12 requests: 0 already cached, 4 waiting in a batch, 8 answered" in capsys.readouterr().out
    assert len(fake_openai.chat_log()) == 8
    fake_openai.complete_batches()
    assert main(["batch", "collect", "--cache", str(cache_path), *endpoint]) == 0
    with ResponseCache(cache_path) as cache:
        assert len(list(cache.iter_responses())) == 12


def test_verbose_after_the_subcommand_shows_our_debug_lines_and_not_the_http_libraries(
    fake_openai, coco_root, tmp_path
):
    argv = generate_args(coco_root, tmp_path / "v.sqlite", "--task", "conversation", "--limit", "2")
    env = {"OPENAI_API_KEY": "sk-test-0000", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    argv = [*CLI, *argv, "--base-url", fake_openai.base_url, "--no-progress", "-v"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    debug = [line for line in done.stderr.splitlines() if line.startswith("DEBUG ")]
    assert "DEBUG keypoint_instruct.llm.online.waits: waiting for the run's first request" in done.stderr
    assert all(line.startswith("DEBUG keypoint_instruct.") for line in debug), debug[:5]
    quiet = subprocess.run(argv[:-1], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert quiet.returncode == 0 and "DEBUG " not in quiet.stderr
