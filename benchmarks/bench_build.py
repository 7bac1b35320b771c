"""Build ~200k samples from a synthetic response cache into a dataset folder, then load one config.

Beside it, the naive path: the same samples as one LLaVA-Instruct-style JSON file, read with ``json.load`` and
turned into a ``Dataset`` with ``Dataset.from_list``. Goals: build < 60 s on 2 cores, load of one config < 3 s.

    .venv/bin/python benchmarks/bench_build.py [--images 45000] [--work DIR]

The paper's build had 200,328 samples (112,980 conversation, 45,174 detailed description, 42,174 complex
reasoning); the default of 45,000 images with 2-3 conversation pairs each, a description for every image and a
complex-reasoning question for 94% of them gives about the same mix. Setup (synthetic COCO, filling the cache)
is timed separately and not part of the goal. Loads run in fresh processes with their own HF cache.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORDS = (
    "the person stands with knees bent and arms raised while the other player leans forward to reach the ball "
    "near the net her left elbow is straight and his right hand holds a racket the skier crouches low"
).split()

LOAD_CONFIG = """
import sys, time
t0 = time.perf_counter()
from datasets import load_dataset
t1 = time.perf_counter()
ds = load_dataset(sys.argv[1], sys.argv[2], split="train")
t2 = time.perf_counter()
ds = load_dataset(sys.argv[1], sys.argv[2], split="train")
t3 = time.perf_counter()
print(f"{ds.num_rows} {t1 - t0:.2f} {t2 - t1:.2f} {t3 - t2:.2f}")
"""

LOAD_NAIVE = """
import json, sys, time
t0 = time.perf_counter()
from datasets import Dataset
t1 = time.perf_counter()
with open(sys.argv[1]) as f:
    records = json.load(f)
t2 = time.perf_counter()
ds = Dataset.from_list(records)
t3 = time.perf_counter()
print(f"{ds.num_rows} {t1 - t0:.2f} {t2 - t1:.2f} {t3 - t2:.2f}")
"""


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def fill_cache(cache_path: Path, image_ids: list[int], split: str, seed: int = 0) -> int:
    """Responses for every image: conversation (2-3 pairs), description, complex reasoning (94% of images)."""
    from keypoint_instruct.llm.request import ChatRequest, Completion
    from keypoint_instruct.llm.store.cache import ResponseCache

    rng = random.Random(seed)
    count = 0
    with ResponseCache(cache_path, create=True) as cache:
        for image_id in image_ids:
            tasks = {
                "conversation": "\n===\n".join(
                    f"Question: {sentence(rng, 9)[:-1]}?\nAnswer: {sentence(rng, 30)}"
                    for _ in range(rng.choice((2, 2, 3, 3)) if rng.random() > 0.02 else 2)
                ),
                "detailed_description": " ".join(sentence(rng, 18) for _ in range(6)),
            }
            if rng.random() < 0.94:
                tasks["complex_reasoning"] = f"Question: {sentence(rng, 20)[:-1]}?\nAnswer: " + " ".join(
                    sentence(rng, 18) for _ in range(5)
                )
            for task, text in tasks.items():
                body = {"model": "bench-teacher", "messages": [{"role": "user", "content": f"{task} {image_id}"}]}
                request = ChatRequest(task, image_id, split, "bench-v1", body)
                completion = Completion(text, "stop", 900, 200, 0, "bench-teacher")
                cache.put(request, completion, 1.0, cost_usd=0.004)
                count += 1
    return count


def write_naive_json(folder: Path, out: Path) -> int:
    from keypoint_instruct.dataset.hub import export_llava

    return export_llava(folder, "all", out)


def run(script: str, *args: str, hf_home: Path) -> list[str]:
    env = {"HF_HOME": str(hf_home), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env)
    if result.returncode:
        raise SystemExit(result.stderr)
    return result.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=45_000, help="synthetic COCO images (default: %(default)s)")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_build-"))
    work.mkdir(parents=True, exist_ok=True)
    split = "train2017"

    from keypoint_instruct.coco.annotations import load_scenes
    from keypoint_instruct.coco.synthetic import write_coco_tree

    coco_root, cache_path = work / "coco", work / "responses.sqlite"
    t = time.perf_counter()
    if not (coco_root / "annotations" / f"captions_{split}.json").exists():
        write_coco_tree(coco_root, split, args.images, seed=0, draw_images=False)
    if not cache_path.exists():
        fill_cache(cache_path, list(load_scenes(coco_root, split)), split)
    print(f"setup (synthetic COCO + cache, not part of the goal): {time.perf_counter() - t:.1f} s")

    from keypoint_instruct.dataset.folder import build_folder

    out = work / "dataset"
    t = time.perf_counter()
    summaries, stats = build_folder(
        coco_root=coco_root, coco_split=split, cache_path=cache_path, out=out, version="1.0.0", overwrite=True
    )
    build_s = time.perf_counter() - t
    counts = {s.name: s.num_examples for s in summaries}
    print(f"build: {counts['all']:,} samples {counts} in {build_s:.1f} s (goal < 60 s)")
    print(f"folder size: {sum(p.stat().st_size for p in out.rglob('*') if p.is_file()) / 1e6:.1f} MB")

    for config in ("complex_reasoning", "all"):
        rows, imp, first, second = run(LOAD_CONFIG, str(out), config, hf_home=work / f"hf_{config}")
        print(
            f"load_dataset(folder, {config!r}): {int(rows):,} rows, first load {first} s (goal < 3 s), "
            f"cached reload {second} s, import datasets {imp} s"
        )

    naive = work / "llava.json"
    t = time.perf_counter()
    write_naive_json(out, naive)
    print(f"naive: wrote LLaVA JSON ({naive.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s")
    rows, imp, read_s, from_list_s = run(LOAD_NAIVE, str(naive), hf_home=work / "hf_naive")
    total = float(read_s) + float(from_list_s)
    print(f"naive load (json.load + Dataset.from_list): {int(rows):,} rows in {total:.2f} s "
          f"(json.load {read_s} s, from_list {from_list_s} s)")  # fmt: skip
    print(json.dumps({"build_s": round(build_s, 1), "samples": counts["all"], "work": str(work)}))


if __name__ == "__main__":
    main()
