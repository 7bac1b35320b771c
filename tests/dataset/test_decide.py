from __future__ import annotations

import pytest

from keypoint_instruct.coco.annotations import Instance, Scene
from keypoint_instruct.dataset import decide as decide_module
from keypoint_instruct.dataset import quality, verify
from keypoint_instruct.dataset.claims import split_answer
from keypoint_instruct.dataset.decide import decide

SCENE = Scene(
    7,
    "000000000007.jpg",
    "val2017",
    640,
    480,
    ("A catcher crouches behind the plate.", "A baseball game in progress."),
    (Instance(1, "person", (100.0, 200.0, 150.0, 200.0), False, None, 0),),
)


def contradicting(claim_words: str, *, person: int | None = 1):
    """A stand-in verifier: every sentence holding ``claim_words`` is contradicted."""

    def find(text, scene):
        out = []
        _, answer, start = split_answer(text)  # like the real one: a "Question: ...\nAnswer: " lead is context
        for sentence in answer.split(". "):
            if claim_words in sentence:
                out.append(
                    verify.Contradiction(
                        sentence, start, start + len(sentence), claim_words, person, "hips far below the shoulders"
                    )
                )
            start += len(sentence) + 2
        return out

    return find


def test_every_pair_gets_a_unit_with_its_finding_and_the_offsets_point_into_the_response():
    text = (
        "Question: What is the catcher doing?\nAnswer: He crouches low behind the plate.\n===\n"
        "Question: How is his knee?\nAnswer: His left knee is bent at about 40 degrees.\n===\n"
        "Question: What is the catcher doing?\nAnswer: Waiting for the pitch.\n===\n"
        "Question: Who is the umpire?\nAnswer: Person 2, behind the catcher."
    )
    decision = decide(text, "conversation", SCENE)
    assert [u.finding.reason if u.finding else None for u in decision.units] == [
        None,
        quality.LEAK_ANGLE,
        quality.REPEATED_QUESTION,
        quality.LEAK_PERSON_LABEL,
    ]
    assert [u.index for u in decision.kept] == [0]
    for finding in decision.findings:
        assert text[finding.start : finding.end] == finding.span
    assert decision.units[1].finding.span == "40 degrees"
    assert decision.units[2].finding.span == "What is the catcher doing?"


def test_response_level_reasons_leave_no_units():
    assert decide("Question: Why?\nAnswer: Because", "complex_reasoning", SCENE, finish_reason="length").finding == (
        decide_module.Finding(quality.TRUNCATED)
    )
    assert decide("  ", "conversation", SCENE).finding.reason == quality.EMPTY
    assert decide("no labels here", "complex_reasoning", SCENE).finding.reason == quality.UNPARSEABLE
    refused = decide("I can't help with that.", "detailed_description", SCENE, finish_reason="refusal")
    assert refused.finding.reason == quality.REFUSAL and refused.units == ()


def test_complex_reasoning_keeps_its_first_pair_and_counts_the_others():
    text = "Question: Why crouch?\nAnswer: To catch low pitches.\nQuestion: And then?\nAnswer: He throws."
    decision = decide(text, "complex_reasoning", SCENE)
    assert [u.kept for u in decision.units] == [True, False]
    assert decision.units[1].finding.reason == quality.EXTRA_PAIR


def test_a_contradicted_claim_drops_the_pair_of_a_conversation(monkeypatch):
    monkeypatch.setattr(verify, "find_contradictions", contradicting("standing upright"))
    text = (
        "Question: What is the catcher doing?\nAnswer: He is standing upright. He waits.\n===\n"
        "Question: Where is the ball?\nAnswer: In the air."
    )
    decision = decide(text, "conversation", SCENE)
    dropped, kept = decision.units
    assert kept.kept and not dropped.kept
    finding = dropped.finding
    assert (finding.reason, finding.claim, finding.person) == (quality.POSE_CONTRADICTION, "standing upright", 1)
    assert finding.fact == "hips far below the shoulders"
    assert finding.span == "He is standing upright" and text[finding.start : finding.end] == finding.span


@pytest.mark.parametrize("task", ["detailed_description", "complex_reasoning"])
def test_a_contradicted_claim_drops_a_description_or_reasoning_response(monkeypatch, task):
    monkeypatch.setattr(verify, "find_contradictions", contradicting("standing upright", person=None))
    body = "The catcher waits. He is standing upright. The crowd cheers."
    text = body if task == "detailed_description" else f"Question: What now?\nAnswer: {body}"
    decision = decide(text, task, SCENE)
    assert decision.kept == () and decision.findings[0].reason == quality.POSE_CONTRADICTION
    assert decision.findings[0].person is None


def test_verification_off_or_without_a_scene_keeps_what_the_verifier_would_drop(monkeypatch):
    monkeypatch.setattr(verify, "find_contradictions", contradicting("standing upright"))
    text = "He is standing upright."
    assert decide(text, "detailed_description", SCENE).kept == ()
    off = decide(text, "detailed_description", SCENE, verify_poses=False)
    assert len(off.kept) == 1 and not off.verified
    assert len(decide(text, "detailed_description", None).kept) == 1


def test_leaks_come_before_contradictions(monkeypatch):
    monkeypatch.setattr(verify, "find_contradictions", contradicting("kneeling"))
    decision = decide("The pose notes say he is kneeling.", "detailed_description", SCENE)
    assert decision.findings[0].reason == quality.LEAK_NOTES
