#!/usr/bin/env python
"""How well the build's quality decisions match the labelled set: leaks, refusals, contradictions, good answers.

    .venv/bin/python benchmarks/bench_quality.py [--realposes ../shared/realposes] [--no-verify-poses] [--quiet]
        [--set FILE] [--scenes FILE]

Runs :func:`keypoint_instruct.dataset.decide.decide`, the function ``keypoint-instruct build`` runs on every teacher
response, over each item of ``benchmarks/quality_set/labelled.jsonl`` (one question/answer pair or one description)
with the item's scene: the real photographs' scenes come from the project's own ``load_scenes`` on
``../shared/realposes`` (split val2017; ``--realposes`` or ``KPI_REALPOSES`` point elsewhere), the synthetic ones are
built from ``quality_set/scenes.json``. Prints, per label, how many items the build treats as the label says
(leaks caught, refusals caught, contradictions caught and the precision of ``pose_contradiction``, good answers
dropped), per reason code its precision and recall, the confusion of labels and decisions, and every item decided
against its label. The expected reason of an item is its label's (``refusal``, ``pose_contradiction``, ``kept``), and
for a leak the code that covers its kind (``angle`` -> ``leak_angle``, ``source_text`` -> ``names_source``, ...).

``--set FILE`` scores another file of items in the same format (e.g. the held-out set
``quality_set/heldout.jsonl``); ``--scenes FILE`` adds the synthetic scenes of another file (e.g.
``quality_set/heldout_scenes.json``) to those of ``quality_set/scenes.json``, so items may name scenes of either.

    .venv/bin/python benchmarks/bench_quality.py --set benchmarks/quality_set/heldout.jsonl \
        --scenes benchmarks/quality_set/heldout_scenes.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from keypoint_instruct.coco.annotations import Instance, Scene, load_scenes
from keypoint_instruct.dataset import quality
from keypoint_instruct.dataset.decide import decide

HERE = Path(__file__).resolve().parent
SET = HERE / "quality_set"
REALPOSES = Path(os.environ.get("KPI_REALPOSES") or HERE.parent.parent / "shared" / "realposes")
KEPT = "kept"
LABELS = ("keep", "leak", "contradiction", "refusal")
LEAK_CODES = {
    "angle": quality.LEAK_ANGLE,
    "notes": quality.LEAK_NOTES,
    "skeleton": quality.LEAK_SKELETON,
    "visibility": quality.LEAK_VISIBILITY,
    "person_label": quality.LEAK_PERSON_LABEL,
    "source_text": quality.NAMES_SOURCE,
    "source_terms": quality.NAMES_SOURCE,
    "coordinates": quality.COORDINATE_LEAKAGE,
}


def load_items(folder: Path = SET, path: Path | None = None) -> list[dict]:
    """The labelled items, in file order: ``folder/labelled.jsonl``, or the file ``path`` when given."""
    with (path or folder / "labelled.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def synthetic_scene(number: int, raw: dict) -> Scene:
    """A ``Scene`` of one ``scenes.json`` entry: its persons first (Person 1, 2, ... in list order), then objects."""
    instances = []
    for person in raw["persons"]:
        keypoints = tuple(float(v) for v in person["keypoints"])
        labelled = sum(1 for v in keypoints[2::3] if v > 0)
        instances.append(Instance(len(instances) + 1, "person", tuple(person["bbox"]), False, keypoints, labelled))
    for obj in raw.get("objects", ()):
        instances.append(Instance(len(instances) + 1, obj["category"], tuple(obj["bbox"]), False, None, 0))
    return Scene(
        image_id=number,
        file_name=f"{raw['name']}.png",
        coco_split="synthetic",
        width=int(raw["width"]),
        height=int(raw["height"]),
        captions=tuple(raw["captions"]),
        instances=tuple(instances),
    )


def load_set_scenes(
    folder: Path = SET, realposes: Path | None = REALPOSES, extra: Path | None = None
) -> dict[str, Scene]:
    """``"synth:<name>"`` and ``"realposes:<image id>"`` -> Scene (the real ones only when ``realposes`` is given).

    The synthetic scenes are those of ``folder/scenes.json`` plus, when ``extra`` names another file in the same
    format, its scenes (numbered on after the first file's; a name in both files is an error).
    """
    raw = json.loads((folder / "scenes.json").read_text(encoding="utf-8"))
    scenes = {f"synth:{entry['name']}": synthetic_scene(i, entry) for i, entry in enumerate(raw, start=1)}
    if extra is not None and extra.resolve() != (folder / "scenes.json").resolve():
        more = json.loads(extra.read_text(encoding="utf-8"))
        for i, entry in enumerate(more, start=len(raw) + 1):
            key = f"synth:{entry['name']}"
            if key in scenes:
                raise ValueError(f"{extra}: scene {entry['name']!r} is also in {folder / 'scenes.json'}")
            scenes[key] = synthetic_scene(i, entry)
    if realposes is not None:
        scenes.update({f"realposes:{k}": v for k, v in load_scenes(realposes, "val2017").items()})
    return scenes


def expected_reason(item: dict) -> str:
    """What the build should do with ``item``: ``kept`` or the reason code its label and kind call for."""
    label = item["label"]
    if label == "leak":
        return LEAK_CODES[item["kind"]]
    return {"keep": KEPT, "refusal": quality.REFUSAL, "contradiction": quality.POSE_CONTRADICTION}[label]


def decided_reason(item: dict, scene: Scene, *, verify_poses: bool = True) -> str:
    """What the build does with ``item``: ``kept`` or the reason code of its one unit (or of the response)."""
    decision = decide(item["text"], item["task"], scene, verify_poses=verify_poses)
    findings = decision.findings
    return findings[0].reason if findings else KEPT


def share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else f"{part}/0 (-)"


def label_figures(items: list[dict], decided: list[str]) -> list[tuple[str, str]]:
    """The headline figures: leaks, contradictions, refusals caught; good answers dropped."""
    leak_codes = set(quality.LEAK_REASONS)
    pairs = list(zip(items, decided, strict=True))
    by_label = {label: [d for item, d in pairs if item["label"] == label] for label in LABELS}
    flagged = [item["label"] for item, d in pairs if d == quality.POSE_CONTRADICTION]
    leaks = by_label["leak"]
    return [
        ("leaks caught (any leak reason)", share(sum(d in leak_codes for d in leaks), len(leaks))),
        ("refusals caught", share(by_label["refusal"].count(quality.REFUSAL), len(by_label["refusal"]))),
        (
            "contradictions caught",
            share(by_label["contradiction"].count(quality.POSE_CONTRADICTION), len(by_label["contradiction"])),
        ),
        ("pose_contradiction precision", share(flagged.count("contradiction"), len(flagged))),
        ("good answers (keep) dropped", share(sum(d != KEPT for d in by_label["keep"]), len(by_label["keep"]))),
    ]


def reason_table(items: list[dict], decided: list[str]) -> list[tuple[str, int, int, str, str]]:
    """Per reason code (and ``kept``): items expected, items decided, precision, recall."""
    expected = [expected_reason(item) for item in items]
    rows = []
    for code in (*quality.REASONS, KEPT):
        want, got = expected.count(code), decided.count(code)
        if not (want or got):
            continue
        hits = sum(1 for e, d in zip(expected, decided, strict=True) if e == d == code)
        rows.append((code, want, got, share(hits, got), share(hits, want)))
    return rows


def print_report(items: list[dict], decided: list[str], *, quiet: bool = False) -> None:
    print(f"{len(items)} items ({Counter(item['label'] for item in items)})")
    for source in ("all", "realposes", "synth"):
        chosen = [i for i, item in enumerate(items) if source == "all" or item["scene"].startswith(source)]
        print(f"\n{source}:")
        for name, value in label_figures([items[i] for i in chosen], [decided[i] for i in chosen]):
            print(f"  {name:<34} {value}")
    print(f"\n{'reason code':<22} {'expected':>8} {'decided':>8}  {'precision':<16} recall")
    for code, want, got, precision, recall in reason_table(items, decided):
        print(f"{code:<22} {want:>8} {got:>8}  {precision:<16} {recall}")
    columns = [c for c in (KEPT, *quality.REASONS) if c in decided]
    print("\nconfusion (rows: label, columns: decision)")
    print(" " * 14 + "".join(f"{c:>{len(c) + 2}}" for c in columns))
    for label in LABELS:
        counts = Counter(d for item, d in zip(items, decided, strict=True) if item["label"] == label)
        print(f"{label:<14}" + "".join(f"{counts[c]:>{len(c) + 2}}" for c in columns))
    misses = [(item, d) for item, d in zip(items, decided, strict=True) if d != expected_reason(item)]
    print(f"\nitems decided against their label: {len(misses)}")
    if not quiet:
        for item, d in misses:
            text = " ".join(item["text"].split())
            print(f"  {item['id']:<13} {item['label']}/{item['kind']:<18} -> {d:<20} {text[:90]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realposes", type=Path, default=REALPOSES, help="the real-pose COCO tree (split val2017)")
    parser.add_argument("--no-verify-poses", dest="verify_poses", action="store_false", help="as `build` has it")
    parser.add_argument("--quiet", action="store_true", help="do not list the items decided against their label")
    parser.add_argument(
        "--set",
        dest="item_set",
        type=Path,
        default=SET / "labelled.jsonl",
        metavar="FILE",
        help="the items to score (default: quality_set/labelled.jsonl; e.g. quality_set/heldout.jsonl)",
    )
    parser.add_argument(
        "--scenes",
        type=Path,
        default=SET / "scenes.json",
        metavar="FILE",
        help="synthetic scenes to add to quality_set/scenes.json (e.g. quality_set/heldout_scenes.json)",
    )
    args = parser.parse_args()
    if not (args.realposes / "annotations").is_dir():
        where = args.realposes
        print(f"bench_quality: error: {where} is not the realposes COCO tree; pass --realposes", file=sys.stderr)
        return 2
    items = load_items(path=args.item_set)
    scenes = load_set_scenes(realposes=args.realposes, extra=args.scenes)
    unknown = sorted({item["scene"] for item in items} - scenes.keys())
    if unknown:
        print(f"bench_quality: error: scenes not found: {', '.join(unknown)}; pass --scenes", file=sys.stderr)
        return 2
    decided = [decided_reason(item, scenes[item["scene"]], verify_poses=args.verify_poses) for item in items]
    print(f"pose verification: {'on' if args.verify_poses else 'off'}")
    print_report(items, decided, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
