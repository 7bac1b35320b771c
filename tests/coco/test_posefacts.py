"""Pose facts from synthetic skeletons with known geometry (image y grows downwards)."""

from __future__ import annotations

import re

import pytest

from keypoint_instruct.coco import posenotes
from keypoint_instruct.coco.annotations import Instance, Scene
from keypoint_instruct.coco.context import format_context
from keypoint_instruct.coco.keypoints import KEYPOINT_NAMES
from keypoint_instruct.coco.posefacts import HandContact, JointAngle, PersonRelation, person_facts
from keypoint_instruct.coco.posenotes import facts_block

FACE = {"nose": (100, 40), "left_eye": (104, 36), "right_eye": (96, 36), "left_ear": (108, 38), "right_ear": (92, 38)}
# A person facing the camera: their left side is on the image right. Left elbow at a right angle (upper arm down,
# forearm pointing right), right arm hanging straight, legs straight, feet under the hips.
STANDING = FACE | {
    "left_shoulder": (120, 70), "right_shoulder": (80, 70),
    "left_elbow": (120, 110), "right_elbow": (80, 110),
    "left_wrist": (160, 110), "right_wrist": (80, 150),
    "left_hip": (112, 150), "right_hip": (88, 150),
    "left_knee": (112, 200), "right_knee": (88, 200),
    "left_ankle": (112, 250), "right_ankle": (88, 250),
}  # fmt: skip
BOX = (60.0, 20.0, 110.0, 235.0)


def keypoints(joints: dict, visibility: dict | None = None) -> tuple[float, ...]:
    values: list[float] = []
    for name in KEYPOINT_NAMES:
        if name in joints:
            values += [float(joints[name][0]), float(joints[name][1]), float((visibility or {}).get(name, 2))]
        else:
            values += [0.0, 0.0, 0.0]
    return tuple(values)


def person(joints: dict, bbox=BOX, ident: int = 1, visibility: dict | None = None, crowd: bool = False) -> Instance:
    kps = keypoints(joints, visibility)
    return Instance(ident, "person", tuple(bbox), crowd, kps, sum(1 for v in kps[2::3] if v > 0))


def thing(category: str, bbox, ident: int = 100) -> Instance:
    return Instance(ident, category, tuple(bbox), False, None, 0)


def scene(*instances: Instance, width: int = 640, height: int = 480, image_id: int = 7) -> Scene:
    return Scene(image_id, "x.jpg", "val2014", width, height, ("A person.",), instances)


def facts_of(joints: dict, bbox=BOX, **kw):
    return person_facts(scene(person(joints, bbox, **kw)), 1)


def test_right_angle_at_the_elbow_and_a_standing_frontal_person():
    facts = facts_of(STANDING)
    angles = {a.joint: a.degrees for a in facts.angles}
    assert angles == {"left elbow": 90, "right elbow": 180, "left knee": 180, "right knee": 180}
    assert facts.posture == "standing"
    assert facts.facing == "the camera"
    assert facts.lean_degrees == 0
    assert facts.stance == "feet about hip-width apart"
    assert facts.raised == ()
    line = posenotes.describe(facts)
    assert "left elbow bent about 90 degrees" in line and "right elbow straight" in line
    assert line.startswith("Person 1 (on the left of the picture, standing, facing the camera): ")


def test_arms_above_the_head():
    joints = STANDING | {"left_elbow": (130, 40), "right_elbow": (70, 40), "left_wrist": (125, 5),
                         "right_wrist": (75, 5)}  # fmt: skip
    facts = facts_of(joints, bbox=(60, 0, 110, 255))
    assert facts.raised == (("left", "the head"), ("right", "the head"))
    assert "both arms raised above the head" in facts_block(scene(person(joints, (60, 0, 110, 255))))


def test_hand_above_the_shoulder_but_below_the_head():
    facts = facts_of(STANDING | {"right_elbow": (60, 60), "right_wrist": (60, 50)})
    assert facts.raised == (("right", "the shoulder"),)


