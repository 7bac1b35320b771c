"""Context text in the paper's format: number rules, line rules, snapshots of fixture images, selection."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from keypoint_instruct.coco.annotations import Instance, Scene, load_scenes
from keypoint_instruct.coco.context import box_corners, format_context, keypoint_values, normalize, select_scenes
from keypoint_instruct.errors import UsageError
from tests.paths import SNAPSHOTS as ALL_SNAPSHOTS
from tests.snapshot_check import check_snapshot

SNAPSHOTS = ALL_SNAPSHOTS / "contexts"


def person(ann_id: int, bbox, keypoints=None, iscrowd=False) -> Instance:
    kps = tuple(keypoints) if keypoints is not None else tuple([0.0] * 51)
    return Instance(ann_id, "person", tuple(bbox), iscrowd, kps, sum(1 for v in kps[2::3] if v > 0))


def thing(ann_id: int, name: str, bbox) -> Instance:
    return Instance(ann_id, name, tuple(bbox), False, None, 0)


def scene(*instances: Instance, captions=("A man skiing.",), width=200, height=100) -> Scene:
    return Scene(42, "000000000042.jpg", "train2017", width, height, tuple(captions), tuple(instances))


@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [
        (100, 200, 0.5),
        (48, 200, 0.24),
        (200, 200, 1.0),
        (0, 200, 0.0),
        (1, 3, 0.333),
        (2, 3, 0.667),
        (250, 200, 1.0),  # past the right edge: clamped
        (-3, 200, 0.0),  # left of the image: clamped
        (-0.0, 200, 0.0),  # never prints -0.0
        (0.05, 200, 0.0),  # rounds to zero
        (199.95, 200, 1.0),
    ],
)
def test_normalize(value, size, expected):
    got = normalize(value, size)
    assert got == expected
    assert repr(got) == repr(expected)


def test_normalize_matches_python_round_everywhere():
    for pixel in range(0, 641):
        for size in (427, 480, 640):
            expected = min(max(round(pixel / size, 3), 0.0), 1.0)
            assert repr(normalize(pixel, size)) == repr(expected + 0.0)


def test_box_corners_turn_xywh_into_normalized_corners():
    assert box_corners((20.0, 10.0, 100.0, 50.0), 200, 100) == [0.1, 0.1, 0.6, 0.6]
    # a box running past the bottom-right corner is clamped to 1.0
    assert box_corners((150.0, 80.0, 100.0, 50.0), 200, 100) == [0.75, 0.8, 1.0, 1.0]


def test_keypoint_values_integer_visibility_and_unlabelled_zeros():
    kps = [100.0, 50.0, 2.0, 30.0, 20.0, 1.0, 77.0, 33.0, 0.0] + [0.0] * 42
    values = keypoint_values(tuple(kps), 200, 100)
    assert values[:9] == [0.5, 0.5, 2, 0.15, 0.2, 1, 0.0, 0.0, 0]
    assert all(type(v) is int for v in values[2::3])
    assert len(values) == 51


def test_person_line_with_keypoints_exact_text():
    kps = [0.0] * 51
    kps[0:3] = [100.0, 20.0, 2.0]  # nose, visible
    kps[30:33] = [140.0, 60.0, 1.0]  # left wrist, occluded
    text = format_context(scene(person(7, (50.0, 10.0, 100.0, 80.0), kps), thing(8, "skis", (60.0, 90.0, 80.0, 5.0))))
    expected_kps = ["0.5, 0.2, 2"] + ["0.0, 0.0, 0"] * 9 + ["0.7, 0.6, 1"] + ["0.0, 0.0, 0"] * 6
    assert text == (
        "A man skiing.\n\n"
        f"person: [0.25, 0.1, 0.75, 0.9], keypoints: [{', '.join(expected_kps)}]\n"
        "skis: [0.3, 0.9, 0.7, 0.95]"
    )


def test_person_without_labelled_keypoints_prints_box_only_and_crowd_is_left_out():
    text = format_context(
        scene(
            person(3, (0.0, 0.0, 20.0, 10.0)),
            person(4, (0.0, 50.0, 200.0, 50.0), iscrowd=True),
            Instance(5, "person", (10.0, 10.0, 10.0, 10.0), False, None, 0),  # no keypoint annotation at all
        )
    )
    assert text.splitlines()[2:] == ["person: [0.0, 0.0, 0.1, 0.1]", "person: [0.05, 0.1, 0.1, 0.2]"]


def test_instances_keep_their_given_order_and_captions_are_stripped():
    text = format_context(
        scene(thing(1, "cup", (0, 0, 10, 10)), thing(9, "bowl", (0, 0, 20, 20)), captions=(" One. \n", "Two.", "  "))
    )
    assert text == "One.\nTwo.\n\ncup: [0.0, 0.0, 0.05, 0.1]\nbowl: [0.0, 0.0, 0.1, 0.2]"


def test_captions_with_inner_newlines_and_tabs_stay_one_line_each():
    captions = ("A man\nriding a  horse.\t", "Two\n\nlines.", "\r\n", "Plain.")
    text = format_context(scene(thing(1, "horse", (0, 0, 10, 10)), captions=captions))
    assert text == "A man riding a horse.\nTwo lines.\nPlain.\n\nhorse: [0.0, 0.0, 0.05, 0.1]"
    assert text.count("\n\n") == 1  # the only blank line ends the captions


def test_whole_pixel_keypoints_given_as_ints_format_like_floats():
    ints = [100, 50, 2, 200, 100, 1] + [0] * 45  # a scene built in code, not decoded from JSON
    floats = [float(v) for v in ints]
    as_ints = format_context(scene(person(1, (0, 0, 200, 100), ints)))
    assert as_ints == format_context(scene(person(1, (0.0, 0.0, 200.0, 100.0), floats)))
    assert "keypoints: [0.5, 0.5, 2, 1.0, 1.0, 1, 0.0, 0.0, 0" in as_ints


def test_scene_without_captions_or_objects():
    assert format_context(scene(captions=())) == ""
    assert format_context(scene()) == "A man skiing."


def test_unknown_mode_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown context mode 'fancy'"):
        format_context(scene(), "fancy")


def test_paper_plus_facts_appends_the_facts_block(coco_root):
    from keypoint_instruct.coco.posenotes import facts_block

    first = select_scenes(load_scenes(coco_root, "val2014"), min_keypoints=8, limit=1)[0]
    paper, facts = format_context(first), format_context(first, "paper+facts")
    block = facts_block(first)
    assert block
    assert facts == f"{paper}\n\n{block}"


def _fixture_rows(coco_root: Path, split: str) -> list[dict]:
    scenes = load_scenes(coco_root, split)
    # images that exercise every rule: a crowd, a person without keypoints, a well-labelled person, no people
    picks: dict[str, Scene] = {}
    for s in scenes.values():
        kinds = {
            "crowd": any(i.iscrowd for i in s.instances),
            "unlabelled_person": any(
                i.category == "person" and not i.iscrowd and not i.num_keypoints for i in s.instances
            ),  # fmt: skip
            "all_17": any(i.num_keypoints == 17 for i in s.instances),
            "no_people": not any(i.category == "person" for i in s.instances),
        }
        for kind, present in kinds.items():
            if present and kind not in picks:
                picks[kind] = s
    assert set(picks) == {"crowd", "unlabelled_person", "all_17", "no_people"}
    chosen = sorted({s.image_id: s for s in picks.values()}.values(), key=lambda s: s.image_id)
    return [{"image_id": s.image_id, "file_name": s.file_name, "context": format_context(s)} for s in chosen]


@pytest.mark.parametrize("split", ["val2014", "train2017"])
def test_snapshot_of_fixture_contexts(coco_root, split):
    rows = _fixture_rows(coco_root, split)
    path = SNAPSHOTS / f"{split}.jsonl"
    text = "".join(json.dumps(row) + "\n" for row in rows)
    check_snapshot(path, text, f"contexts of the {split} fixture")
    naming = r"COCO_val2014_\d{12}\.jpg" if split == "val2014" else r"\d{12}\.jpg"
    assert all(re.fullmatch(naming, row["file_name"]) for row in rows)


def test_every_fixture_context_line_follows_the_format(coco_root):
    number = r"(?:0\.\d{1,3}|1\.0|0\.0)"
    box_line = re.compile(rf"[a-z ]+: \[{number}(?:, {number}){{3}}\]")
    kp = rf"(?:{number}, {number}, [12]|0\.0, 0\.0, 0)"
    person_line = re.compile(rf"person: \[{number}(?:, {number}){{3}}\], keypoints: \[{kp}(?:, {kp}){{16}}\]")
    for s in load_scenes(coco_root, "train2017").values():
        captions, _, objects = format_context(s).partition("\n\n")
        assert len(captions.splitlines()) == len(s.captions) >= 5
        expected = [i for i in s.instances if not i.iscrowd]
        lines = objects.splitlines()
        assert len(lines) == len(expected)
        for line, inst in zip(lines, expected, strict=True):
            pattern = person_line if inst.num_keypoints else box_line
            assert pattern.fullmatch(line), line
            assert line.startswith(inst.category + ": ")


def test_select_scenes_by_people_and_keypoints():
    few = [0.0] * 51
    few[2] = 2.0
    many = [1.0, 1.0, 2.0] * 17
    scenes = {
        3: Scene(3, "c", "s", 10, 10, (), (person(1, (0, 0, 1, 1), many), person(2, (0, 0, 1, 1), many))),
        1: Scene(1, "a", "s", 10, 10, (), (person(3, (0, 0, 1, 1), few),)),
        2: Scene(2, "b", "s", 10, 10, (), (thing(4, "cup", (0, 0, 1, 1)), person(5, (0, 0, 1, 1), many, True))),
    }
    ids = lambda chosen: [s.image_id for s in chosen]  # noqa: E731
    assert ids(select_scenes(scenes)) == [1, 3]
    assert ids(select_scenes(scenes, min_keypoints=8)) == [3]
    assert ids(select_scenes(scenes, min_persons=2)) == [3]
    assert ids(select_scenes(scenes, min_persons=0)) == [1, 2, 3]
    assert ids(select_scenes(scenes.values(), limit=1)) == [1]
    with pytest.raises(UsageError):
        select_scenes(scenes, min_keypoints=18)


def test_fixture_has_enough_well_labelled_images_for_hpaub(coco_root):
    assert len(select_scenes(load_scenes(coco_root, "val2014"), min_keypoints=8)) >= 36


def _plain_line(inst: Instance, width: int, height: int) -> str:
    """The rules written the slow, obvious way: the fast formatter must agree with it."""
    line = f"{inst.category}: [{', '.join(repr(v) for v in box_corners(inst.bbox, width, height))}]"
    if inst.keypoints is not None and any(v > 0 for v in inst.keypoints[2::3]):
        line += f", keypoints: [{', '.join(repr(v) for v in keypoint_values(inst.keypoints, width, height))}]"
    return line


def test_fast_formatting_agrees_with_the_plain_rules(coco_root):
    import random

    from keypoint_instruct.coco.context import instance_line

    rng = random.Random(0)
    cases = [(i, s.width, s.height) for s in load_scenes(coco_root, "val2014").values() for i in s.instances]
    for _ in range(300):  # fractional, negative and out-of-image keypoints and boxes
        kps = []
        for _ in range(17):
            kps += [rng.choice([rng.uniform(-20, 700), float(rng.randint(-5, 700))]), rng.uniform(-20, 500),
                    float(rng.choice([0, 1, 2]))]  # fmt: skip
        bbox = (rng.uniform(-10, 600), rng.uniform(-10, 400), rng.uniform(0, 300), rng.uniform(0, 300))
        cases.append((person(1, bbox, kps), rng.choice([427, 480, 640]), rng.choice([360, 480, 640])))
    for inst, width, height in cases:
        assert instance_line(inst, width, height) == _plain_line(inst, width, height)
