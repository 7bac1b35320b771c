"""Scene -> per-person pose facts in plain words ("left elbow bent about 90 degrees"), derived from keypoints.

Pure functions, no I/O. Persons are the non-crowd ``person`` instances of a scene in annotation order, numbered
from 1 exactly like the person lines of the context (:func:`keypoint_instruct.coco.context.format_context`).

Rules every fact follows:

* Only labelled joints are used (COCO visibility ``v > 0``). ``v = 1`` ("labelled but not visible") counts: the
  annotator placed the joint where it is, only hidden, so its position is usable. A fact that needs an unlabelled
  joint (``v = 0``) is not stated at all; nothing is guessed.
* All geometry is measured in the image plane. Angles (elbows, knees, torso lean) are therefore 2-D projections of
  3-D angles: a limb pointing at the camera looks shorter and its angle can differ from the true one. So an elbow
  or knee angle is left out when one of its two segments looks under half as long as the other (seen end-on).
  Degrees are rounded to tens and never come with coordinates. Segments under a quarter of the torso's length are
  end-on too (an arm pointing at the lens), and a 2-D reading under 30 degrees is said as "fully bent".
* A person whose torso is under ``MIN_SCALE_PX`` pixels long (a person under about 50 pixels tall) gets no geometric
  fact: a pixel of annotation noise would swing its angles by tens of degrees. Only its place is stated.
* "Left" and "right" of body parts are the person's own (COCO's convention). Places, directions and relations
  between people are the picture's, and the line says so ("on the left of the picture", "facing the picture's
  right", "left of Person 2 in the picture"): the teacher is told that a bare left/right means the person's own side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keypoint_instruct.coco.geometry import (
    SIDES,
    Point,
    dist,
    from_down,
    labelled_joints,
    limb_angle,
    person_instances,
    point,
    tens,
    torso,
)

if TYPE_CHECKING:
    from keypoint_instruct.coco.annotations import Instance, Scene

_FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
MIN_SCALE_PX = 16.0  # torso length in pixels below which keypoint noise outweighs the geometry


@dataclass(frozen=True)
class JointAngle:
    joint: str  # "left elbow", "right knee"
    degrees: int  # inner angle rounded to tens; 180 = fully straight

    @property
    def words(self) -> str:
        if self.degrees < 30:  # tighter than an elbow or knee closes: a fold seen at a slant, not a measurable angle
            return f"{self.joint} fully bent"
        if self.degrees >= 160:
            return f"{self.joint} straight"
        if self.degrees >= 120:
            return f"{self.joint} slightly bent, about {self.degrees} degrees"
        if self.degrees >= 70:
            return f"{self.joint} bent about {self.degrees} degrees"
        return f"{self.joint} sharply bent, about {self.degrees} degrees"


@dataclass(frozen=True)
class HandContact:
    side: str  # "left" | "right": whose hand
    category: str  # the object's category name
    relation: str  # "at" (wrist inside the object's box) | "near" (at its edge)


@dataclass(frozen=True)
class PersonRelation:
    other: int  # number of the other person
    relation: str  # "left of" | "right of" | "in front of" | "behind"


@dataclass(frozen=True)
class PersonFacts:
    number: int  # 1-based, same order as the context's person lines
    instance_id: int
    labelled: int  # labelled joints (v > 0)
    region: str  # "on the left" | "in the centre" | "on the right" of the image
    posture: str | None = None  # "standing" | "sitting" | "kneeling" | "crouching" | "lying"
    facing: str | None = None  # "the camera" | "away from the camera" | "left" | "right"
    raised: tuple[tuple[str, str], ...] = ()  # (side, "the shoulder" | "the head")
    hand_at_head: tuple[str, ...] = ()  # sides whose wrist is up by the face with the elbow not raised
    arms: str | None = None  # "arms crossed" | "hands on the hips" (front or back view)
    held_out: tuple[str, ...] = ()  # sides whose straight arm is stretched out level (pointing, reaching, T-pose)
    angles: tuple[JointAngle, ...] = ()
    lean_degrees: int | None = None  # torso from vertical, rounded to tens
    lean_direction: str | None = None  # "forward" | "backward" | "sideways" | None (unknown)
    stance: str | None = None  # "feet wide apart", "feet close together", ...
    lifted_leg: str | None = None  # "left" | "right"
    hands: tuple[HandContact, ...] = ()
    relations: tuple[PersonRelation, ...] = ()


def _facing(joints: dict, scale: float, torso: tuple[Point, Point] | None) -> str | None:
    ls, rs = point(joints, "left_shoulder"), point(joints, "right_shoulder")
    face_pts = [point(joints, name) for name in _FACE if name in joints]
    visible_face = [name for name in ("nose", "left_eye", "right_eye") if joints.get(name, (0, 0, 0))[2] == 2]
    hidden_face = [name for name in ("nose", "left_eye", "right_eye") if joints.get(name, (0, 0, 0))[2] == 1]
    if ls and rs:
        dx = ls[0] - rs[0]  # > 0: the person's left shoulder is on the image right -> chest towards the camera
        if abs(dx) < 0.3 * scale:  # shoulders nearly in line: side view
            if not face_pts:
                return None
            head = (sum(p[0] for p in face_pts) / len(face_pts), sum(p[1] for p in face_pts) / len(face_pts))
            dx, dy = head[0] - (ls[0] + rs[0]) / 2, head[1] - (ls[1] + rs[1]) / 2
            side = (1.0, 0.0)  # the body's sideways direction: image x for an upright body ...
            if torso and dist(*torso) > 1e-6:  # ... else across the torso, so a lean does not pass for a turn
                up = ((torso[0][0] - torso[1][0]) / dist(*torso), (torso[0][1] - torso[1][1]) / dist(*torso))
                side = (-up[1], up[0])
            offset = dx * side[0] + dy * side[1]
            if abs(offset) < 0.05 * scale:
                return None
            return "left" if offset < 0 else "right"
        if dx > 0:
            return None if hidden_face and not visible_face else "the camera"
        return None if len(visible_face) == 3 else "away from the camera"
    if len(visible_face) == 3:
        return "the camera"
    return None


def _leg_posture(joints: dict, side: str) -> str | None:
    hip, knee, ankle = (point(joints, f"{side}_{p}") for p in ("hip", "knee", "ankle"))
    if not (hip and knee):
        return None
    thigh = from_down(hip, knee)
    knee_angle = limb_angle(hip, knee, ankle) if ankle else None
    if thigh is None:
        return None
    if thigh >= 55:  # thigh roughly level (or raised)
        if knee_angle is not None and knee_angle < 75:
            # Knees drawn up tight: a crouch holds the hips above the feet, sitting on the ground rests them there.
            return "crouching" if ankle[1] - hip[1] > 0.25 * dist(knee, ankle) else "sitting"
        return "sitting"
    if thigh <= 35 and knee_angle is not None:  # thigh roughly vertical
        if knee_angle >= 140:
            return "standing"
        if knee_angle <= 110:
            return "kneeling"
    return None


def _posture(joints: dict, bbox: tuple, lean: float | None) -> str | None:
    _, _, w, h = bbox
    legs = [p for p in (_leg_posture(joints, side) for side in SIDES) if p]
    if lean is not None and lean > 45:
        if "standing" in legs:  # straight legs down from the hips: bending over, not lying
            return "standing"
        if lean >= 60:
            return "lying" if w >= 0.9 * h else None  # a horizontal torso in a tall box is bending over
        return None
    if "standing" in legs and (lean is not None or h >= w):
        return "standing"
    if lean is None:  # without a torso, level thighs may belong to someone lying down
        return None
    if legs and all(p == legs[0] for p in legs):
        return legs[0]
    return None


def _raised(joints: dict, scale: float) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """(raised arms as (side, level), sides whose hand is up at the head without a raised elbow)."""
    face = [point(joints, name) for name in _FACE if name in joints]
    out, at_head = [], []
    for side in SIDES:
        wrist, shoulder = point(joints, f"{side}_wrist"), point(joints, f"{side}_shoulder")
        if not (wrist and shoulder) or wrist[1] >= shoulder[1] - max(0.05 * scale, 1e-6):
            continue
        if face and wrist[1] < min(p[1] for p in face) - 0.25 * scale:  # the crown is well above the eyes
            out.append((side, "the head"))
            continue
        elbow = point(joints, f"{side}_elbow")
        if face and min(dist(wrist, p) for p in face) <= 0.4 * scale:  # a hand at the chin, ear or hair
            at_head.append(side)
            if not (elbow and elbow[1] < shoulder[1] - 0.05 * scale):  # elbow down: the forearm folds up, no raise
                continue
        out.append((side, "the shoulder"))
    return tuple(out), tuple(at_head)


def _arms(joints: dict, scale: float) -> str | None:
    """ "arms crossed" (each wrist well past the body's midline at chest height) or "hands on the hips" (wrists at the
    hips, elbows out wider than the shoulders), for a body seen from the front or the back; else None."""
    ls, rs = point(joints, "left_shoulder"), point(joints, "right_shoulder")
    if not (ls and rs) or abs(ls[0] - rs[0]) < 0.3 * scale:  # side view: the midline cannot be told
        return None
    mid = (ls[0] + rs[0]) / 2
    crossed = on_hips = True
    for side in SIDES:
        shoulder, elbow, wrist, hip = (point(joints, f"{side}_{p}") for p in ("shoulder", "elbow", "wrist", "hip"))
        if not (elbow and wrist):
            return None
        out = 1.0 if shoulder[0] > mid else -1.0  # image x direction away from the midline on this side
        chest_high = shoulder[1] < wrist[1] and (hip is None or wrist[1] < hip[1])
        crossed = crossed and (wrist[0] - mid) * out < -0.2 * scale and chest_high
        elbow_out = (elbow[0] - shoulder[0]) * out >= 0.2 * scale
        on_hips = on_hips and hip is not None and dist(wrist, hip) <= 0.3 * scale and elbow_out
    return "arms crossed" if crossed else "hands on the hips" if on_hips else None


def _held_out(joints: dict, scale: float, raised: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """Sides whose arm is straight and level with the shoulder, stretched well away from the body."""
    out = []
    for side in SIDES:
        shoulder, elbow, wrist = (point(joints, f"{side}_{p}") for p in ("shoulder", "elbow", "wrist"))
        if side in dict(raised) or not (shoulder and elbow and wrist) or dist(shoulder, wrist) < 0.6 * scale:
            continue
        angle, direction = limb_angle(shoulder, elbow, wrist, 0.25 * scale), from_down(shoulder, wrist)
        if angle is not None and angle >= 150 and direction is not None and 70 <= direction <= 110:
            out.append(side)
    return tuple(out)


def _stance(joints: dict, scale: float) -> tuple[str | None, str | None]:
    la, ra = point(joints, "left_ankle"), point(joints, "right_ankle")
    if not (la and ra):
        return None, None
    lifted = None
    if abs(la[1] - ra[1]) > 0.3 * scale:
        lifted = "left" if la[1] < ra[1] else "right"
    ref = None
    for a, b in (("left_hip", "right_hip"), ("left_shoulder", "right_shoulder")):
        pa, pb = point(joints, a), point(joints, b)
        if pa and pb and abs(pa[0] - pb[0]) >= max(0.25 * scale, 1e-6):
            ref = abs(pa[0] - pb[0])
            break
    if ref is None or lifted:
        return None, lifted
    ratio = abs(la[0] - ra[0]) / ref
    if ratio >= 2.5:
        return "feet wide apart", None
    if ratio >= 1.3:
        return "feet apart", None
    if ratio <= 0.5:
        return "feet close together", None
    return "feet about hip-width apart", None


def _hands(instance: Instance, joints: dict, others: list[Instance], scale: float) -> tuple[HandContact, ...]:
    px, py, pw, ph = instance.bbox
    margin = max(2.0, 0.1 * scale)
    out = []
    for side in SIDES:
        wrist = point(joints, f"{side}_wrist")
        if not wrist:
            continue
        best = None
        for obj in others:
            x, y, w, h = obj.bbox
            overlap = max(0.0, min(x + w, px + pw) - max(x, px)) * max(0.0, min(y + h, py + ph) - max(y, py))
            if w * h >= pw * ph and overlap >= (2 / 3) * pw * ph:
                continue  # a bigger box behind most of the person (a bus, a couch): background, not in hand
            inside = x <= wrist[0] <= x + w and y <= wrist[1] <= y + h
            near = x - margin <= wrist[0] <= x + w + margin and y - margin <= wrist[1] <= y + h + margin
            if inside or near:
                rank = (0 if inside else 1, w * h)
                if best is None or rank < best[0]:
                    best = (rank, HandContact(side, obj.category, "at" if inside else "near"))
        if best:
            out.append(best[1])
    return tuple(out)


def _relations(number: int, persons: list[Instance]) -> tuple[PersonRelation, ...]:
    x, y, w, h = persons[number - 1].bbox
    others = sorted(
        range(number + 1, len(persons) + 1),
        key=lambda j: abs((persons[j - 1].bbox[0] + persons[j - 1].bbox[2] / 2) - (x + w / 2)),
    )[:3]
    out = []
    for j in sorted(others):
        ox, oy, ow, oh = persons[j - 1].bbox
        gap = (ox + ow / 2) - (x + w / 2)
        if abs(gap) > 0.5 * (w + ow) / 2:
            out.append(PersonRelation(j, "left of" if gap > 0 else "right of"))
        foot, other_foot = y + h, oy + oh
        if foot > other_foot + 0.1 * max(h, oh) and h > 1.2 * oh:
            out.append(PersonRelation(j, "in front of"))
        elif other_foot > foot + 0.1 * max(h, oh) and oh > 1.2 * h:
            out.append(PersonRelation(j, "behind"))
    return tuple(out)


def _region(bbox: tuple, width: int) -> str:
    centre = (bbox[0] + bbox[2] / 2) / max(width, 1)
    return "on the left" if centre < 1 / 3 else "on the right" if centre > 2 / 3 else "in the centre"


def person_facts(scene: Scene, number: int) -> PersonFacts:
    """The facts of Person ``number`` (1-based) of ``scene``."""
    persons = person_instances(scene)
    instance = persons[number - 1]
    joints = labelled_joints(instance)
    base = PersonFacts(number, instance.id, len(joints), _region(instance.bbox, scene.width))
    if not joints:
        return base
    body_axis = torso(joints)
    scale = (
        dist(*body_axis) if body_axis and dist(*body_axis) > 1e-6 else max(instance.bbox[2:]) / 3
    )  # lying: the width
    if scale < MIN_SCALE_PX:  # too small to measure: only where the person is
        return dataclasses.replace(base, relations=_relations(number, persons))
    lean = from_down(body_axis[1], body_axis[0]) if body_axis else None
    lean = None if lean is None else 180.0 - lean  # hip->shoulder measured from straight up
    posture = _posture(joints, instance.bbox, lean)
    # Facing and raised arms read left/right and up/down of an upright body; for a bent-over or lying one they
    # would describe the body's tilt, not where it faces or how high the hands are.
    upright = (lean is not None and lean < 45) or (lean is None and instance.bbox[3] >= instance.bbox[2])
    facing = _facing(joints, scale, body_axis) if upright else None
    angles = []
    for joint, (a, b, c) in (("elbow", ("shoulder", "elbow", "wrist")), ("knee", ("hip", "knee", "ankle"))):
        for side in SIDES:
            pts = [point(joints, f"{side}_{p}") for p in (a, b, c)]
            angle = limb_angle(*pts, min_length=0.25 * scale) if all(pts) else None
            if angle is not None:
                angles.append(JointAngle(f"{side} {joint}", tens(angle)))
    lean_direction = None
    if lean is not None and posture != "lying" and tens(lean) >= 10:
        going_right = body_axis[0][0] > body_axis[1][0]
        if facing in ("left", "right"):
            lean_direction = "forward" if (facing == "right") == going_right else "backward"
        elif facing is not None:
            lean_direction = "sideways"
    stance, lifted = _stance(joints, scale) if posture == "standing" else (None, None)
    objects = [o for o in scene.instances if o.category != "person" and not o.iscrowd]
    raised, at_head = _raised(joints, scale) if upright else ((), ())
    return PersonFacts(
        number=number,
        instance_id=instance.id,
        labelled=len(joints),
        region=base.region,
        posture=posture,
        facing=facing,
        raised=raised,
        hand_at_head=at_head,
        arms=_arms(joints, scale) if upright else None,
        held_out=_held_out(joints, scale, raised) if upright else (),
        angles=tuple(angles),
        lean_degrees=None if lean is None or posture == "lying" else tens(lean),
        lean_direction=lean_direction,
        stance=stance,
        lifted_leg=lifted,
        hands=_hands(instance, joints, objects, scale),
        relations=_relations(number, persons),
    )


def scene_facts(scene: Scene) -> list[PersonFacts]:
    """Facts of every person of ``scene``, Person 1 first."""
    return [person_facts(scene, n) for n in range(1, len(person_instances(scene)) + 1)]
