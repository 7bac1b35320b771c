from __future__ import annotations

import pytest

from keypoint_instruct.dataset import quality


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
        # forms that got through: a hyphenated "key-points", a visibility value, the singular "description"
        ("The key-points show a deep squat.", quality.NAMES_SOURCE),
        ("Her right ankle key-point is hidden.", quality.NAMES_SOURCE),
        ("His left ankle is occluded (v=1).", quality.COORDINATE_LEAKAGE),
        ("Both wrists have v = 2, so they are in view.", quality.COORDINATE_LEAKAGE),
        ("In the provided description, the man jumps.", quality.NAMES_SOURCE),
        ("The image description mentions a frisbee.", quality.NAMES_SOURCE),
        ("Coordinates indicate a lean to the left.", quality.NAMES_SOURCE),
        ("His joint coordinates place the wrists above the head.", quality.NAMES_SOURCE),
        ("The pose data shows a lunge.", quality.NAMES_SOURCE),
        ("The skeleton data suggests she is sitting.", quality.NAMES_SOURCE),
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
        "A detailed description of his stance: feet apart, knees soft.",
        "The V-shaped arms show joy.",
        "He coordinates his arms and legs while swimming.",
        "She holds a map with coordinates for the hike.",
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
    assert quality.response_reason("content_filter") == quality.CONTENT_FILTER


def test_a_provider_refusal_is_a_response_reason():
    """OpenAI's refusal field (content null) is stored as its text with finish_reason ``refusal`` by the teacher:
    the whole response is a refusal, whatever its words."""
    assert quality.response_reason("refusal") == quality.REFUSAL
    assert "finish_reason `refusal`" in quality.REASON_DESCRIPTIONS[quality.REFUSAL]


def test_question_normalisation():
    assert quality.normalize_question("What is he doing?") == quality.normalize_question("  what is HE doing ")
    assert quality.normalize_question("What is he doing?") != quality.normalize_question("What is she doing?")


def test_every_reason_is_described():
    assert set(quality.REASON_DESCRIPTIONS) == set(quality.REASONS)


# Replies written the way GPT-4o answers the paper's prompts. Numbers that describe the scene (counts, ages, a
# 3-point shot, a 50/50 grind, a score) and hedges are kept; numbers and wording taken from the input are not.
REALISTIC_KEPT = [
    "In the image, the person is crouching low on the skateboard with both arms stretched out for balance.",
    "Two people are standing on the tennis court; the one on the left is about to serve, racket raised behind her.",
    "The boy looks about 10 years old and is running toward the goal with his arms swinging.",
    "The player is going up for a 3-point shot: his knees are bent and both hands push the ball above his head.",
    "She is probably around 1.75 meters tall, judging by how she stands next to the door.",
    "Three skiers are in line; the second one has both poles planted and leans forward.",
    "The batter holds the bat at roughly a 45-degree angle over his right shoulder.",
    "Although I cannot be certain from this view, he seems to be about to throw the frisbee.",
    "The two dancers coordinate their movements closely, each mirroring the other's raised arm.",
    "It is around 3:30 in the afternoon, and the score looks like 15-30 in the second set.",
    "The skater is doing a 50/50 grind along the rail, with her weight over her front foot.",
    "Her posture (knees bent, back straight) shows she is ready to spring forward.",
    "He wears the number 23 jersey and is reaching up with his right arm for the rebound.",
    "The man in the middle of the group is the only one sitting; the other 4 stand around him.",
    "It's hard to say exactly what she is looking at, but her head is turned toward the dog.",
]
REALISTIC_DROPPED = [
    ("Based on the keypoints, the man's knees are bent and he is about to jump.", quality.NAMES_SOURCE),
    ("The person's left wrist is located at (0.42, 0.31), which means it is raised.", quality.COORDINATE_LEAKAGE),
    ("His right knee (x=0.5) is lower than his hip.", quality.COORDINATE_LEAKAGE),
    ("The man's nose is at (245, 130) and his wrist at (300, 210).", quality.COORDINATE_LEAKAGE),
    ("The skier occupies [0.1, 0.2, 0.5, 0.9] of the frame.", quality.COORDINATE_LEAKAGE),
    ("Judging from the provided bounding box, the woman is on the left.", quality.NAMES_SOURCE),
    ("Based on the descriptions provided, the skier is going downhill.", quality.NAMES_SOURCE),
    ("From the data provided, the skier appears to be turning left.", quality.NAMES_SOURCE),
    ("According to the five sentences, two people are skiing.", quality.NAMES_SOURCE),
    ("The visibility flags indicate that his right ankle is hidden behind the board.", quality.NAMES_SOURCE),
    ("Her left ankle is labeled but not visible, so the bench probably hides it.", quality.NAMES_SOURCE),
    ("The annotated person on the right has a bent elbow.", quality.NAMES_SOURCE),
    ("The x-coordinate of his right hand is greater than that of his left hand.", quality.NAMES_SOURCE),
    ("I'm sorry, but I can't determine what the person is doing.", quality.REFUSAL),
    ("As an AI language model, I cannot see the image.", quality.REFUSAL),
    ("There is not enough information to tell whether they are friends.", quality.REFUSAL),
]


@pytest.mark.parametrize("answer", REALISTIC_KEPT)
def test_realistic_teacher_answers_are_kept(answer):
    assert quality.pair_reason("What is happening in the image?", answer) is None


@pytest.mark.parametrize(("answer", "reason"), REALISTIC_DROPPED)
def test_realistic_teacher_leaks_and_refusals_are_dropped(answer, reason):
    assert quality.pair_reason("What is happening in the image?", answer) == reason