def test_seated_pose():
    # Torso upright, thighs level towards the image right, shins hanging down: a chair.
    joints = FACE | {
        "left_shoulder": (120, 70), "right_shoulder": (80, 70), "left_hip": (112, 150), "right_hip": (88, 150),
        "left_knee": (162, 152), "right_knee": (138, 152), "left_ankle": (162, 202), "right_ankle": (138, 202),
    }  # fmt: skip
    facts = facts_of(joints, bbox=(75, 25, 95, 180))
    assert facts.posture == "sitting"
    assert {a.joint: a.degrees for a in facts.angles} == {"left knee": 90, "right knee": 90}
    assert facts.stance is None  # stance is stated for standing people only


def test_seated_facing_the_camera_is_not_read_as_standing():
    # Thighs pointing at the camera look short and nearly vertical, shins hang straight below: in 2-D the legs look
    # straight, but a thigh under half the shin's length is seen end-on, so neither the knees nor standing are stated.
    joints = FACE | {
        "left_shoulder": (120, 70), "right_shoulder": (80, 70), "left_hip": (112, 150), "right_hip": (88, 150),
        "left_knee": (116, 165), "right_knee": (84, 165), "left_ankle": (116, 220), "right_ankle": (84, 220),
    }  # fmt: skip
    facts = facts_of(joints, bbox=(60, 20, 110, 210))
    assert facts.posture != "standing" and facts.stance is None
    assert not any(a.joint.endswith("knee") for a in facts.angles)
    forearm_at_lens = STANDING | {"left_wrist": (130, 112)}  # forearm a quarter of the upper arm's length
    assert "left elbow" not in {a.joint for a in facts_of(forearm_at_lens).angles}


def test_crouching_and_kneeling():
    crouch = STANDING | {"left_hip": (112, 200), "right_hip": (88, 200), "left_knee": (140, 195),
                         "right_knee": (116, 195), "left_ankle": (116, 240), "right_ankle": (92, 240)}  # fmt: skip
    assert facts_of(crouch).posture == "crouching"
    kneel = STANDING | {"left_knee": (112, 200), "right_knee": (88, 200), "left_ankle": (150, 200),
                        "right_ankle": (126, 200)}  # fmt: skip
    assert facts_of(kneel).posture == "kneeling"


def test_person_facing_away():
    # Shoulders in the anatomical order of a back view, no face point visible.
    joints = {k: v for k, v in STANDING.items() if k not in FACE} | {"left_ear": (92, 38), "right_ear": (108, 38)}
    mirrored = {**joints, "left_shoulder": (80, 70), "right_shoulder": (120, 70), "left_hip": (88, 150),
                "right_hip": (112, 150)}  # fmt: skip
    assert facts_of(mirrored).facing == "away from the camera"


def test_side_view_faces_the_nose_side():
    joints = {"nose": (70, 40), "left_eye": (78, 36), "left_ear": (95, 38), "left_shoulder": (102, 70),
              "right_shoulder": (98, 70), "left_hip": (100, 150), "right_hip": (99, 150)}  # fmt: skip
    assert facts_of(joints).facing == "left"
    flipped = {name: (200 - x, y) for name, (x, y) in joints.items()}
    assert facts_of(flipped).facing == "right"


def test_lying_person():
    joints = {"left_shoulder": (100, 200), "right_shoulder": (100, 220), "left_hip": (180, 202),
              "right_hip": (180, 222), "left_wrist": (60, 150), "right_wrist": (60, 260),
              "left_knee": (240, 205), "left_ankle": (300, 205)}  # fmt: skip
    facts = facts_of(joints, bbox=(50, 140, 260, 130))
    assert facts.posture == "lying"
    assert facts.raised == ()  # above/below means nothing for a horizontal body
    assert facts.lean_degrees is None and facts.stance is None


