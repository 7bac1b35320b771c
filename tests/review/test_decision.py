"""The review's one adapter to the build: every part's fate and reason, where the filter fired, and the build's
own counts and choice of answer agreeing with it."""

from __future__ import annotations

import types

import pytest

from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.dataset import quality
from keypoint_instruct.dataset.samples import BuildStats, iter_rows
from keypoint_instruct.llm.store.cache import CachedResponse
from keypoint_instruct.review.decision import DROPPED, KEPT, decide, used_response
from tests.pages import LEAKY_CONVERSATION, TWO_QUESTIONS

SPLIT = "train2017"


def instruction(image_id: int, prompt_version: str = "") -> str:
    return f"Describe the people in image {image_id}."


@pytest.fixture(scope="module")
def scene(coco_root):
    scenes = load_scenes(coco_root, SPLIT)
    return scenes[min(scenes)]


def response(task, text, *, scene, finish_reason="stop", key=None, created_at="2026-11-01T00:00:00+00:00"):
    return CachedResponse(
        key=key or f"{task}-key",
        task=task,
        image_id=scene.image_id,
        coco_split=SPLIT,
        model="scripted-teacher",
        prompt_version="v-test",
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=10,
        completion_tokens=5,
        cached_tokens=0,
        cost_usd=0.5,
        latency_s=0.1,
        created_at=created_at,
    )


def test_each_conversation_question_gets_the_builds_fate_and_reason(scene):
    decision = decide(response("conversation", LEAKY_CONVERSATION, scene=scene), scene, instruction=instruction)
    got = [(p.status, p.reason) for p in decision.parts]
    assert got == [
        (DROPPED, quality.COORDINATE_LEAKAGE),
        (DROPPED, quality.NAMES_SOURCE),
        (KEPT, None),
        (DROPPED, quality.REPEATED_QUESTION),
        (DROPPED, quality.REFUSAL),
    ]
    assert decision.status == KEPT and decision.rows == 1
    assert decision.dropped == {"coordinate_leakage": 1, "names_source": 1, "refusal": 1, "repeated_question": 1}
    assert decision.reasons == ("coordinate_leakage", "names_source", "repeated_question", "refusal")


def test_findings_are_the_spans_the_filters_fired_on(scene):
    parts = decide(response("conversation", LEAKY_CONVERSATION, scene=scene), scene, instruction=instruction).parts
    spans = {p.reason: [(f.where, f.text) for f in p.findings] for p in parts if p.reason}
    assert spans[quality.COORDINATE_LEAKAGE] == [("answer", "[0.42, 0.31]")]  # the numbers inside: one finding
    assert spans[quality.NAMES_SOURCE] == [("answer", "keypoints")]
    assert [t for _, t in spans[quality.REFUSAL]] == ["cannot see the image"]
    assert spans[quality.REPEATED_QUESTION] == [("question", "Is the person on skis?")]  # the repeat itself
    for part in parts:
        for f in part.findings:
            text = part.answer if f.where == "answer" else part.question
            assert text[f.start : f.end] == f.text


def test_a_complex_reasoning_answer_keeps_its_first_question_only(scene):
    decision = decide(response("complex_reasoning", TWO_QUESTIONS, scene=scene), scene, instruction=instruction)
    assert [(p.status, p.reason) for p in decision.parts] == [(KEPT, None), (DROPPED, quality.EXTRA_PAIR)]


def test_a_description_is_paired_with_the_builds_instruction(scene):
    decision = decide(
        response("detailed_description", "The bounding box shows a skier.", scene=scene),
        scene,
        instruction=instruction,
    )
    (part,) = decision.parts
    assert part.instruction and part.question == instruction(scene.image_id)
    assert (decision.status, part.reason) == (DROPPED, quality.NAMES_SOURCE)
    assert [f.text for f in part.findings] == ["bounding box"]


@pytest.mark.parametrize(
    ("text", "finish_reason", "reason"),
    [
        ("Question: Why?\nAnswer: Because the", "length", quality.TRUNCATED),
        ("", "refusal", quality.REFUSAL),
        ("No labels here.", "stop", quality.UNPARSEABLE),
        ("   ", "stop", quality.EMPTY),
        ("Question: Where at 0.35?\nAnswer: There.", "content_filter", quality.CONTENT_FILTER),
    ],
)
def test_whole_response_drops_name_one_reason(scene, text, finish_reason, reason):
    decision = decide(
        response("conversation", text, scene=scene, finish_reason=finish_reason), scene, instruction=instruction
    )
    assert (decision.status, decision.reason, decision.parts, decision.rows) == (DROPPED, reason, (), 0)
    assert decision.dropped == {reason: 1}


def test_a_rule_the_build_gains_shows_on_the_page_with_no_change_here(scene, monkeypatch):
    """The page asks the build's own decide(): a new filter there is a new reason here, with its span."""
    from keypoint_instruct.dataset import decide as build_rules

    stricter = types.SimpleNamespace(**vars(quality))

    def text_hit(text, *, scene=None, check_refusal=True):
        if "glides" in text:
            return quality.Hit("new_rule", text.index("glides"), text.index("glides") + len("glides"))
        return quality.text_hit(text, scene=scene, check_refusal=check_refusal)

    stricter.text_hit = text_hit
    monkeypatch.setattr(build_rules, "quality", stricter)
    decision = decide(response("conversation", LEAKY_CONVERSATION, scene=scene), scene, instruction=instruction)
    glides = decision.parts[2]
    assert (glides.status, glides.reason) == (DROPPED, "new_rule")
    assert [(f.where, f.text) for f in glides.findings] == [("answer", "glides")]
    assert decision.dropped["new_rule"] == 1


def test_the_answer_used_among_several_is_the_one_the_build_uses(scene, coco_root):
    old = response("conversation", "Question: A?\nAnswer: Old.", scene=scene, key="k1", created_at="2026-01-01")
    new = response("conversation", "Question: A?\nAnswer: New.", scene=scene, key="k2", created_at="2026-02-01")
    cut = response("conversation", "Question: A?\nAnswer: Cu", scene=scene, key="k3", created_at="2026-03-01",
                   finish_reason="length")  # fmt: skip
    for group in ([old, new], [new, old, cut], [cut, old], [cut]):
        rows = list(
            iter_rows(group, {scene.image_id: scene}, coco_root=coco_root, instruction=instruction, stats=BuildStats())
        )
        used = used_response(group)
        if rows:
            assert {row["response_key"] for row in rows} == {used.key}
        else:
            assert used.finish_reason == "length"


def test_a_contradicted_claim_names_its_claim_whom_it_was_checked_against_and_the_fact():
    from tests.dataset.test_verify import SITTING_RIGHT, body, person
    from tests.dataset.test_verify import scene as posed

    two = posed(person(body(), at=150, ident=1), person(SITTING_RIGHT, at=450, ident=2))
    text = "Question: What are they doing?\nAnswer: {}"
    said = decide(response("conversation", text.format("The person on the left is sitting down."), scene=two),
                  two, instruction=instruction)  # fmt: skip
    (finding,) = said.parts[0].findings
    assert said.parts[0].reason == quality.POSE_CONTRADICTION and finding.text.startswith("The person on the left")
    assert finding.fact.startswith("\u201csitting\u201d, said of Person 1: ")
    nobody = decide(response("conversation", text.format("Someone is lying on the grass."), scene=two),
                    two, instruction=instruction)  # fmt: skip
    (finding,) = nobody.parts[0].findings
    assert finding.fact.startswith("\u201clying") and "\u201d fits no one in the image: Person 1: " in finding.fact
    assert "Person 2" in finding.fact
