"""Pose claims of answers checked against keypoints: what is contradicted, what is not, and what cannot be decided."""

from __future__ import annotations

import pytest

from keypoint_instruct.coco.annotations import Instance, Scene
from keypoint_instruct.coco.keypoints import KEYPOINT_NAMES
from keypoint_instruct.coco.posefacts import scene_facts
from keypoint_instruct.dataset.verify import Contradiction, find_contradictions

# Bodies in image pixels (y grows downwards), torso 100 px. Front views have the person's left on the picture's right.
FACE = {"nose": (0, 130), "left_eye": (6, 124), "right_eye": (-6, 124), "left_ear": (12, 127), "right_ear": (-12, 127)}
TRUNK = {"left_shoulder": (35, 170), "right_shoulder": (-35, 170), "left_hip": (22, 270), "right_hip": (-22, 270)}
LEGS = {"left_knee": (22, 335), "right_knee": (-22, 335), "left_ankle": (22, 400), "right_ankle": (-22, 400)}
ARMS = {
    "down": {"left_elbow": (38, 225), "right_elbow": (-38, 225), "left_wrist": (40, 275), "right_wrist": (-40, 275)},
    "up": {"left_elbow": (40, 120), "right_elbow": (-40, 120), "left_wrist": (42, 70), "right_wrist": (-42, 70)},
    "crossed": {"left_elbow": (36, 225), "right_elbow": (-36, 225), "left_wrist": (-12, 215),
                "right_wrist": (12, 218)},
    "hips": {"left_elbow": (65, 220), "right_elbow": (-65, 220), "left_wrist": (25, 262), "right_wrist": (-25, 262)},
    "left_out": {"left_elbow": (90, 172), "left_wrist": (145, 174), "right_elbow": (-38, 225),
                 "right_wrist": (-40, 275)},
    "right_up": {"right_elbow": (-40, 120), "right_wrist": (-42, 70), "left_elbow": (38, 225),
                 "left_wrist": (40, 275)},
}  # fmt: skip
SITTING_RIGHT = {"nose": (25, 150), "left_eye": (20, 145), "left_ear": (5, 148), "left_shoulder": (2, 185),
                 "right_shoulder": (-2, 185), "left_hip": (0, 280), "right_hip": (-1, 280), "left_knee": (90, 282),
                 "right_knee": (89, 282), "left_ankle": (90, 370), "right_ankle": (89, 370),
                 "left_elbow": (10, 235), "left_wrist": (50, 230)}  # fmt: skip
LYING = {"nose": (-130, 380), "left_shoulder": (-100, 375), "right_shoulder": (-100, 390), "left_hip": (0, 375),
         "right_hip": (0, 390), "left_knee": (70, 376), "right_knee": (70, 391), "left_ankle": (140, 377),
         "right_ankle": (140, 392)}  # fmt: skip
HANDSTAND = {"nose": (0, 330), "left_shoulder": (-35, 300), "right_shoulder": (35, 300), "left_elbow": (-33, 350),
             "right_elbow": (33, 350), "left_wrist": (-30, 400), "right_wrist": (30, 400), "left_hip": (-22, 200),
             "right_hip": (22, 200), "left_knee": (-10, 130), "right_knee": (10, 130), "left_ankle": (-8, 60),
             "right_ankle": (8, 60)}  # fmt: skip
BENT_RIGHT = {"nose": (95, 180), "left_eye": (90, 175), "left_ear": (75, 175), "left_shoulder": (64, 196),
              "right_shoulder": (62, 194), "left_hip": (0, 270), "right_hip": (-1, 270), "left_knee": (0, 335),
              "right_knee": (-1, 335), "left_ankle": (0, 400), "right_ankle": (-1, 400)}  # fmt: skip


def body(arms: str = "down", face: bool = True, **moved) -> dict:
    """A frontal standing body; keyword arguments move or (with None) drop joints."""
    joints = (FACE if face else {}) | TRUNK | LEGS | ARMS[arms]
    joints |= {k: v for k, v in moved.items() if v is not None}
    return {k: v for k, v in joints.items() if moved.get(k, ()) is not None}


