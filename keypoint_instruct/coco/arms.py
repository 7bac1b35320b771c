"""Arms and head from keypoints: raised arms, a hand at the head, crossed arms, hands on the hips, an arm held out,
where each wrist is against the body, and a head turned away from the body's front (pure, no I/O).

Heights mean something only for an upright body, so the caller asks for them only then. Lengths are divided by the
person's scale (the torso's length). Used by :mod:`keypoint_instruct.coco.posefacts`.
"""

from __future__ import annotations

from dataclasses import dataclass

from keypoint_instruct.coco.geometry import SIDES, dist, from_down, limb_angle, point

FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")


@dataclass(frozen=True)
class ArmFacts:
    side: str
    height: str  # wrist against the body: "above the head" | "above the shoulder" | "shoulder height" | "low"
    out: float | None  # wrist's distance beyond its own shoulder, sideways (front or back view; < 0: inside)
    hangs: bool  # upper arm and forearm hanging straight down beside the body
    to_hip: float | None  # wrist to the same side's hip
    to_knee: float | None  # wrist to the nearer knee


def raised(joints: dict, scale: float) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """(raised arms as (side, level), sides whose hand is up at the head without a raised elbow)."""
    face = [point(joints, name) for name in FACE if name in joints]
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


def crossed_or_on_hips(joints: dict, scale: float) -> str | None:
    """ "arms crossed" (forearms across the chest, each wrist at or past the body's midline) or "hands on the hips"
    (wrists at the hips, elbows out wider than the shoulders), for a body seen from the front or the back; else None.
    A wrist up to a tenth of the torso's length short of the midline still counts: the wrists of folded arms lie on
    the forearms, and their marks often stop just short of the middle."""
    ls, rs = point(joints, "left_shoulder"), point(joints, "right_shoulder")
    if not (ls and rs) or abs(ls[0] - rs[0]) < 0.3 * scale:  # side view: the midline cannot be told
        return None
    mid = (ls[0] + rs[0]) / 2
    crossed = on_hips = True
    past = 0.0
    for side in SIDES:
        shoulder, elbow, wrist, hip = (point(joints, f"{side}_{p}") for p in ("shoulder", "elbow", "wrist", "hip"))
        if not (elbow and wrist):
            return None
        out = 1.0 if shoulder[0] > mid else -1.0  # image x direction away from the midline on this side
        beyond = (wrist[0] - mid) * out  # < 0: past the midline
        past -= beyond
        low = hip[1] if hip else shoulder[1] + scale
        chest_high = shoulder[1] < wrist[1] < shoulder[1] + 0.65 * (low - shoulder[1])
        level = from_down(elbow, wrist)
        across = level is not None and 55 <= level <= 125  # forearm within 35 degrees of level
        crossed = crossed and beyond <= 0.1 * scale and chest_high and across
        elbow_out = (elbow[0] - shoulder[0]) * out >= 0.2 * scale
        on_hips = on_hips and hip is not None and dist(wrist, hip) <= 0.3 * scale and elbow_out
    if crossed and past >= 0.15 * scale:  # together the wrists overlap: folded, not just near the middle
        return "arms crossed"
    return "hands on the hips" if on_hips else None


def held_out(joints: dict, scale: float, raised_arms: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """Sides whose arm is straight and level with the shoulder, stretched well away from the body."""
    out = []
    for side in SIDES:
        shoulder, elbow, wrist = (point(joints, f"{side}_{p}") for p in ("shoulder", "elbow", "wrist"))
        if side in dict(raised_arms) or not (shoulder and elbow and wrist) or dist(shoulder, wrist) < 0.6 * scale:
            continue
        angle, direction = limb_angle(shoulder, elbow, wrist, 0.25 * scale), from_down(shoulder, wrist)
        if angle is not None and angle >= 150 and direction is not None and 70 <= direction <= 110:
            out.append(side)
    return tuple(out)


def arm_facts(
    joints: dict, scale: float, raised_arms: tuple, view: str | None, pose: str | None = None
) -> tuple[ArmFacts, ...]:
    """Where each labelled wrist is against the body of an upright person (``pose``: crossed arms or hands on the
    hips, as :func:`crossed_or_on_hips` found them: such arms do not hang)."""
    ls, rs = point(joints, "left_shoulder"), point(joints, "right_shoulder")
    mid = (ls[0] + rs[0]) / 2 if ls and rs else None
    levels = dict(raised_arms)
    knees = [p for p in (point(joints, "left_knee"), point(joints, "right_knee")) if p]
    out = []
    for side in SIDES:
        shoulder, elbow, wrist, hip = (point(joints, f"{side}_{p}") for p in ("shoulder", "elbow", "wrist", "hip"))
        if not (shoulder and wrist):
            continue
        if side in levels:
            height = "above the head" if levels[side] == "the head" else "above the shoulder"
        else:
            height = "shoulder height" if wrist[1] <= shoulder[1] + 0.1 * scale else "low"
        beyond = None
        if view in ("front", "back") and mid is not None:
            away = 1.0 if shoulder[0] > mid else -1.0
            beyond = (wrist[0] - shoulder[0]) * away / scale
        hangs = not pose and bool(
            elbow
            and elbow[1] > shoulder[1] + 0.3 * scale
            and wrist[1] > elbow[1] + 0.3 * scale
            and (limb_angle(shoulder, elbow, wrist) or 0) >= 140
        )
        to_hip = dist(wrist, hip) / scale if hip else None
        to_knee = min(dist(wrist, k) for k in knees) / scale if knees else None
        out.append(ArmFacts(side, height, beyond, hangs, to_hip, to_knee))
    return tuple(out)


def head_turn(joints: dict, scale: float) -> str | None:
    """For a body facing the camera: "left" or "right" (of the picture) when the nose sits well off the shoulders'
    middle on that side and the ear on that side is not marked (turned away from the lens); else None."""
    nose, ls, rs = point(joints, "nose"), point(joints, "left_shoulder"), point(joints, "right_shoulder")
    if not (nose and ls and rs):
        return None
    offset = (nose[0] - (ls[0] + rs[0]) / 2) / scale
    if abs(offset) < 0.15:
        return None
    # Facing the camera, the person's left ear is on the picture's right.
    far_ear = "left_ear" if offset > 0 else "right_ear"
    return ("right" if offset > 0 else "left") if far_ear not in joints else None