def test_leaning_forward_in_side_view():
    joints = {"nose": (150, 45), "left_shoulder": (132, 70), "right_shoulder": (128, 70),
              "left_hip": (100, 150), "right_hip": (99, 150)}  # fmt: skip
    facts = facts_of(joints)
    assert facts.facing == "right"
    assert facts.lean_direction == "forward"
    assert facts.lean_degrees == 20


def test_leaning_back_in_side_view_is_not_read_as_facing_the_other_way():
    # Facing right, torso leaning back 20 degrees: the head lies back along the neck, left of the shoulders in
    # image x, but across the torso it is on the nose side (right).
    joints = {"nose": (95, 38), "left_shoulder": (102, 70), "right_shoulder": (98, 70),
              "left_hip": (130, 150), "right_hip": (129, 150)}  # fmt: skip
    facts = facts_of(joints)
    assert facts.facing == "right"
    assert facts.lean_direction == "backward" and facts.lean_degrees == 20


def test_a_deep_forward_tuck_faces_where_the_nose_points_past_the_ears():
    # A skier in a tuck facing right, torso 55 degrees forward, head raised to look ahead: the head sits above the
    # torso's line (on its back side), so the across-the-torso rule alone read her as facing left and leaning back.
    joints = {"nose": (512, 296), "right_eye": (510, 286), "right_ear": (494, 280), "left_shoulder": (471, 326),
              "right_shoulder": (466, 320), "left_hip": (382, 388), "right_hip": (378, 382),
              "left_knee": (466, 415), "right_knee": (464, 400), "left_ankle": (430, 492),
              "right_ankle": (433, 479)}  # fmt: skip
    facts = facts_of(joints, bbox=(366, 256, 220, 246))
    assert facts.facing == "right"
    assert facts.lean_direction == "forward" and facts.lean_degrees == 50
    mirrored = {name: (900 - x, y) for name, (x, y) in joints.items()}
    assert facts_of(mirrored, bbox=(900 - 586, 256, 220, 246)).facing == "left"


def test_lying_person_has_no_facing_from_the_head_beyond_the_shoulders():
    joints = {"nose": (60, 210), "left_shoulder": (100, 200), "right_shoulder": (100, 220), "left_hip": (180, 202),
              "right_hip": (180, 222), "left_knee": (240, 205), "left_ankle": (300, 205)}  # fmt: skip
    facts = facts_of(joints, bbox=(50, 190, 260, 40))
    assert facts.posture == "lying" and facts.facing is None


def test_one_leg_lifted_and_wide_stance():
    lifted = STANDING | {"right_knee": (80, 170), "right_ankle": (80, 200)}
    facts = facts_of(lifted)
    assert facts.posture == "standing" and facts.lifted_leg == "right" and facts.stance is None
    wide = STANDING | {"left_knee": (130, 200), "right_knee": (70, 200), "left_ankle": (150, 250),
                       "right_ankle": (50, 250)}  # fmt: skip
    assert facts_of(wide).stance == "feet wide apart"


def test_unlabelled_joints_suppress_the_facts_that_need_them():
    joints = {k: v for k, v in STANDING.items() if k not in ("left_wrist", "left_ankle", "right_ankle")}
    facts = person_facts(scene(person(joints), thing("tennis racket", (150, 100, 30, 30))), 1)
    joints_with_angles = {a.joint for a in facts.angles}
    assert "left elbow" not in joints_with_angles and "right elbow" in joints_with_angles
    assert not any(a.joint.endswith("knee") for a in facts.angles)
    assert facts.posture is None  # no leg has an ankle: standing cannot be told from kneeling
    assert facts.stance is None and facts.lifted_leg is None and facts.hands == ()
    torsoless = {k: v for k, v in STANDING.items() if not k.endswith("hip")}
    bare = facts_of(torsoless)
    assert bare.lean_degrees is None and bare.posture is None
    legs_only = {k: v for k, v in STANDING.items() if k.endswith(("hip", "knee", "ankle"))}
    assert facts_of(legs_only).posture == "standing"  # straight vertical legs in a tall box
    level_legs = {"left_hip": (100, 100), "left_knee": (150, 102), "left_ankle": (200, 104)}
    assert facts_of(level_legs, bbox=(90, 90, 120, 30)).posture is None  # sitting or lying: no torso to tell


