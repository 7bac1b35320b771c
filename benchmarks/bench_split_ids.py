#!/usr/bin/env python
"""The image ids of a train2017-sized split, as ``bench build`` reads them to leave training images out.

    .venv/bin/python benchmarks/bench_split_ids.py [--work DIR] [--images 118287]

Uses the synthetic tree of ``bench_contexts.py`` (annotations only, generated once and cached under ``--work``).
Each reading runs in a fresh subprocess, with its wall time and peak RSS (``os.wait4``):

(a) ``json.load`` of the instances file, ids taken from its ``images`` list (the obvious way);
(b) ``keypoint_instruct.coco.splits.read_image_ids`` of the same instances file (typed msgspec decode of the
    images list only, memory-mapped);
(c) ``split_image_ids`` as ``bench build`` calls it (the captions file: the smallest that lists every image).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_contexts import ensure_tree, run_child  # noqa: E402

MSGSPEC = "import sys; from keypoint_instruct.coco.splits import read_image_ids as r; print(len(r(sys.argv[1])))"
READERS = {
    "(a) json.load(instances)": (
        "import json, sys; ids = {i['id'] for i in json.load(open(sys.argv[1]))['images']}; print(len(ids))",
        "instances",
    ),
    "(b) read_image_ids(instances)": (MSGSPEC, "instances"),
    "(c) split_image_ids (captions file)": (MSGSPEC, "captions"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache" / "keypoint_instruct_bench")
    parser.add_argument("--images", type=int, default=118_287, help="train2017 has 118287 images")
    parser.add_argument("--repeat", type=int, default=3, help="runs per reader; the best is reported")
    args = parser.parse_args()
    root = ensure_tree(args.work, "train2017", args.images, 0)
    print(f"{'reader':<38} {'file MB':>8} {'best s':>8} {'peak RSS GB':>12}")
    for label, (code, kind) in READERS.items():
        path = root / "annotations" / f"{kind}_train2017.json"
        runs = [run_child([sys.executable, "-c", code, str(path)], label) for _ in range(args.repeat)]
        seconds, rss = min(runs)
        print(f"{label:<38} {path.stat().st_size / 1e6:>8.0f} {seconds:>8.2f} {rss:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
