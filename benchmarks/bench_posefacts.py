#!/usr/bin/env python
"""Throughput of the pose facts, the offline teacher and the answer verifier on a synthetic COCO split; the pose
notes judged on real photographs.

    .venv/bin/python benchmarks/bench_posefacts.py [--images 2000] [--seed 0] [--real ../shared/realposes]

Writes a synthetic split (annotations only) to a temporary folder, loads it, then times (a) ``facts_block`` over
every scene (what ``--context paper+facts`` adds to a context build), (b) the offline teacher's three responses
per scene (what ``generate --teacher offline --task all`` spends outside the engine and cache) and (c)
``find_contradictions`` over every answer unit of those responses (what the build's pose-claim check costs). Prints
scenes/s, persons/s and the share of persons with each posture, facing and arm pose, to show how often the rules
commit to a fact.

With ``--real`` (a COCO tree of real photographs, split val2017, default ``../shared/realposes`` when it exists),
it prints every fact of the pose notes of every person there with the verdict given after looking at the picture
(``keypoint-instruct show ID --coco-root ... --split val2017``): correct, wrong, or not decidable from the
photograph. Judgements are kept in :data:`JUDGED`; a fact the notes print that has no judgement is listed as
unjudged, so a change to the notes asks for a new look at the pictures.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from pathlib import Path

from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.posefacts import scene_facts
from keypoint_instruct.coco.posenotes import describe, facts_block
from keypoint_instruct.coco.synthetic import write_coco_tree
from keypoint_instruct.dataset.parse import parse_description, parse_pairs
from keypoint_instruct.dataset.verify import find_contradictions
from keypoint_instruct.teacher.offline import respond
from keypoint_instruct.vocab import TASKS

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "realposes"
OK, WRONG, UNDECIDABLE = "correct", "wrong", "not decidable"
_HIDDEN = (UNDECIDABLE, "hidden behind person 1 in the photograph")
_ALL_OK = {
    (900001, 1): "the woman walking towards the camera: upright, arms down by her sides, legs straight, feet close",
    (900002, 1): "the player in red: left arm across his opponent at shoulder height, right elbow bent at the chest",
    (900003, 1): "the player in the checked shirt: front to the camera, right arm and right leg stretched wide",
    (900004, 1): "the lower acrobat in a chest stand: chin and forearms at the floor, hips high above the head",
    (900004, 2): "the upper acrobat in a split handstand: straight arms, straight legs split wide",
}
# (image, person) -> {fact as the notes print it: (verdict, why)}; persons of _ALL_OK: every fact correct.
JUDGED: dict[tuple[int, int], dict[str, tuple[str, str]]] = {
    (900001, 2): {
        "in the centre of the picture": (OK, "directly behind the woman"),
        "standing": (OK, "dark trousers and shoes walking between her legs"),
        "facing the camera": _HIDDEN, "both arms hanging straight down": _HIDDEN, "left elbow straight": _HIDDEN,
        "right elbow straight": _HIDDEN, "torso upright": _HIDDEN, "right knee straight": _HIDDEN,
        "left knee slightly bent, about 150 degrees": _HIDDEN, "feet close together": _HIDDEN,
    },
    (900003, 2): {
        "in the centre of the picture": (OK, ""),
        "facing away from the camera": (OK, "the name on the back of his shirt"),
        "left arm hanging straight down": _HIDDEN, "left elbow slightly bent, about 140 degrees": _HIDDEN,
        "right elbow straight": (OK, "right arm reaching over the attacker's shoulder"),
        "torso tilted about 40 degrees from vertical": (OK, "bent over the attacker"),
        "left knee bent about 100 degrees": (OK, "blue sock, knee well off the turf"),
        "right knee slightly bent, about 140 degrees": _HIDDEN,
    },
}  # fmt: skip


def note_facts(line: str) -> list[str]:
    """The facts of one pose-notes line: "Person 1 (a, b, c): d; e." -> [a, b, c, d, e]."""
    head, _, rest = line.partition("): ")
    return head.partition(" (")[2].split(", ") + rest.rstrip(".").split("; ")


def judge_real(root: Path) -> None:
    scenes = load_scenes(root, "val2017")
    counts: collections.Counter = collections.Counter()
    for image_id, scene in sorted(scenes.items()):
        for facts in scene_facts(scene):
            line = describe(facts)
            print(line)
            verdicts = JUDGED.get((image_id, facts.number), {})
            for fact in note_facts(line):
                if (image_id, facts.number) in _ALL_OK:
                    verdict, why = OK, _ALL_OK[(image_id, facts.number)]
                else:
                    verdict, why = verdicts.get(fact, ("unjudged", "look at the picture"))
                counts[verdict] += 1
                if verdict != OK:
                    print(f"    {verdict}: {fact} ({why})")
    total = sum(counts.values())
    print(f"real photographs: {total} facts: " + ", ".join(f"{k} {v}" for k, v in counts.most_common()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images in the synthetic split")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic split")
    parser.add_argument("--real", type=Path, default=REAL, help="COCO tree of real photographs (split val2017)")
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

    units = [
        (s, unit)
        for s in scenes
        for task in TASKS
        for unit in (
            [parse_description(respond(s, task))]
            if task == "detailed_description"
            else [f"Question: {p.question}\nAnswer: {p.answer}" for p in parse_pairs(respond(s, task))]
        )
    ]
    start = time.perf_counter()
    flagged = sum(bool(find_contradictions(text, s)) for s, text in units)
    verify_s = time.perf_counter() - start
    print(f"find_contradictions: {len(units)} answer units in {verify_s:.2f} s ({len(units) / verify_s:.0f} units/s, "
          f"{verify_s / len(units) * 1000:.2f} ms each); flagged {flagged} (offline answers quoting a caption "
          "that the synthetic skeleton contradicts)")  # fmt: skip
    if args.real and (args.real / "annotations").is_dir():
        print()
        judge_real(args.real)


if __name__ == "__main__":
    main()