def person(joints: dict, at: float = 300, ident: int = 1, crowd: bool = False) -> Instance:
    values: list[float] = []
    for name in KEYPOINT_NAMES:
        x, y = joints.get(name, (0, 0))
        values += [float(x + at), float(y), 2.0 if name in joints else 0.0]
    xs = [x + at for x, _ in joints.values()] or [at]
    ys = [y for _, y in joints.values()] or [0]
    box = (min(xs) - 10, min(ys) - 20, max(xs) - min(xs) + 20, max(ys) - min(ys) + 30)
    return Instance(ident, "person", box, crowd, tuple(values), len(joints))


def thing(category: str, box: tuple, ident: int = 50) -> Instance:
    return Instance(ident, category, tuple(float(v) for v in box), False, None, 0)


def scene(*instances: Instance, captions: tuple[str, ...] = ("People in a park.",)) -> Scene:
    return Scene(1, "x.jpg", "val2017", 640, 480, captions, instances)


def flags(text: str, s: Scene) -> list[Contradiction]:
    return find_contradictions(text, s)


STANDER = scene(person(body()))


@pytest.mark.parametrize(
    ("text", "contradicted"),
    [
        ("He is standing beside the path.", False),
        ("He is sitting on a bench.", True),
        ("He kneels on the grass.", True),
        ("He is lying on the grass.", True),
        ("He is doing a handstand.", True),
        ("He stands upright with his arms hanging at his sides.", False),
        ("Both of his arms are raised above his head.", True),
        ("He has his hands on his hips.", True),
        ("He has his arms folded across his chest.", True),
        ("His feet are close together.", False),
        ("He is facing the camera.", False),
        ("He has his back to the camera.", True),
        ("He is lifting his left knee high.", True),
        ("His knees are deeply bent.", True),
        ("He leans forward a little as he walks.", False),  # a lean towards the camera cannot be seen from the front
        ("He is bent sharply forward at the waist.", True),  # ... but a deep bend would shorten the torso
        ("He is jumping.", False),  # no ground to measure from
        ("He waits in a crouched ready position.", True),
        ("He waits in a slightly crouched ready position.", False),  # a degree word: not a plain claim
        ("He is half-kneeling by the path.", False),
    ],
)
def test_claims_about_one_standing_person(text, contradicted):
    assert bool(flags(text, STANDER)) is contradicted


def test_each_posture_against_the_postures_the_geometry_shows():
    sitter, lier, inverted = scene(person(SITTING_RIGHT)), scene(person(LYING)), scene(person(HANDSTAND))
    assert not flags("She is sitting on a chair.", sitter) and flags("She stands by the desk.", sitter)
    assert flags("She is lying along the bench.", sitter)
    assert not flags("He is lying on his back.", lier) and flags("He stands at the water's edge.", lier)
    assert flags("He is sitting up on his towel.", lier)
    assert not flags("She is upside down in a handstand.", inverted)
    assert flags("She is lying on the grass.", inverted) and flags("She stands on the lawn.", inverted)


def test_arms():
    up, right_up = scene(person(body("up"))), scene(person(body("right_up")))
    assert not flags("She throws both arms up above her head.", up)
    assert flags("Her arms hang loosely at her sides.", up)
    assert not flags("He raises his right hand to hail a taxi.", right_up)
    assert flags("He raises his left arm straight up.", right_up)
    assert not flags("He raises one hand.", right_up) and not flags(
        "He is waving with one hand above his head.", right_up
    )
    crossed, akimbo = scene(person(body("crossed"))), scene(person(body("hips")))
    assert not flags("He stands with his arms crossed.", crossed) and flags("He has his hands on his hips.", crossed)
    assert not flags("Her hands are on her hips.", akimbo) and flags("Her arms are folded.", akimbo)
    out = scene(person(body("left_out")))
    assert not flags("She holds her left arm straight out at shoulder height.", out)
    assert flags("She holds her right arm straight out at shoulder height.", out)
    assert flags("She keeps both arms down by her sides.", out)


