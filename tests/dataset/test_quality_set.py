"""The labelled quality set (benchmarks/quality_set/) pinned: what the build decides for each item stays right.

Every leak is dropped under the reason code of its kind, every refusal as a refusal, every good answer is kept;
the pose verifier's recall and precision on the contradiction items are held to the issue's goals. The items about
real photographs need ``../shared/realposes`` beside the checkout (``KPI_REALPOSES`` points elsewhere); without it
they are skipped with that reason, the synthetic ones still run.
"""

from __future__ import annotations

import importlib.util
import json
from collections import Counter

import pytest

from keypoint_instruct.dataset import quality
from tests.paths import REALPOSES, REPO

_spec = importlib.util.spec_from_file_location("bench_quality", REPO / "benchmarks" / "bench_quality.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

ITEMS = bench.load_items()
HAVE_REAL = (REALPOSES / "annotations").is_dir()
NO_REAL = f"the real-pose tree {REALPOSES} is not there (set KPI_REALPOSES to it)"
# Good answers the build drops although their label says keep, each with the reason it cannot be helped; empty
# while the filters get every one right. A new entry needs a reason a reviewer accepts.
KNOWN_FALSE_DROPS: dict[str, str] = {}


@pytest.fixture(scope="module")
def scenes():
    return bench.load_set_scenes(realposes=REALPOSES if HAVE_REAL else None)


def _ids(label: str) -> list:
    marks = []
    for item in ITEMS:
        if item["label"] != label:
            continue
        skip = item["scene"].startswith("realposes:") and not HAVE_REAL
        marks.append(pytest.param(item, id=item["id"], marks=pytest.mark.skipif(skip, reason=NO_REAL)))
    return marks


def test_the_set_is_the_labelled_one():
    """276 items with their labels: a changed label shows here (labels are never edited to fit the filters)."""
    assert len(ITEMS) == 276 and len({item["id"] for item in ITEMS}) == 276
    assert Counter(item["label"] for item in ITEMS) == {"keep": 127, "contradiction": 66, "leak": 57, "refusal": 26}
    lines = (REPO / "benchmarks" / "quality_set" / "labelled.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [item["id"] for item in ITEMS]


@pytest.mark.parametrize("item", _ids("leak"))
def test_every_leak_is_dropped_under_the_reason_of_its_kind(item, scenes):
    assert bench.decided_reason(item, scenes[item["scene"]]) == bench.expected_reason(item), item["why"]


@pytest.mark.parametrize("item", _ids("refusal"))
def test_every_refusal_is_dropped_as_a_refusal(item, scenes):
    assert bench.decided_reason(item, scenes[item["scene"]]) == quality.REFUSAL, item["why"]


@pytest.mark.parametrize("item", _ids("keep"))
def test_every_good_answer_is_kept(item, scenes):
    decided = bench.decided_reason(item, scenes[item["scene"]])
    if item["id"] in KNOWN_FALSE_DROPS:
        assert decided != bench.KEPT, f"{item['id']} is kept now: remove it from KNOWN_FALSE_DROPS"
    else:
        assert decided == bench.KEPT, item["why"]


@pytest.mark.skipif(not HAVE_REAL, reason=NO_REAL)
def test_the_verifier_meets_the_goals_on_the_set(scenes):
    """find_contradictions on the answer of every item the text filters let through (leaks and refusals never
    reach it in a build): at least 80% of the contradictions found, at least 95% of what it flags contradictions."""
    from keypoint_instruct.dataset.decide import decide
    from keypoint_instruct.dataset.verify import find_contradictions

    flagged, caught = [], 0
    for item in ITEMS:
        if item["label"] not in ("keep", "contradiction"):
            continue
        scene = scenes[item["scene"]]
        (unit,) = decide(item["text"], item["task"], scene, verify_poses=False).units
        if find_contradictions(unit.answer, scene):
            flagged.append(item["label"])
            caught += item["label"] == "contradiction"
    contradictions = sum(item["label"] == "contradiction" for item in ITEMS)
    assert caught >= 0.8 * contradictions, f"recall {caught}/{contradictions}"
    assert flagged and flagged.count("contradiction") >= 0.95 * len(flagged), f"precision {Counter(flagged)}"
