#!/usr/bin/env python
"""Context build vs a bare pycocotools load, on a train2017-sized synthetic COCO tree.

    .venv/bin/python benchmarks/bench_contexts.py [--work DIR] [--images 118287]

The tree (annotations only, ~750 MB) is generated once and cached under ``--work`` (default
``~/.cache/keypoint_instruct_bench``), in a folder named after the generator's code, so a changed generator makes a
new tree. Then, each in a fresh subprocess, with its peak RSS from ``os.wait4``:

(a) a bare ``pycocotools.coco.COCO(path)`` load of the three annotation files (kept, as a join needs them);
(b) the whole context build: ``keypoint-instruct contexts --coco-root ... --split ... --out FILE``.

Goal: (b) takes at most 0.4x the time of (a), with a peak RSS of at most 2 GB.

The synthetic files match the real ones in size and counts per image (instances, person annotations, captions), but
~87% of its images have a person with a labelled keypoint, against ~57k of real train2017's 118k images (~48%): (b)
formats about 1.8x the contexts a real train2017 run formats, so its time is an upper bound for the real files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

from keypoint_instruct.coco.synthetic import write_coco_tree

KINDS = ("instances", "person_keypoints", "captions")
BARE_LOAD = """
import sys, time
from pycocotools.coco import COCO
kept = []
for path in sys.argv[1:]:
    start = time.perf_counter()
    kept.append(COCO(path))
    print(f"  {path.rsplit('/', 1)[-1]}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
"""


# about how many train2017 images have a person with a labelled keypoint: the "57K images, 150K person instances"
# of COCO keypoints that pose-estimation papers cite
REAL_TRAIN2017_SELECTED = 57_000


def generator_version() -> str:
    """A hash of the generator's code and vocabulary: a cached tree is reused only if both are unchanged."""
    import keypoint_instruct.coco.synthetic as synthcoco

    code = Path(synthcoco.__file__).read_bytes() + json.dumps(synthcoco.vocabulary(), sort_keys=True).encode()
    return f"{zlib.crc32(code):08x}"


def ensure_tree(work: Path, split: str, images: int, seed: int) -> Path:
    root = work / f"coco_{split}_{images}_seed{seed}_gen{generator_version()}"
    done = root / ".complete"
    if not done.exists():
        print(f"generating {images} images of {split} under {root} (once) ...", flush=True)
        start = time.perf_counter()
        write_coco_tree(root, split, images, seed=seed, draw_images=False)
        done.write_text("ok\n")
        print(f"  generated in {time.perf_counter() - start:.1f} s", flush=True)
    for kind in KINDS:
        path = root / "annotations" / f"{kind}_{split}.json"
        print(f"  {path.name}: {path.stat().st_size / 1e6:.0f} MB")
    return root


def run_child(argv: list[str], label: str) -> tuple[float, float]:
    """Run ``argv`` in a fresh process; return (wall seconds, peak RSS in GB); stderr goes to the terminal."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed with exit code {proc.returncode}: {' '.join(argv)}")
    return seconds, usage.ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keypoint_instruct_bench")
    parser.add_argument("--split", default="train2017")
    parser.add_argument("--images", type=int, default=118_287, help="train2017 has 118287 images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--context", default="paper", choices=("paper", "paper+facts"))
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # keep our lines in order with the children's stderr
    root = ensure_tree(args.work, args.split, args.images, args.seed)
    files = [str(root / "annotations" / f"{kind}_{args.split}.json") for kind in KINDS]

    print("(a) bare pycocotools COCO() of the three files:", flush=True)
    a_s, a_gb = run_child([sys.executable, "-c", BARE_LOAD, *files], "bare load")
    out = args.work / f"contexts_{args.split}_{args.images}.jsonl"
    print("(b) keypoint-instruct contexts ... --out FILE:", flush=True)
    cli = [sys.executable, "-m", "keypoint_instruct", "contexts", "--coco-root", str(root), "--split", args.split]
    b_s, b_gb = run_child([*cli, "--context", args.context, "--out", str(out)], "context build")
    with open(out, "rb") as handle:
        rows = sum(1 for _ in handle)

    ratio = b_s / a_s
    print(f"(a) bare COCO() x3     : {a_s:6.1f} s   peak RSS {a_gb:.2f} GB")
    size_mb = out.stat().st_size / 1e6
    print(f"(b) contexts -> JSONL  : {b_s:6.1f} s   peak RSS {b_gb:.2f} GB   ({rows} contexts, {size_mb:.0f} MB)")
    if args.split == "train2017" and args.images == 118_287 and args.context == "paper":
        print(f"contexts formatted     : {rows / REAL_TRAIN2017_SELECTED:.1f}x the ~57k images real train2017 selects")
    print(f"ratio (b)/(a)          : {ratio:.2f}   goal <= 0.40: {'met' if ratio <= 0.4 else 'NOT met'}")
    print(f"peak RSS of (b)        : goal <= 2 GB: {'met' if b_gb <= 2.0 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