def test_labelled_but_occluded_joints_count():
    hidden = {name: 1 for name in ("left_wrist", "left_elbow")}
    facts = facts_of(STANDING, visibility=hidden)
    assert JointAngle("left elbow", 90) in facts.angles


def test_hidden_face_with_frontal_shoulders_leaves_facing_unstated():
    hidden = {name: 1 for name in ("nose", "left_eye", "right_eye")}
    assert facts_of(STANDING, visibility=hidden).facing is None


def test_hand_at_and_near_objects_but_not_background():
    racket = thing("tennis racket", (150, 100, 30, 30), 101)
    bench = thing("bench", (35, 148, 40, 40), 102)  # right wrist (80, 150) is just past its right edge
    court = thing("car", (0, 0, 640, 480), 103)  # holds the whole person: background
    facts = person_facts(scene(person(STANDING), racket, bench, court), 1)
    assert facts.hands == (HandContact("left", "tennis racket", "at"), HandContact("right", "bench", "near"))


def test_relations_between_people_and_numbering_like_the_context():
    near = person(STANDING, ident=1)
    small = {name: (x * 0.5 + 400, y * 0.5 + 40) for name, (x, y) in STANDING.items()}
    far = person(small, bbox=(430, 50, 55, 118), ident=5)
    crowd = person({}, bbox=(0, 0, 50, 50), ident=3, crowd=True)
    nobody = person({}, bbox=(300, 100, 40, 80), ident=9)
    s = scene(near, crowd, thing("skis", (10, 240, 100, 20), 4), far, nobody)
    first = person_facts(s, 1)
    assert PersonRelation(2, "left of") in first.relations and PersonRelation(2, "in front of") in first.relations
    assert person_facts(s, 2).relations == (PersonRelation(3, "right of"),)
    block = facts_block(s).splitlines()
    context_people = [line for line in format_context(s).splitlines() if line.startswith("person:")]
    assert len(block) == len(context_people) == 3
    assert block[2] == "Person 3 (in the centre of the picture): no body joints marked."


def test_facts_do_not_depend_on_image_scale():
    big = {name: (x * 3, y * 3) for name, (x, y) in STANDING.items()}
    small_scene = scene(person(STANDING), thing("tennis racket", (150, 100, 30, 30)))
    big_scene = scene(person(big, bbox=tuple(v * 3 for v in BOX)), thing("tennis racket", (450, 300, 90, 90)),
                      width=1920, height=1440)  # fmt: skip
    assert facts_block(small_scene) == facts_block(big_scene)


def test_degenerate_skeleton_states_nothing_it_cannot_measure():
    collapsed = {name: (50, 50) for name in STANDING}
    facts = facts_of(collapsed, bbox=(50, 50, 0, 0))
    assert facts.angles == () and facts.lean_degrees is None and facts.stance is None and facts.raised == ()
    assert posenotes.describe(facts).startswith("Person 1 (on the left")


def test_empty_scene_has_no_block():
    assert facts_block(scene(thing("dog", (1, 1, 10, 10)))) == ""


SNAPSHOT = """\
Person 1 (on the left of the picture, standing, facing the camera): right arm hanging straight down; left elbow bent \
about 90 degrees; right elbow straight; torso upright; left knee straight; right knee straight; feet about hip-width \
apart; left hand at the tennis racket; left of Person 2 in the picture; in front of Person 2.
Person 2 (on the right of the picture, facing the picture's right): both arms raised above the head; left elbow \
slightly bent, about 120 degrees; torso leaning forward about 20 degrees from vertical."""