def test_facing_lean_and_head():
    sitter = scene(person(SITTING_RIGHT))
    assert not flags("He faces the right side of the picture.", sitter)
    assert flags("He is facing the left side of the picture.", sitter)
    assert not flags("He is facing the camera.", sitter)  # a side view is not the opposite of facing the camera
    bent = scene(person(BENT_RIGHT))
    assert not flags("He leans well forward.", bent) and flags("He walks upright with his back straight.", bent)
    assert flags("He is leaning back.", bent)
    turned = scene(person(body(nose=(22, 130), left_ear=None)))
    assert flags("She looks straight at the camera.", turned) and not flags(
        "She looks straight at the camera.", STANDER
    )


def test_legs():
    lifted = scene(person(body(right_knee=(-22, 268), right_ankle=(-20, 330))))
    assert flags("He stands with both feet flat on the ground.", lifted)
    assert not flags("He is standing on his left leg with his right knee up.", lifted)
    wide = scene(person(body(left_ankle=(110, 400), right_ankle=(-110, 400), left_knee=(60, 335),
                             right_knee=(-60, 335))))  # fmt: skip
    assert flags("He stands with his feet together.", wide)
    bent_knees = scene(person(body(left_knee=(60, 320), right_knee=(-60, 320), left_ankle=(22, 380),
                                   right_ankle=(-22, 380))))  # fmt: skip
    assert flags("Her legs are completely straight.", bent_knees) and not flags("Her knees are bent.", bent_knees)


def test_what_the_geometry_cannot_decide_is_never_a_contradiction():
    no_legs = scene(person(body(left_knee=None, right_knee=None, left_ankle=None, right_ankle=None)))
    assert not flags("She is sitting behind the counter.", no_legs)
    tiny = {k: (x * 0.1, 300 + y * 0.1) for k, (x, y) in body().items()}
    assert not flags("The hiker is lying on the rock.", scene(person(tiny)))
    end_on = scene(person(body(right_elbow=(-36, 178), right_wrist=(-35, 184))))  # arm pointing at the lens
    assert not flags("His right elbow is sharply bent.", end_on)
    assert not flags("Her face is hidden behind the sunglasses.", STANDER)  # no pose claim at all
    assert not flags("He stands. An arm held straight out to the side goes with pointing.", STANDER)  # arms in general


@pytest.mark.parametrize(
    "text",
    [
        "He is not sitting.",
        "Neither of them is sitting.",
        "He stands rather than sitting on the suitcase.",
        "He is about to sit down.",
        "He is preparing to kneel.",
        "If he sat on the suitcase, it might tip over.",
        "He would sit down if there were a bench.",
        "Sitting on a cold platform would be uncomfortable.",
        "After sitting on the train for hours, he stands to stretch.",
        "Is he sitting on the suitcase?",
        "The notes say he is sitting, but he stands.",
        "According to the captions he is kneeling.",
        "He fights to stay upright in the wind.",
    ],
)
def test_negated_modal_reported_and_asked_claims_are_not_checked(text):
    assert flags(text, STANDER) == []


def test_hedged_claims_still_claim_and_only_the_answer_is_checked():
    assert flags("He appears to be sitting on his suitcase.", STANDER)
    text = "Question: Is the man sitting?\nAnswer: Yes, he is sitting on the suitcase."
    (found,) = flags(text, STANDER)
    assert text[found.start : found.end] == found.sentence == "Yes, he is sitting on the suitcase."
    assert (found.claim, found.person) == ("sitting", 1) and "not sitting" in found.fact
    assert flags("Question: Is he sitting on the suitcase?\nAnswer: No.", STANDER) == []


