#!/usr/bin/env python
"""Context build vs a bare pycocotools load, on two train2017-sized synthetic COCO trees, side by side.

    .venv/bin/python benchmarks/bench_contexts.py [--work DIR] [--repeat 3] [--trees bench,train2017]
                                                  [--baseline CHECKOUT] [--keep]

The trees (annotations only, ~750 MB each) are generated once and cached under ``--work`` (default: a folder in the
system's temp dir), each in a folder named after the generator's code, so a changed generator makes a new tree:

- ``bench``: 118,287 images in the fixtures' mix, a labelled person in ~87% of the images (the tree this benchmark
  always measured);
- ``train2017``: 118,287 images shaped like the real split (``synthetic.TRAIN2017``): a labelled person in 54% of
  the images, ~860k instances, ~266k people (~149k with keypoints), ~594k captions; 450 + 225 + 87 MB.

Then, for each tree and each repeat, each in a fresh subprocess, with its peak RSS from ``os.wait4``:

(a) a bare ``pycocotools.coco.COCO(path)`` load of the three annotation files (kept, as a join needs them);
(b) the whole context build: ``keypoint-instruct contexts --coco-root ... --split train2017 --out FILE``.

The best of the repeats is reported. Goal: (b) takes at most 0.4x the time of (a) on both trees, with a peak RSS of
at most 2 GB. ``--baseline CHECKOUT`` also runs (b) with the package of another checkout (e.g. a ``git worktree`` at
an older commit) and says whether both wrote the same bytes. Unless ``--keep``, the trees are deleted at the end.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from keypoint_instruct.coco import synthetic

KINDS = ("instances", "person_keypoints", "captions")
SPLIT = "train2017"
IMAGES = 118_287  # train2017's image count
SHAPES = {"bench": synthetic.FIXTURE, "train2017": synthetic.TRAIN2017}
BARE_LOAD = """
import sys
from pycocotools.coco import COCO
kept = []
for path in sys.argv[1:]:
    kept.append(COCO(path))
"""


def generator_version() -> str:
    """A hash of the generator's code and vocabulary: a cached tree is reused only if both are unchanged."""
    code = Path(synthetic.__file__).read_bytes() + json.dumps(synthetic.vocabulary(), sort_keys=True).encode()
    return f"{zlib.crc32(code):08x}"


def ensure_tree(work: Path, name: str, seed: int) -> Path:
    root = work / f"coco_{name}_{SPLIT}_{IMAGES}_seed{seed}_gen{generator_version()}"
    done = root / ".complete"
    if not done.exists():
        print(f"generating the {name} tree under {root} (once) ...", flush=True)
        start = time.perf_counter()
        synthetic.write_coco_tree(root, SPLIT, IMAGES, seed=seed, draw_images=False, shape=SHAPES[name])
        done.write_text("ok\n")
        print(f"  generated in {time.perf_counter() - start:.1f} s", flush=True)
    sizes = [f"{(root / 'annotations' / f'{kind}_{SPLIT}.json').stat().st_size / 1e6:.0f}" for kind in KINDS]
    print(f"  {name}: {' + '.join(sizes)} MB ({', '.join(KINDS)})")
    return root


def run_child(argv: list[str], label: str, checkout: Path | None = None) -> tuple[float, float]:
    """Run ``argv`` in a fresh process (importing ``keypoint_instruct`` from ``checkout`` when given); return (wall
    seconds, peak RSS in GB). Its stderr is shown on failure only."""
    env = {**os.environ, "PYTHONPATH": str(checkout)} if checkout else None
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        # `python -m` puts the working directory first on sys.path: run in the checkout, so its package is the one
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=checkout)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-2000:]
            raise SystemExit(f"{label} failed with exit code {proc.returncode}: {' '.join(argv)}\n{tail}")
    return seconds, usage.ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB on Linux