def test_facts_block_snapshot():
    side = {"nose": (560, 45), "left_eye": (552, 40), "left_shoulder": (532, 70), "right_shoulder": (528, 70),
            "left_hip": (500, 150), "right_hip": (499, 150), "left_elbow": (545, 30), "left_wrist": (525, 10),
            "right_wrist": (535, 15)}  # fmt: skip
    s = scene(person(STANDING), thing("tennis racket", (150, 100, 30, 30)), person(side, (480, 10, 90, 150), 2))
    block = facts_block(s)
    assert block == SNAPSHOT
    assert not re.search(r"\d\.\d|\[", block)  # degree words only, never coordinates
    assert format_context(s, "paper+facts").endswith("\n\n" + block)


def test_tiny_person_gets_no_facts_from_pixel_noise():
    # A person a dozen pixels tall: a pixel of annotation noise swings an angle by tens of degrees, so nothing
    # geometric is stated, only where the person is.
    noise = (0.4, -0.5, 0.3, 0.5, -0.4, -0.3, 0.5, 0.2, -0.5, 0.4, -0.2, 0.3, 0.5, -0.4, 0.2, -0.3, 0.4)
    tiny = {name: (300 + x * 0.05 + noise[i], 200 + y * 0.05 - noise[-1 - i])
            for i, (name, (x, y)) in enumerate(STANDING.items())}  # fmt: skip
    s = scene(person(tiny, bbox=(302, 201, 6, 12)), thing("tennis racket", (307, 204, 2, 2)))
    facts = person_facts(s, 1)
    assert facts.labelled == 17
    assert (facts.angles, facts.raised, facts.hands) == ((), (), ())
    assert (facts.posture, facts.facing, facts.lean_degrees, facts.stance, facts.lifted_leg) == (None,) * 5
    assert posenotes.describe(facts).endswith("no pose details readable from the marked joints.")


def test_arm_pointing_at_the_camera_has_no_elbow_angle():
    # Both arm segments look short (the arm points at the lens): their 2-D angle is noise, not a bend.
    facts = facts_of(STANDING | {"right_elbow": (84, 78), "right_wrist": (80, 84)})
    assert "right elbow" not in {a.joint for a in facts.angles}
    assert "left elbow" in {a.joint for a in facts.angles}


def test_left_and_right_name_their_frame():
    # Body parts are the person's own; places, directions and relations between people are the picture's, and
    # the line says so (a reader told that left/right means the person's own side must not misread "left of").
    side = {"nose": (560, 45), "left_eye": (552, 40), "left_shoulder": (532, 70), "right_shoulder": (528, 70),
            "left_hip": (500, 150), "right_hip": (499, 150)}  # fmt: skip
    block = facts_block(scene(person(STANDING), person(side, (480, 10, 90, 150), 2))).splitlines()
    assert block[0].startswith("Person 1 (on the left of the picture, standing, facing the camera): right arm hanging")
    assert block[0].endswith("; left of Person 2 in the picture; in front of Person 2.")
    assert block[1].startswith("Person 2 (on the right of the picture, facing the picture's right): ")
    framed = (
        r"on the (?:left|right) of the picture|facing the picture's (?:left|right)"
        r"|(?:left|right) of Person \d in the picture"
    )
    rest = re.sub(framed, "", " ".join(block))
    assert re.findall(r"\b(?:left|right)\b \w+", rest) == re.findall(
        r"\b(?:left|right) (?:elbow|knee|arm|hand|leg)\b", rest
    )


def test_hand_up_at_the_face_is_not_a_raised_arm():
    # Elbow hanging by the side, forearm folded up so the wrist is at the chin (a phone call, a drink).
    phone = STANDING | {"left_elbow": (128, 110), "left_wrist": (112, 45)}
    facts = facts_of(phone)
    assert facts.raised == () and facts.hand_at_head == ("left",)
    line = posenotes.describe(facts)
    assert "left hand up at the head" in line and "raised" not in line
    assert "left elbow fully bent" in line and "0 degrees" not in line  # a 2-D reading under 30 is no real angle
    waving = STANDING | {"left_elbow": (150, 70), "left_wrist": (150, 25)}  # hand up beside the head, not at it
    assert facts_of(waving).raised == (("left", "the shoulder"),) and facts_of(waving).hand_at_head == ()


