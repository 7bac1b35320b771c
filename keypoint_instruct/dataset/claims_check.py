"""One pose claim against one person's pose facts: contradicted (with the fact, in words), or not.

The facts are those the pose notes print (:func:`keypoint_instruct.coco.posefacts.person_facts`), so a claim the
notes support is never contradicted here. A check answers only what the 2-D picture settles; everything else (an
unlabelled joint, a limb seen end-on, a person too small to measure, a lean towards the camera, a jump without a
ground to measure it from) is left undecided, which never counts against an answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keypoint_instruct.coco.posture import posture_words

if TYPE_CHECKING:
    from keypoint_instruct.coco.posefacts import PersonFacts
    from keypoint_instruct.dataset.claims import Claim

UPRIGHT_LIMIT = 20  # torso tilt (tens of degrees, as the notes round it) that no "upright" survives
_POSTURES = ("standing", "sitting", "crouching", "kneeling", "lying", "upside down")


def fits(claim: Claim, facts: PersonFacts) -> bool:
    return check(claim, facts) is None


def check(claim: Claim, facts: PersonFacts) -> str | None:
    """The fact that contradicts ``claim`` for this person, in words; None when nothing does (or nothing can)."""
    if claim.name in _POSTURES:
        return _posture(claim.name, facts)
    return _CHECKS[claim.name](claim, facts)


def _posture(name: str, f: PersonFacts) -> str | None:
    why = dict(f.ruled_out).get(name)
    return f"not {name}: {why}" if why else None


def _arms(claim: Claim, f: PersonFacts) -> list:
    """The arms the claim is about, with "either" meaning: contradicted only if every labelled arm is."""
    arms = list(f.arm_facts)
    if claim.sides in ("left", "right"):
        return [a for a in arms if a.side == claim.sides]
    return arms


def _every(claim: Claim, arms: list, bad) -> str | None:
    """Contradiction when one named arm is ``bad`` (both / one side) or, for "either", when both are."""
    found = [(a, bad(a)) for a in arms]
    if claim.sides == "either":
        if len(found) == 2 and all(why for _, why in found):
            return "; ".join(f"{a.side} {why}" for a, why in found)
        return None
    hit = next(((a, why) for a, why in found if why), None)
    return f"{hit[0].side} {hit[1]}" if hit else None


def _on_feet(claim: Claim, f: PersonFacts) -> str | None:
    if f.posture in ("sitting", "kneeling", "lying", "upside down"):
        return posture_words(f.posture)
    return None


def _raised(claim: Claim, f: PersonFacts) -> str | None:
    return _every(claim, _arms(claim, f), lambda a: "wrist below the shoulder" if a.height == "low" else None)


def _hand_at_head(claim: Claim, f: PersonFacts) -> str | None:
    return _every(claim, _arms(claim, f), lambda a: "arm hangs straight down" if a.hangs else None)


def _at_sides(claim: Claim, f: PersonFacts) -> str | None:
    def away(a) -> str | None:
        if a.height in ("above the head", "above the shoulder"):
            return f"arm raised {a.height}"
        if a.side in f.held_out:
            return "arm held out level"
        if a.out is not None and a.out >= 0.4:
            return "arm stretched well out from the body"
        if f.arms:
            return f"arm in {f.arms}"
        return None

    return _every(claim, _arms(claim, f), away)


def _crossed(claim: Claim, f: PersonFacts) -> str | None:
    def apart(a) -> str | None:
        if a.height in ("above the head", "above the shoulder"):
            return f"arm raised {a.height}"
        if a.side in f.held_out:
            return "arm held out level"
        if a.out is not None and a.out >= 0.1:
            return "wrist outside its own shoulder"
        if a.hangs:
            return "arm hangs straight down"
        return None

    if f.arms == "hands on the hips":
        return "hands on the hips"
    if f.arms == "arms crossed":
        return None
    found = [(a, apart(a)) for a in f.arm_facts]
    hit = next(((a, why) for a, why in found if why), None)
    return f"{hit[0].side} {hit[1]}" if hit else None


def _on_hips(claim: Claim, f: PersonFacts) -> str | None:
    def off(a) -> str | None:
        if a.hangs:
            return "arm hangs straight down"
        if a.height in ("above the head", "above the shoulder"):
            return f"arm raised {a.height}"
        if a.to_hip is not None and a.to_hip > 0.6:
            return "wrist far from the hip"
        return None

    if f.arms == "arms crossed":
        return "arms crossed in front of the chest"
    if f.arms == "hands on the hips":
        return None
    return _every(claim, _arms(claim, f), off)


def _on_knees(claim: Claim, f: PersonFacts) -> str | None:
    return _every(
        claim,
        _arms(claim, f),
        lambda a: "wrist far from the knees" if a.to_knee is not None and a.to_knee > 0.6 else None,
    )


def _held_out(claim: Claim, f: PersonFacts) -> str | None:
    def down(a) -> str | None:
        if a.hangs:
            return "arm hangs straight down"
        return "arm raised above the head" if a.height == "above the head" else None

    return _every(claim, _arms(claim, f), down)


def _upright(claim: Claim, f: PersonFacts) -> str | None:
    if f.posture in ("lying", "upside down"):
        return posture_words(f.posture)
    if f.lean_degrees is not None and f.lean_degrees >= UPRIGHT_LIMIT:
        return f"torso tilted about {f.lean_degrees} degrees from vertical"
    return None


def _forward(claim: Claim, f: PersonFacts) -> str | None:
    if f.lean_degrees is None or f.posture in ("lying", "upside down"):
        return None
    if f.facing in ("left", "right"):  # a side view shows a lean towards or away from where the body faces
        if f.lean_degrees < 10:
            return "torso upright, seen from the side"
        if f.lean_direction == "backward" and f.lean_degrees >= 20:
            return f"torso leaning backward about {f.lean_degrees} degrees"
        return None
    # From the front a forward lean only shortens the torso: a deep bend shows, a slight one does not.
    if claim.strong and f.torso_full and f.lean_degrees < 10:
        return "torso upright and seen at full length from the front"
    return None


def _back(claim: Claim, f: PersonFacts) -> str | None:
    if f.facing not in ("left", "right") or f.lean_degrees is None:
        return None
    if f.lean_degrees < 10:
        return "torso upright, seen from the side"
    if f.lean_direction == "forward" and f.lean_degrees >= 20:
        return f"torso leaning forward about {f.lean_degrees} degrees"
    return None


def _sideways(claim: Claim, f: PersonFacts) -> str | None:
    if f.view in ("front", "back") and f.lean_degrees is not None and f.lean_degrees < 10:
        return "torso upright in a front or back view"
    return None


def _facing(claim: Claim, f: PersonFacts) -> str | None:
    wanted = {"facing the camera": "the camera", "facing away": "away from the camera",
              "facing left": "left", "facing right": "right"}[claim.name]  # fmt: skip
    opposite = {"the camera": "away from the camera", "away from the camera": "the camera", "left": "right",
                "right": "left"}[wanted]  # fmt: skip
    if f.facing == opposite:
        return "facing the picture's " + opposite if opposite in ("left", "right") else f"facing {opposite}"
    return None


def _head_forward(claim: Claim, f: PersonFacts) -> str | None:
    return f"head turned towards the picture's {f.head_turn}" if f.head_turn else None


def _lifted(claim: Claim, f: PersonFacts) -> str | None:
    if f.feet_down:
        return "both legs straight down from the hips with the feet level"
    if claim.sides in ("left", "right") and f.lifted_leg and f.lifted_leg != claim.sides:
        return f"the {f.lifted_leg} leg is the lifted one"
    return None


def _on_ground(claim: Claim, f: PersonFacts) -> str | None:
    if f.lifted_leg:
        return f"{f.lifted_leg} leg lifted"
    if f.feet_above:
        return f"feet well above those of Person {f.feet_above[0]}, who is the same size"
    return None


def _jumping(claim: Claim, f: PersonFacts) -> str | None:
    if f.feet_below and f.feet_down:
        return f"feet on the ground line, well below those of Person {f.feet_below[0]} (same size), legs straight"
    return None


def _together(claim: Claim, f: PersonFacts) -> str | None:
    if f.feet_gap is not None and f.feet_gap > 0.8:
        return "feet far apart"
    return None


def _angles(f: PersonFacts, joint: str, sides: str) -> list[tuple[str, int]]:
    wanted = ("left", "right") if sides in ("both", "either") else (sides,)
    return [(a.joint, a.degrees) for a in f.angles if a.joint.endswith(joint) and a.joint.split()[0] in wanted]


def _straight(joint: str):
    def check_straight(claim: Claim, f: PersonFacts) -> str | None:
        # A straight limb is a straight line in any view; a clear bend in the picture is a bend in the body.
        bent = [(j, d) for j, d in _angles(f, joint, claim.sides) if d <= 120]
        if claim.sides == "either" and len(bent) < 2:
            return None
        return f"{bent[0][0]} bent about {bent[0][1]} degrees" if bent else None

    return check_straight


def _sharply_bent(joint: str):
    def check_bent(claim: Claim, f: PersonFacts) -> str | None:
        # A deep bend cannot look straight unless a segment points at the lens (then no angle is stated).
        angles = _angles(f, joint, claim.sides)
        if angles and all(d >= 160 for _, d in angles) and (claim.sides in ("left", "right") or len(angles) == 2):
            return " and ".join(f"{j} straight" for j, _ in angles)
        return None

    return check_bent


_CHECKS = {
    "jumping": _jumping,
    "on the ground": _on_ground,
    "on the feet": _on_feet,
    "arms raised": _raised,
    "hands at the head": _hand_at_head,
    "arms at the sides": _at_sides,
    "arms crossed": _crossed,
    "hands on the hips": _on_hips,
    "hands on the knees": _on_knees,
    "arm held out": _held_out,
    "torso upright": _upright,
    "leaning forward": _forward,
    "leaning back": _back,
    "leaning sideways": _sideways,
    "facing the camera": _facing,
    "facing away": _facing,
    "facing left": _facing,
    "facing right": _facing,
    "head facing forward": _head_forward,
    "one leg lifted": _lifted,
    "feet together": _together,
    "legs straight": _straight("knee"),
    "knees sharply bent": _sharply_bent("knee"),
    "arms straight": _straight("elbow"),
    "elbows sharply bent": _sharply_bent("elbow"),
}