def test_person_resolution_between_two_people():
    s = scene(person(body(), at=150, ident=1), person(SITTING_RIGHT, at=450, ident=2))
    (left,) = flags("The person on the left is sitting down.", s)
    assert left.person == 1
    assert not flags("The person on the right is sitting down.", s)
    assert flags("Person 2 is standing.", s)[0].person == 2
    assert not flags("Someone is sitting.", s)  # the second person fits
    nobody = flags("Someone is lying on the grass.", s)
    assert nobody and nobody[0].person is None and "Person 1" in nobody[0].fact and "Person 2" in nobody[0].fact
    assert flags("Both of them are standing.", s)[0].person == 2  # a group claim is false when one member breaks it
    assert not flags("One of them is standing.", s)
    assert flags("The woman on the left stands still. She sits down on the bench.", s)  # "she": the woman before


def test_ordinals_count_from_a_side_of_the_picture():
    s = scene(person(LYING, at=180, ident=1), person(body(), at=420, ident=2), person(SITTING_RIGHT, at=560, ident=3))
    assert flags("The second person from the left is lying down.", s)[0].person == 2
    assert not flags("The first person from the left is lying down.", s)
    assert flags("The first person from the right is lying down.", s)[0].person == 3


def test_roles_objects_and_captions_name_people():
    racket = thing("tennis racket", (250, 40, 30, 40))  # at the raised right wrist of the person at x=300
    s = scene(person(body(), at=100, ident=1), person(body("right_up"), at=300, ident=2), racket)
    assert not flags("The tennis player raises his racket above his head.", s)
    assert flags("The man holding the racket keeps both arms at his sides.", s)[0].person == 2
    captions = ("A man in red stands on the grass.", "A player in white kneels to tie his boot.")
    alone = scene(person(body()), captions=captions)  # the player in white has no keypoints
    assert not flags("The player in white kneels on the grass.", alone)
    assert flags("The man in red kneels on the grass.", alone)
    assert not flags("Both players are sitting.", alone)  # the group holds someone without keypoints


def test_people_without_keypoints_in_a_crowd_may_be_anyone():
    s = scene(person(body()), person({}, at=500, ident=2, crowd=True))
    assert not flags("Someone is lying on the grass.", s)


def test_the_verifier_agrees_with_the_pose_notes():
    bodies = [body(), body("up"), body("crossed"), body("hips"), body("left_out"), SITTING_RIGHT, LYING, HANDSTAND]
    akimbo = body("hips", left_elbow=(58, 240), right_elbow=(-58, 240))  # elbows low: the arms also nearly hang
    for joints in [*bodies, BENT_RIGHT, akimbo]:
        s = scene(person(joints))
        (facts,) = scene_facts(s)
        if facts.posture:
            assert not flags(f"The person is {facts.posture}.", s), facts.posture
        if facts.arms:
            assert not flags(f"The person has {facts.arms}.", s), facts.arms
        if facts.facing in ("the camera", "away from the camera"):
            assert not flags(f"The person is facing {facts.facing}.", s)
        for excluded, _ in facts.ruled_out:
            assert flags(f"The person is {excluded}.", s), excluded


def test_one_of_several_people_is_contradicted_only_when_nobody_fits():
    """'One of the two players is sitting' is true when either is; 'both' needs both."""
    s = scene(person(body(), at=150, ident=1), person(SITTING_RIGHT, at=450, ident=2))
    assert flags("One of the two players is sitting.", s) == []
    assert flags("Either of the two players is standing.", s) == []
    assert flags("Both players are sitting.", s)[0].person == 1


def test_the_question_says_whom_the_answer_means():
    """A conversation answer's 'they' is the person its question asked about, not everyone in the picture."""
    s = scene(person(body(), at=150, ident=1), person(SITTING_RIGHT, at=450, ident=2))
    assert flags("Question: What is the person on the right doing?\nAnswer: They are sitting.", s) == []
    assert flags("Question: What is the person on the left doing?\nAnswer: They are sitting.", s)[0].person == 1
    assert flags("They are sitting.", s)  # alone, with two people, "they" are both of them
