#!/usr/bin/env python
"""Throughput of the pose facts and the offline teacher on a synthetic COCO split.

    .venv/bin/python benchmarks/bench_posefacts.py [--images 2000] [--seed 0]

Writes a synthetic split (annotations only) to a temporary folder, loads it, then times (a) ``facts_block`` over
every scene (what ``--context paper+facts`` adds to a context build) and (b) the offline teacher's three responses
per scene (what ``generate --teacher offline --task all`` spends outside the engine and cache). Prints scenes/s,
persons/s and the share of persons with each posture, facing and arm pose, to show how often the rules commit to a
fact.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time

from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.posefacts import scene_facts
from keypoint_instruct.coco.posenotes import facts_block
from keypoint_instruct.coco.synthetic import write_coco_tree
from keypoint_instruct.teacher.offline import respond
from keypoint_instruct.vocab import TASKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images in the synthetic split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic split")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_coco_tree(tmp, "train2017", args.images, seed=args.seed, draw_images=False)
        scenes = list(load_scenes(tmp, "train2017").values())

    start = time.perf_counter()
    blocks = [facts_block(s) for s in scenes]
    facts_s = time.perf_counter() - start
    persons = sum(len(b.splitlines()) for b in blocks)

    start = time.perf_counter()
    words = sum(len(respond(s, task).split()) for s in scenes for task in TASKS)
    teacher_s = time.perf_counter() - start

    postures, facing, arms = collections.Counter(), collections.Counter(), collections.Counter()
    for s in scenes:
        for f in scene_facts(s):
            postures[f.posture or "unstated"] += 1
            facing[f.facing or "unstated"] += 1
            arms.update([f.arms] if f.arms else [])
            arms.update(["a hand up at the head"] if f.hand_at_head else [])
            arms.update(["an arm raised"] if f.raised else [])

    print(f"scenes: {len(scenes)}  persons: {persons}")
    print(f"facts_block: {facts_s:.2f} s  ({len(scenes) / facts_s:.0f} scenes/s, {persons / facts_s:.0f} persons/s)")
    print(f"offline teacher, 3 tasks: {teacher_s:.2f} s  ({len(scenes) * 3 / teacher_s:.0f} responses/s, "
          f"{words / (len(scenes) * 3):.0f} words per response)")  # fmt: skip
    print("posture:", ", ".join(f"{k} {v / persons:.0%}" for k, v in postures.most_common()))
    print("facing:", ", ".join(f"{k} {v / persons:.0%}" for k, v in facing.most_common()))
    print("arms:", ", ".join(f"{k} {v / persons:.0%}" for k, v in arms.most_common()) or "nothing stated")


if __name__ == "__main__":
    main()
