"""Two images with the same context share one request key: generate asks once, and the build gives the answer to
both (issue 13: generate counted the second as answered while build reported it as having no response)."""

from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.context import format_context, select_scenes
from keypoint_instruct.coco.synthetic import file_name
from keypoint_instruct.dataset.twins import SharedAnswer, identical_contexts, with_twins
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.teacher.templates import pick_instruction
from keypoint_instruct.vocab import TASKS

SPLIT = "val2014"


def add_twin(root, split: str = SPLIT) -> tuple[int, int]:
    """Give the split's first image with a person a second id: same captions, annotations and picture."""
    original = select_scenes(load_scenes(root, split).values())[0].image_id
    twin = 999_999
    for kind in ("captions", "instances", "person_keypoints"):
        path = root / "annotations" / f"{kind}_{split}.json"
        data = json.loads(path.read_text())
        [image] = [i for i in data["images"] if i["id"] == original]
        data["images"].append({**image, "id": twin, "file_name": file_name(split, twin)})
        copies = [a for a in data["annotations"] if a["image_id"] == original]  # same order, same id in each file
        data["annotations"] += [{**a, "id": a["id"] + 10**9, "image_id": twin} for a in copies]
        path.write_text(json.dumps(data))
    shutil.copyfile(root / split / file_name(split, original), root / split / file_name(split, twin))
    return original, twin


@pytest.fixture(scope="module")
def twin_root(coco_root, tmp_path_factory):
    root = shutil.copytree(coco_root, tmp_path_factory.mktemp("twins") / "coco")
    return root, *add_twin(root)


def test_identical_contexts_are_found_in_either_mode(twin_root):
    root, original, twin = twin_root
    scenes = load_scenes(root, SPLIT)
    for mode in ("paper", "paper+facts"):
        assert format_context(scenes[original], mode) == format_context(scenes[twin], mode)
        assert identical_contexts(scenes, mode) == {original: (twin,), twin: (original,)}


def test_generate_asks_once_and_the_build_gives_the_answer_to_both(twin_root, tmp_path, caplog):
    root, original, twin = twin_root
    cache, out = tmp_path / "c.sqlite", tmp_path / "ds"
    argv = ["generate", "--teacher", "offline", "--task", "all", "--coco-root", str(root), "--split", SPLIT]
    assert main([*argv, "--cache", str(cache)]) == 0
    selected = len(select_scenes(load_scenes(root, SPLIT).values()))
    same_pick = pick_instruction(original) == pick_instruction(twin)  # the description ends with the image's pick
    with ResponseCache(cache) as opened:
        for task in TASKS:
            answered = {r.image_id for r in opened.iter_responses(task=task)}
            shared = task != "detailed_description" or same_pick
            assert original in answered and (twin in answered) != shared
            assert len(answered) == selected - shared
    with caplog.at_level("WARNING"):
        build = ["build", "--coco-root", str(root), "--split", SPLIT, "--cache", str(cache), "--out", str(out)]
        assert main([*build, "--version", "1.0.0"]) == 0
    assert not [r for r in caplog.records if "have no response" in r.getMessage()]  # the two now agree
    rows = pq.read_table(sorted((out / "all").glob("*.parquet"))).to_pylist()
    for task in TASKS:
        mine = [r for r in rows if r["task"] == task and r["image_id"] == original]
        theirs = [r for r in rows if r["task"] == task and r["image_id"] == twin]
        assert mine and theirs and {r["images"][0]["path"] for r in theirs} == {f"{SPLIT}/{file_name(SPLIT, twin)}"}
        shared = task != "detailed_description" or same_pick
        assert ({r["response_key"] for r in mine} == {r["response_key"] for r in theirs}) == shared
        if shared:
            assert [r["messages"] for r in mine] == [r["messages"] for r in theirs]
        else:  # each was asked its own instruction, and is paired with it
            assert theirs[0]["messages"][0]["content"][1]["text"] == pick_instruction(twin)
    card = (out / "README.md").read_text()
    responses = next(line for line in card.splitlines() if line.startswith("- Teacher responses read:"))
    n_shared = 3 if same_pick else 2
    assert f"{3 * selected - n_shared:,} ({n_shared} of them also answer another image" in responses


def test_shared_copies_come_in_order_and_are_not_counted_as_paid(twin_root, tmp_path):
    from keypoint_instruct.dataset.samples import BuildStats
    from tests.fixtures_dataset import put_response

    with ResponseCache(tmp_path / "c.sqlite", create=True) as cache:
        for image_id in (5, 20):
            put_response(cache, "conversation", image_id, "Question: Why?\nAnswer: So.", coco_split=SPLIT)
        merged = list(with_twins(cache.iter_responses(), {20: (3, 30)}, cache.iter_responses()))
    assert [(r.image_id, type(r) is SharedAnswer) for r in merged] == [(3, True), (5, False), (20, False), (30, True)]
    assert merged[0].shared_from == 20 and merged[0].key == merged[2].key
    stats = BuildStats()
    for response in merged:
        stats.add_response(response)
    assert stats.responses["conversation"] == 2 and stats.shared["conversation"] == 2
    assert stats.cost_usd == pytest.approx(0.002)
    with ResponseCache(tmp_path / "c.sqlite") as cache:  # a twin whose request differs (its own instruction): none
        only = list(with_twins(cache.iter_responses(), {20: (3, 30)}, cache.iter_responses(), lambda a, t: t != 3))
    assert [r.image_id for r in only] == [5, 20, 30]
