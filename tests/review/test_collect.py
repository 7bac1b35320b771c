"""Reading the cache as the build does: the review's counts are the build's; large caches are sampled per reason."""

from __future__ import annotations

import pytest

from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.dataset.folder import build_folder
from keypoint_instruct.errors import UnknownImageError, UsageError
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.review.collect import Filters, gather, sample, survey
from keypoint_instruct.teacher.catalogue import known_prompts
from tests.fixtures_dataset import DATASET_SPLIT
from tests.pages import TEACHER, mixed_cache


@pytest.fixture(scope="module")
def mixed(offline_cache, tmp_path_factory):
    return mixed_cache(offline_cache, tmp_path_factory.mktemp("mixed") / "mixed.sqlite")


def _survey(coco_root, cache_path, filters=None):
    scenes = load_scenes(coco_root, DATASET_SPLIT)
    with ResponseCache(cache_path) as cache:
        return survey(cache, scenes, DATASET_SPLIT, filters or Filters(), cache_path, known_prompts(cache).instruction)


def test_the_counts_are_the_builds_counts(coco_root, mixed, tmp_path):
    cache_path, _ = mixed
    summary, _ = _survey(coco_root, cache_path)
    _, stats = build_folder(
        coco_root=coco_root,
        coco_split=DATASET_SPLIT,
        cache_path=cache_path,
        out=tmp_path / "ds",
        version="0.1.0",
        teacher_models=("offline-posefacts", TEACHER),
    )
    assert summary.by_reason() == stats.dropped_by_reason()
    assert dict(summary.rows) == dict(stats.samples)
    assert dict(summary.responses) == dict(stats.responses)
    assert {k: v for k, v in summary.by_reason().items() if v} == {
        "unparseable": 1,
        "coordinate_leakage": 1,
        "names_source": 2,
        "refusal": 1,
        "repeated_question": 1,
        "superseded": 5,
        "extra_pair": 1,
    }


def test_tags_name_what_each_image_shows(coco_root, mixed):
    cache_path, cases = mixed
    _, tags = _survey(coco_root, cache_path)
    assert {"coordinate_leakage", "names_source", "refusal", "repeated_question", "kept"} <= tags[cases["leaky"]]
    assert "superseded" in tags[cases["truncated"]]  # the cut answer is newer, but the complete one is used
    assert "extra_pair" in tags[cases["extra_pair"]]
    untouched = next(i for i in tags if i not in cases.values())
    assert tags[untouched] == {"kept"}


def test_task_filter_reads_only_those_tasks(coco_root, mixed):
    summary, _ = _survey(coco_root, mixed[0], Filters(tasks=("complex_reasoning",)))
    assert set(summary.responses) == {"complex_reasoning"}


def test_gather_keeps_every_answer_of_the_chosen_images(coco_root, mixed):
    cache_path, cases = mixed
    scenes = load_scenes(coco_root, DATASET_SPLIT)
    with ResponseCache(cache_path) as cache:
        found = gather(
            cache, scenes, DATASET_SPLIT, Filters(), cache_path, [cases["leaky"]], known_prompts(cache).instruction
        )
    entries = found[cases["leaky"]]
    used = [e.response.task for e in entries if not e.superseded]
    assert used == ["conversation", "detailed_description", "complex_reasoning"]
    (old,) = [e for e in entries if e.superseded]
    assert old.response.model == "offline-posefacts" and old.decision.reason == "superseded"


def test_an_image_not_in_the_split_is_one_clear_error(coco_root, mixed):
    cache_path, _ = mixed
    scenes = load_scenes(coco_root, DATASET_SPLIT)
    with ResponseCache(cache_path) as cache, pytest.raises(UnknownImageError, match="not in COCO split"):
        survey(
            cache,
            dict(list(scenes.items())[:3]),
            DATASET_SPLIT,
            Filters(),
            cache_path,
            known_prompts(cache).instruction,
        )


def test_sampling_keeps_rare_reasons_and_is_stable():
    tags = {i: {"kept"} for i in range(1000)}
    tags[500] = {"kept", "refusal"}
    tags[700] = {"truncated"}
    tags.update({i: {"kept", "names_source"} for i in range(900, 960)})
    chosen, shown = sample(tags, 20)
    assert len(chosen) == 20 and chosen == sorted(chosen)
    assert {500, 700} <= set(chosen)
    assert shown["names_source"] >= 6 and shown["refusal"] == 1 and shown["truncated"] == 1
    assert sample(tags, 20) == (chosen, shown)
    assert sample(tags, None)[0] == sorted(tags)
    assert sample({1: {"kept"}}, 5)[0] == [1]


def test_filters():
    assert Filters(only="dropped").wants({"kept", "refusal"})
    assert not Filters(only="dropped").wants({"kept"})
    assert Filters(only="kept").wants({"kept", "refusal"})
    assert Filters(reason="refusal").wants({"refusal"}) and not Filters(reason="refusal").wants({"empty"})
    with pytest.raises(UsageError, match="not a reason code"):
        Filters(reason="leaky")
    with pytest.raises(UsageError, match="select nothing together"):
        Filters(only="kept", reason="refusal")
