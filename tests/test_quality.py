from __future__ import annotations

import pytest

from keypoint_instruct import quality


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("His left wrist is at 0.42 of the image width.", quality.COORDINATE_LEAKAGE),
        ("The elbow is near .375 horizontally.", quality.COORDINATE_LEAKAGE),
        ("The box [12, 40, 200, 310] covers him.", quality.COORDINATE_LEAKAGE),
        ("According to the captions, he is skiing.", quality.NAMES_SOURCE),
        ("The bounding box shows a person on the left.", quality.NAMES_SOURCE),
        ("His keypoints show bent knees.", quality.NAMES_SOURCE),
        ("Judging by the coordinates, she is crouching.", quality.NAMES_SOURCE),
        ("I'm sorry, but I cannot see the image.", quality.REFUSAL),
        ("I\u2019m sorry, I can\u2019t tell.", quality.REFUSAL),
        ("As an AI, I have no eyes.", quality.REFUSAL),
        ("Whether he is tired cannot be determined.", quality.REFUSAL),
    ],
)
def test_answers_dropped_with_reason(answer, reason):
    assert quality.pair_reason("What is he doing?", answer) == reason


@pytest.mark.parametrize(
    "answer",
    [
        "He is skiing downhill with his knees bent about 90 degrees.",
        "Two players are jumping for the ball, arms raised.",
        "She holds a 1.5 metre pole.",  # a measurement, not a normalised coordinate
        "The boy is 10 years old and runs (fast).",
    ],
)
def test_clean_answers_kept(answer):
    assert quality.pair_reason("What is happening?", answer) is None


def test_question_naming_the_source_is_dropped_but_question_refusal_words_are_not_checked():
    assert quality.pair_reason("What does the caption say?", "He is surfing.") == quality.NAMES_SOURCE
    assert quality.pair_reason("Why can't he reach the ball?", "His arm is too short.") is None
    assert quality.pair_reason(None, "The caption says so.") == quality.NAMES_SOURCE


def test_truncation_is_a_response_reason():
    assert quality.response_reason("length") == quality.TRUNCATED
    assert quality.response_reason("stop") is None


def test_question_normalisation():
    assert quality.normalize_question("What is he doing?") == quality.normalize_question("  what is HE doing ")
    assert quality.normalize_question("What is he doing?") != quality.normalize_question("What is she doing?")


def test_every_reason_is_described():
    assert set(quality.REASON_DESCRIPTIONS) == set(quality.REASONS)
