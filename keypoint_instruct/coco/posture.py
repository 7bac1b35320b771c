"""Legs and posture from keypoints: what each leg shows, the likely posture, the postures the joints rule out, a
lifted leg, the feet (pure, no I/O; image y grows downwards).

Every length is divided by the person's scale (the torso's length), so the readings do not depend on image size.
A posture is stated only when the legs agree; a posture is *ruled out* only by geometry that no way of doing it could
show (a straight thigh hanging from the hip is no seated thigh, a knee held well above its ankle is no knee on the
ground). The pose notes and the answer verifier both read these results, so they never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from keypoint_instruct.coco.geometry import SIDES, dist, from_down, limb_angle, point

POSTURES = ("standing", "sitting", "kneeling", "crouching", "lying", "upside down")
THIGH_DOWN = 35.0  # degrees from straight down: a thigh hanging roughly vertically
THIGH_LEVEL = 55.0  # and from here on roughly level (or raised)
KNEE_DOWN = 0.35  # ankle at most this share of the shin below the knee: the shin lies on the ground
KNEE_UP = 0.4  # ankle at least this share of the shin below the knee: the knee is held off the ground
INVERTED = 135.0  # torso from straight up: the hips above the shoulders


@dataclass(frozen=True)
class LegFacts:
    side: str
    reading: str | None  # what this leg alone suggests: "standing" | "sitting" | "kneeling" | "crouching" | None
    thigh: float | None  # thigh direction from straight down in degrees (0 hanging, 90 level, 180 up)
    thigh_length: float  # hip to knee over the torso's length
    knee: float | None  # 2-D inner knee angle (None: no ankle, or a segment seen end-on)
    knee_drop: float | None  # how far the ankle lies below the knee, as a share of the shin (1: straight below)


def leg_facts(joints: dict, side: str, scale: float) -> LegFacts | None:
    """The leg of ``side``, or None when its hip or knee is unlabelled."""
    hip, knee, ankle = (point(joints, f"{side}_{p}") for p in ("hip", "knee", "ankle"))
    if not (hip and knee):
        return None
    thigh = from_down(hip, knee)
    knee_angle = limb_angle(hip, knee, ankle) if ankle else None
    shin = dist(knee, ankle) if ankle else 0.0
    drop = (ankle[1] - knee[1]) / shin if ankle and shin > 1e-6 else None
    reading = None
    if thigh is not None and thigh >= THIGH_LEVEL:  # thigh roughly level (or raised)
        reading = "sitting"
        if knee_angle is not None and knee_angle < 75:
            # Knees drawn up tight: a crouch holds the hips above the feet, sitting on the ground rests them there.
            reading = "crouching" if ankle[1] - hip[1] > 0.25 * shin else "sitting"
    elif thigh is not None and thigh <= THIGH_DOWN and knee_angle is not None:  # thigh roughly vertical
        if knee_angle >= 140:
            reading = "standing"
        elif knee_angle <= 110 and drop is not None and drop <= KNEE_DOWN:  # the knee down at the ankle's level
            reading = "kneeling"
    return LegFacts(side, reading, thigh, dist(hip, knee) / scale, knee_angle, drop)


def posture(legs: list[LegFacts], lean: float | None, bbox: tuple, inverted: bool) -> str | None:
    """The likely posture, or None when the joints do not tell."""
    _, _, w, h = bbox
    if inverted:
        return "upside down"
    readings = [leg.reading for leg in legs]
    if lean is not None and lean > 45:
        if "standing" in readings:  # straight legs down from the hips: bending over, not lying
            return "standing"
        if lean >= 60 and w >= 0.9 * h and not {"kneeling", "crouching"} & set(readings):  # not on all fours
            return "lying"  # a horizontal torso in a tall box is bending over
        return None
    if "standing" in readings and (lean is not None or h >= w):
        return "standing"
    if lean is None:  # without a torso, level thighs may belong to someone lying down
        return None
    if readings and all(r is not None and r == readings[0] for r in readings):  # every measured leg agrees
        return readings[0]
    return None


def is_inverted(joints: dict, lean: float | None, hip_y: float | None) -> bool:
    """Upside down: the torso points head-down and no face point lies above the hips."""
    if lean is None or lean < INVERTED or hip_y is None:
        return False
    face = [joints[n][1] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear") if n in joints]
    return not any(y < hip_y for y in face)


_EXCLUDES = {
    "standing": ("sitting", "lying", "upside down", "kneeling"),
    "sitting": ("standing", "upside down"),
    "kneeling": ("standing", "crouching", "lying", "upside down"),
    "crouching": ("standing", "lying", "upside down"),
    "lying": ("standing", "kneeling", "crouching", "upside down"),
    "upside down": ("standing", "sitting", "kneeling", "crouching", "lying"),
}
_AS = {
    "standing": "stands on a straight leg below the hips",
    "sitting": "sits, thighs level",
    "kneeling": "kneels, knees down at the ankles' level",
    "crouching": "crouches, knees sharply bent with the hips above the feet",
    "lying": "lies with the torso level",
    "upside down": "is upside down, hips above the shoulders and the head",
}


def posture_words(found: str) -> str:
    """How the geometry shows ``found``, in words a reader can check on the picture."""
    return _AS[found]


def ruled_out(
    found: str | None, legs: list[LegFacts], lean: float | None, tall: bool = False
) -> tuple[tuple[str, str], ...]:
    """(posture, why) for the postures the joints rule out, in :data:`POSTURES` order. ``tall``: the lower ankle
    lies at least one and a half torso lengths below the shoulders (a body lying down in a photograph taken from
    about eye level spans little height)."""
    out: dict[str, str] = {p: _AS[found] for p in _EXCLUDES.get(found or "", ())}
    if found == "lying" and lean is not None and 75 <= lean <= 105:  # flat out, not reclining in a seat
        out.setdefault("sitting", _AS["lying"])
    # A full-length thigh hanging from the hip carries no seat (a seated thigh is level or points at the camera).
    if any(leg.thigh is not None and leg.thigh <= THIGH_DOWN and leg.thigh_length >= 0.6 for leg in legs):
        out.setdefault("sitting", "a thigh hangs straight down from the hip")
    # Both knees held well above their ankles: neither is on the ground.
    if len(legs) == 2 and all(leg.knee_drop is not None and leg.knee_drop >= KNEE_UP for leg in legs):
        out.setdefault("kneeling", "both knees are held well above the ankles")
    if found == "standing" and len(legs) == 2 and all(leg.knee is not None and leg.knee >= 150 for leg in legs):
        out.setdefault("crouching", "both legs are straight")
    if lean is not None and lean < 30:
        out.setdefault("lying", "the torso is upright")
    if lean is not None and lean < 60 and tall:
        out.setdefault("lying", "the body stands tall in the picture, feet far below the shoulders")
    if lean is not None and lean < 90:
        out.setdefault("upside down", "the hips are below the shoulders")
    out.pop(found or "", None)
    return tuple((p, out[p]) for p in POSTURES if p in out)


def lifted_leg(joints: dict, legs: list[LegFacts], scale: float) -> str | None:
    """The side of a leg lifted clear of a straight standing leg under the hip; None when there is none or the
    feet only look uneven (a wide stance seen from the front puts the nearer foot lower in the picture)."""
    by_side = {leg.side: leg for leg in legs}
    for stand, other in (("left", "right"), ("right", "left")):
        leg = by_side.get(stand)
        if not leg or leg.reading != "standing" or leg.thigh > 20 or leg.knee < 150:
            continue
        hip, knee, ankle = (point(joints, f"{stand}_{p}") for p in ("hip", "knee", "ankle"))
        o_knee, o_ankle = point(joints, f"{other}_knee"), point(joints, f"{other}_ankle")
        if not (o_knee and o_ankle) or abs(ankle[0] - hip[0]) > 0.3 * scale:
            continue
        if knee[1] - o_knee[1] > 0.3 * scale and ankle[1] - o_ankle[1] > 0.3 * scale:
            return other
    return None


def feet_down(joints: dict, legs: list[LegFacts], scale: float) -> bool | None:
    """True when both legs hang straight from the hips with the ankles level (no knee raised, no foot lifted);
    None when a leg is not fully labelled or the legs do not look like that."""
    la, ra = point(joints, "left_ankle"), point(joints, "right_ankle")
    if len(legs) < 2 or not (la and ra):
        return None
    straight = all(
        leg.thigh is not None and leg.thigh <= 25 and leg.knee is not None and leg.knee >= 145 for leg in legs
    )
    return True if straight and abs(la[1] - ra[1]) <= 0.25 * scale else None


def stance(joints: dict, scale: float) -> str | None:
    """How far apart the feet are, against the hips' (or shoulders') width, for a standing person."""
    la, ra = point(joints, "left_ankle"), point(joints, "right_ankle")
    if not (la and ra):
        return None
    ref = None
    for a, b in (("left_hip", "right_hip"), ("left_shoulder", "right_shoulder")):
        pa, pb = point(joints, a), point(joints, b)
        if pa and pb and abs(pa[0] - pb[0]) >= max(0.25 * scale, 1e-6):
            ref = abs(pa[0] - pb[0])
            break
    if ref is None:
        return None
    ratio = abs(la[0] - ra[0]) / ref
    if ratio >= 2.5:
        return "feet wide apart"
    if ratio >= 1.3:
        return "feet apart"
    if ratio <= 0.5:
        return "feet close together"
    return "feet about hip-width apart"


def feet_gap(joints: dict, scale: float) -> float | None:
    """The distance between the ankles in the picture over the torso's length (a lower bound of the real gap)."""
    la, ra = point(joints, "left_ankle"), point(joints, "right_ankle")
    return dist(la, ra) / scale if la and ra else None


def sides_of(joints: dict, scale: float) -> list[LegFacts]:
    return [leg for leg in (leg_facts(joints, side, scale) for side in SIDES) if leg]