def test_sitting_on_the_ground_hugging_the_knees_is_not_a_crouch():
    # Side view facing right: hips down at the level of the feet, knees drawn up to the chest.
    hug = {"nose": (125, 95), "left_eye": (121, 91), "left_ear": (110, 93), "left_shoulder": (105, 120),
           "right_shoulder": (103, 120), "left_hip": (100, 200), "right_hip": (98, 200), "left_knee": (140, 150),
           "right_knee": (138, 150), "left_ankle": (150, 205), "right_ankle": (148, 205)}  # fmt: skip
    assert facts_of(hug, (90, 85, 80, 125)).posture == "sitting"
    squat = hug | {"left_hip": (95, 175), "right_hip": (93, 175), "left_knee": (145, 160),
                   "right_knee": (143, 160), "left_ankle": (120, 205), "right_ankle": (118, 205)}  # fmt: skip
    assert facts_of(squat, (85, 85, 80, 125)).posture == "crouching"


def test_bending_over_on_straight_legs_is_not_lying():
    # Side view: torso level (touching the toes) in a squarish box, but the legs stand straight under the hips.
    bent = {"nose": (205, 175), "left_eye": (200, 170), "left_ear": (190, 165), "left_shoulder": (175, 152),
            "right_shoulder": (173, 150), "left_hip": (100, 150), "right_hip": (98, 150), "left_knee": (102, 200),
            "right_knee": (100, 200), "left_ankle": (104, 250), "right_ankle": (102, 250)}  # fmt: skip
    facts = facts_of(bent, (90, 140, 125, 115))
    assert facts.posture == "standing" and facts.lean_degrees == 90
    assert "torso tilted about 90 degrees from vertical" in posenotes.describe(facts)
    plank = {"left_shoulder": (190, 180), "right_shoulder": (188, 178), "left_hip": (110, 190),
             "right_hip": (108, 188), "left_knee": (60, 198), "left_ankle": (10, 205)}  # fmt: skip
    assert facts_of(plank, (5, 165, 215, 70)).posture == "lying"  # legs level too: a horizontal body


def test_a_big_object_behind_most_of_the_person_is_not_in_hand():
    # A bus behind the person covers most of their box (not all: the feet stand below it): a wrist over the bus is
    # no hand at the bus. A racket and a chair the hand is at still count.
    bus = thing("bus", (20, 0, 400, 200), 101)
    facts = person_facts(scene(person(STANDING), bus, thing("tennis racket", (150, 100, 30, 30), 102)), 1)
    assert facts.hands == (HandContact("left", "tennis racket", "at"),)
    chair = thing("chair", (70, 140, 60, 120), 103)  # the right wrist (80, 150) rests on its back
    assert person_facts(scene(person(STANDING), chair), 1).hands == (HandContact("right", "chair", "at"),)


def test_arms_crossed_and_hands_on_the_hips():
    crossed = STANDING | {"left_elbow": (125, 110), "right_elbow": (75, 110), "left_wrist": (80, 95),
                          "right_wrist": (120, 95)}  # fmt: skip
    facts = facts_of(crossed)
    assert facts.arms == "arms crossed" and "camera): arms crossed; left elbow" in posenotes.describe(facts)
    back = {name: (200 - x, y) for name, (x, y) in crossed.items() if name not in FACE}  # the same, from behind
    assert facts_of(back).facing == "away from the camera" and facts_of(back).arms == "arms crossed"
    akimbo = STANDING | {"left_elbow": (145, 110), "right_elbow": (55, 110), "left_wrist": (116, 146),
                         "right_wrist": (84, 146)}  # fmt: skip
    assert facts_of(akimbo).arms == "hands on the hips"
    hanging = STANDING | {"left_wrist": (122, 148), "left_elbow": (121, 110), "right_wrist": (78, 148)}
    holding_a_cup = STANDING | {"left_wrist": (106, 100), "right_wrist": (94, 100), "left_elbow": (124, 120),
                                "right_elbow": (76, 120)}  # fmt: skip
    assert facts_of(STANDING).arms is None and facts_of(hanging).arms is None and facts_of(holding_a_cup).arms is None
    club_grip = holding_a_cup | {"left_wrist": (91, 125), "right_wrist": (109, 128)}  # hands together, a bit past
    assert facts_of(club_grip).arms is None