def contexts_argv(root: Path, out: Path) -> list[str]:
    cli = [sys.executable, "-m", "keypoint_instruct", "contexts", "--coco-root", str(root), "--split", SPLIT]
    return [*cli, "--out", str(out)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "keypoint_instruct_bench")
    parser.add_argument("--trees", default="bench,train2017", help="comma-separated: bench, train2017")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (a) and (b) per tree; the best counts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT", help="also time (b) from here")
    parser.add_argument("--keep", action="store_true", help="keep the generated trees for the next run")
    args = parser.parse_args()
    args.work = args.work.resolve()  # the children run in the checkout they import
    names = [name.strip() for name in args.trees.split(",") if name.strip()]
    if unknown := set(names) - set(SHAPES):
        parser.error(f"unknown tree(s) {', '.join(sorted(unknown))} (expected: {', '.join(SHAPES)})")
    sys.stdout.reconfigure(line_buffering=True)
    here = Path(__file__).resolve().parent.parent
    roots = {name: ensure_tree(args.work, name, args.seed) for name in names}
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for rep in range(1, args.repeat + 1):
            for name, root in roots.items():
                files = [str(root / "annotations" / f"{kind}_{SPLIT}.json") for kind in KINDS]
                jobs = [("a", [sys.executable, "-c", BARE_LOAD, *files], None)]
                jobs.append(("b", contexts_argv(root, args.work / f"{name}.jsonl"), here))
                if args.baseline:
                    base_out = args.work / f"{name}.base.jsonl"
                    jobs.append(("base", contexts_argv(root, base_out), args.baseline.resolve()))
                for key, argv, checkout in jobs:
                    seconds, gb = run_child(argv, f"{key} on {name}", checkout)
                    runs.setdefault((name, key), []).append((seconds, gb))
                    print(
                        f"  run {rep} {name:9} ({key}): {seconds:6.1f} s  {gb:.2f} GB  load {os.getloadavg()[0]:.2f}"
                    )
        report(roots, runs, args)
    finally:
        if not args.keep:
            for root in roots.values():
                shutil.rmtree(root, ignore_errors=True)
    return 0


def report(roots: dict[str, Path], runs: dict[tuple[str, str], list[tuple[float, float]]], args) -> None:
    best = {key: (min(s for s, _ in values), max(gb for _, gb in values)) for key, values in runs.items()}
    print(f"\nbest of {args.repeat} (peak RSS: the highest), {IMAGES} images per tree, load average now "
          f"{os.getloadavg()[0]:.2f}:")  # fmt: skip
    print(f"{'tree':10} {'(a) bare COCO() x3':>20} {'(b) contexts':>20} {'ratio':>6}  contexts written")
    for name in roots:
        (a_s, a_gb), (b_s, b_gb) = best[name, "a"], best[name, "b"]
        out = args.work / f"{name}.jsonl"
        with open(out, "rb") as handle:
            rows = sum(1 for _ in handle)
        print(f"{name:10} {a_s:8.1f} s {a_gb:5.2f} GB {b_s:8.1f} s {b_gb:5.2f} GB {b_s / a_s:6.2f}"
              f"  {rows} ({rows / IMAGES:.0%} of the images)")  # fmt: skip
        if args.baseline:
            base_s, base_gb = best[name, "base"]
            same = filecmp.cmp(out, args.work / f"{name}.base.jsonl", shallow=False)
            print(f"{'':10} baseline (b): {base_s:.1f} s {base_gb:.2f} GB, ratio {base_s / a_s:.2f};"
                  f" output {'byte-identical' if same else 'DIFFERENT'}")  # fmt: skip
    worst = max(best[name, "b"][0] / best[name, "a"][0] for name in roots)
    peak = max(best[name, "b"][1] for name in roots)
    print(
        f"goal: ratio <= 0.40 on every tree: {'met' if worst <= 0.4 else 'NOT met'} (worst {worst:.2f}); "
        f"peak RSS <= 2 GB: {'met' if peak <= 2.0 else 'NOT met'} ({peak:.2f} GB)"
    )


if __name__ == "__main__":
    sys.exit(main())
