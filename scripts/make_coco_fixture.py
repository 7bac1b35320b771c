#!/usr/bin/env python
"""Write a seeded synthetic COCO split in COCO's exact schema (see keypoint_instruct/synthcoco.py).

Examples:
    python scripts/make_coco_fixture.py demo_output/coco --split val2014 --images 48
    python scripts/make_coco_fixture.py ~/.cache/coco-big --split train2017 --images 118287 --no-images
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from keypoint_instruct.coco.annotations import SPLIT_NAME
from keypoint_instruct.coco.synthetic import write_coco_tree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="COCO root to write (annotations/ and <split>/ go inside)")
    parser.add_argument("--split", default="val2014", help="split name; *2014 splits get 2014 file naming")
    parser.add_argument("--images", type=int, default=48, help="number of images (train2017 has 118287)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed and split, same files")
    parser.add_argument("--no-images", action="store_true", help="write the annotation files only, no JPEGs")
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error(f"--images must be >= 1, got {args.images}")
    if not SPLIT_NAME.fullmatch(args.split):
        parser.error(f"--split {args.split!r} is not a COCO split name like val2014 or train2017")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    start = time.perf_counter()
    try:
        write_coco_tree(args.out, args.split, args.images, seed=args.seed, draw_images=not args.no_images)
    except OSError as err:
        parser.exit(2, f"make_coco_fixture.py: error: cannot write {args.out}: {err.strerror or err}\n")
    for path in sorted((args.out / "annotations").glob(f"*_{args.split}.json")):
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