def test_a_long_lying_person_without_a_torso_is_not_taken_for_a_tiny_one():
    legs = {"left_hip": (100, 200), "left_knee": (220, 205), "left_ankle": (340, 200)}
    facts = facts_of(legs, bbox=(90, 185, 260, 40))  # 260 px long, 40 px tall: no torso to measure the scale
    assert JointAngle("left knee", 180) in facts.angles


def test_an_arm_stretched_out_level_is_stated():
    pointing = STANDING | {"right_elbow": (45, 72), "right_wrist": (10, 74)}  # towards the picture's left
    facts = facts_of(pointing, bbox=(5, 20, 165, 235))
    assert facts.held_out == ("right",) and facts.raised == ()
    assert "right arm held out level" in posenotes.describe(facts)
    t_pose = pointing | {"left_elbow": (155, 70), "left_wrist": (190, 68)}
    assert "both arms held out level" in posenotes.describe(facts_of(t_pose, bbox=(5, 20, 190, 235)))
    assert facts_of(STANDING).held_out == ()  # hanging and bent arms are not held out
    bent_level = STANDING | {"right_elbow": (50, 70), "right_wrist": (50, 40)}  # upper arm level, forearm up
    assert facts_of(bent_level).held_out == ()


# --- fixes found on real photographs (issue 12) ------------------------------------------------------------------


def test_crossed_arms_with_a_wrist_a_few_pixels_short_of_the_midline():
    # Forearms level across the chest; the left wrist stops 3 px (under a tenth of the torso) short of the middle.
    folded = STANDING | {"left_elbow": (122, 112), "right_elbow": (78, 112), "left_wrist": (103, 108),
                         "right_wrist": (118, 106)}  # fmt: skip
    assert facts_of(folded).arms == "arms crossed"
    apart = folded | {"left_wrist": (112, 108)}  # a tenth of the torso short: hands in front, not folded
    assert facts_of(apart).arms is None


def test_a_tilt_seen_from_the_front_has_no_direction():
    # Facing the camera, shoulders 30 px to the picture's right of the hips: a forward lean of a body turned a little,
    # or a sideways one, cannot be told apart; the tilt is stated, a direction is not.
    tilted = STANDING | {"left_shoulder": (150, 72), "right_shoulder": (110, 68), "nose": (130, 40)}
    facts = facts_of(tilted)
    assert facts.lean_degrees == 20 and facts.lean_direction is None
    assert "torso tilted about 20 degrees from vertical" in posenotes.describe(facts)
    assert "sideways" not in posenotes.describe(facts)


def test_handstand_is_upside_down_and_rules_out_lying_and_standing():
    hand = {"nose": (100, 215), "left_shoulder": (80, 190), "right_shoulder": (120, 190), "left_elbow": (78, 225),
            "right_elbow": (122, 225), "left_wrist": (76, 260), "right_wrist": (124, 260), "left_hip": (88, 110),
            "right_hip": (112, 110), "left_knee": (90, 60), "right_knee": (110, 60), "left_ankle": (92, 10),
            "right_ankle": (108, 10)}  # fmt: skip
    facts = facts_of(hand, bbox=(70, 5, 60, 260))
    assert facts.posture == "upside down"
    assert {"lying", "standing", "sitting"} <= dict(facts.ruled_out).keys()
    assert facts.lean_degrees is None and facts.raised == () and facts.facing is None
    assert posenotes.describe(facts).startswith("Person 1 (on the left of the picture, upside down): ")


