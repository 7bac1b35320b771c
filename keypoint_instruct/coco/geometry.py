"""Keypoint geometry in the image plane: joints of a person, points, distances and angles (pure, no I/O).

Image y grows downwards. Only labelled joints (COCO visibility ``v > 0``) are ever returned: an unlabelled joint
(``v = 0``) is absent, never guessed. Used by the pose facts (:mod:`keypoint_instruct.coco.posefacts`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from keypoint_instruct.coco.keypoints import KEYPOINT_NAMES

if TYPE_CHECKING:
    from keypoint_instruct.coco.annotations import Instance, Scene

SIDES = ("left", "right")

Point = tuple[float, float]


def person_instances(scene: Scene) -> list[Instance]:
    """The scene's non-crowd person instances in annotation order: Person 1, Person 2, ..."""
    return [inst for inst in scene.instances if inst.category == "person" and not inst.iscrowd]


def labelled_joints(instance: Instance) -> dict[str, tuple[float, float, int]]:
    """name -> (x, y, v) for the joints with v > 0."""
    values = instance.keypoints or ()
    joints = {}
    for i, name in enumerate(KEYPOINT_NAMES):
        if 3 * i + 2 < len(values) and values[3 * i + 2] > 0:
            joints[name] = (float(values[3 * i]), float(values[3 * i + 1]), int(values[3 * i + 2]))
    return joints


def point(joints: dict, name: str) -> Point | None:
    joint = joints.get(name)
    return (joint[0], joint[1]) if joint else None


def dist(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def mid(a: Point, b: Point) -> Point:
    return ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)


def inner_angle(a: Point, b: Point, c: Point) -> float | None:
    """The angle at ``b`` between b->a and b->c in degrees (180 = straight); None when a segment has no length."""
    v1, v2 = (a[0] - b[0], a[1] - b[1]), (c[0] - b[0], c[1] - b[1])
    n1, n2 = math.hypot(*v1), math.hypot(*v2)
    if n1 < 1e-6 or n2 < 1e-6:
        return None
    cos = max(-1.0, min(1.0, (v1[0] * v2[0] + v1[1] * v2[1]) / (n1 * n2)))
    return math.degrees(math.acos(cos))


def limb_angle(a: Point, b: Point, c: Point, min_length: float = 0.0) -> float | None:
    """The inner angle at joint ``b`` of a limb, or None when one segment is seen nearly end-on.

    A segment under half the length of the other one points at or away from the camera (a thigh of someone sitting
    and facing us, a forearm held towards the lens); its 2-D angle then says little about the real bend, and a
    seated person's legs would read as straight, standing ones. Both segments under ``min_length`` (a whole arm
    pointing at the lens) say as little.
    """
    upper, lower = dist(a, b), dist(b, c)
    if min(upper, lower) < max(0.5 * max(upper, lower), min_length):
        return None
    return inner_angle(a, b, c)


def from_down(a: Point, b: Point) -> float | None:
    """Angle of a->b from straight down (image y grows downwards): 0 = hanging down, 90 = level, 180 = up."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    if math.hypot(dx, dy) < 1e-6:
        return None
    return math.degrees(math.atan2(abs(dx), dy))


def tens(degrees: float) -> int:
    return int(round(degrees / 10.0) * 10)


def torso(joints: dict) -> tuple[Point, Point] | None:
    """(shoulder point, hip point): both midpoints when all four are labelled, else one side's pair."""
    ls, rs, lh, rh = (point(joints, f"{s}_{p}") for p in ("shoulder", "hip") for s in SIDES)
    if ls and rs and lh and rh:
        return mid(ls, rs), mid(lh, rh)
    for shoulder, hip in ((ls, lh), (rs, rh)):
        if shoulder and hip:
            return shoulder, hip
    return None