def test_a_lunge_with_the_knees_off_the_ground_is_not_kneeling():
    # Side view: front thigh hanging, knee bent ~110 degrees but its ankle well below it (the knee is off the ground),
    # back knee bent too: a lunge, which was read as kneeling.
    lunge = {"left_shoulder": (100, 70), "right_shoulder": (102, 70), "left_hip": (100, 150),
             "right_hip": (101, 150), "left_knee": (80, 200), "left_ankle": (110, 225), "right_knee": (125, 195),
             "right_ankle": (105, 245)}  # fmt: skip
    facts = facts_of(lunge)
    assert facts.posture != "kneeling"
    assert "kneeling" in dict(facts.ruled_out)
    kneel = lunge | {"left_knee": (100, 210), "left_ankle": (50, 212), "right_knee": (101, 210),
                     "right_ankle": (51, 212)}  # fmt: skip
    assert facts_of(kneel).posture == "kneeling" and "kneeling" not in dict(facts_of(kneel).ruled_out)


def test_feet_above_a_same_size_neighbour_on_level_ground():
    jumper = {name: (x, y - 60) for name, (x, y) in STANDING.items()}
    beside = {name: (x + 200, y) for name, (x, y) in STANDING.items()}
    s = scene(person(jumper, (60, -40, 110, 235), 1), person(beside, (260, 20, 110, 235), 2))
    first, second = person_facts(s, 1), person_facts(s, 2)
    assert first.feet_above == (2,) and second.feet_below == (1,)
    assert "feet well above those of Person 2, who is the same size" in posenotes.describe(first)
    behind = {name: (x + 30, y - 60) for name, (x, y) in STANDING.items()}  # overlapping: farther back, not higher
    assert person_facts(scene(person(behind, (90, -40, 110, 235), 1), person(STANDING, BOX, 2)), 1).feet_above == ()


def _real(image_id: int):
    from tests.paths import REALPOSES

    if not (REALPOSES / "annotations").is_dir():
        pytest.skip(f"no real poses at {REALPOSES} (a COCO tree of real photographs beside the checkout)")
    from keypoint_instruct.coco.annotations import load_scenes

    return load_scenes(REALPOSES, "val2017")[image_id]


def test_real_handstand_and_chest_stand_are_upside_down_not_lying():
    s = _real(900004)
    for number in (1, 2):
        facts = person_facts(s, number)
        assert facts.posture == "upside down"
        assert "lying" in dict(facts.ruled_out) and "standing" in dict(facts.ruled_out)
    assert {a.joint: a.degrees for a in person_facts(s, 2).angles}["left elbow"] >= 160  # straight arms


def test_real_tackle_defender_is_not_kneeling_and_no_lean_direction_is_guessed():
    s = _real(900003)
    defender = person_facts(s, 2)
    assert defender.posture is None and "kneeling" in dict(defender.ruled_out)
    assert defender.facing == "away from the camera"
    assert defender.lean_degrees == 40 and defender.lean_direction is None
    attacker = person_facts(s, 1)
    assert attacker.posture == "standing" and attacker.stance == "feet wide apart"
    assert attacker.lifted_leg is None  # the far foot is higher in the picture, not lifted off the turf
    assert attacker.lean_direction is None and "sideways" not in facts_block(s)


def test_real_walkers_and_player_keep_their_facts():
    walkers = _real(900001)
    woman, behind = person_facts(walkers, 1), person_facts(walkers, 2)
    assert (woman.posture, woman.facing, woman.stance) == ("standing", "the camera", "feet close together")
    assert [a.hangs for a in woman.arm_facts] == [True, True] and woman.lean_degrees == 0
    assert behind.feet_above == ()  # farther back, overlapping: higher in the picture is not off the ground
    player = person_facts(_real(900002), 1)
    assert player.held_out == ("left",) and player.feet_down is True and player.posture == "standing"
