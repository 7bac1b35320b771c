"""Pose facts -> the pose notes the teacher reads in the context mode "paper+facts" (one line per person).

Words only: the facts themselves are derived in :mod:`keypoint_instruct.coco.posefacts`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keypoint_instruct.coco.geometry import SIDES
from keypoint_instruct.coco.posefacts import PersonFacts, scene_facts

if TYPE_CHECKING:
    from keypoint_instruct.coco.annotations import Scene


def describe(facts: PersonFacts) -> str:
    """One line: "Person 1 (on the left of the picture, standing, facing the camera): left elbow bent about 90
    degrees; ...; left of Person 2 in the picture"."""
    head = [f"{facts.region} of the picture"] + [p for p in (facts.posture,) if p]
    if facts.facing:
        head.append(f"facing the picture's {facts.facing}" if facts.facing in SIDES else f"facing {facts.facing}")
    parts = [f"head turned towards the picture's {facts.head_turn}"] if facts.head_turn else []
    raised = dict(facts.raised)
    if len(raised) == 2 and raised["left"] == raised["right"]:
        parts.append(f"both arms raised above {raised['left']}")
    else:
        parts += [f"{side} arm raised above {level}" for side, level in facts.raised]
    if len(facts.hand_at_head) == 2:
        parts.append("both hands up at the head")
    else:
        parts += [f"{side} hand up at the head" for side in facts.hand_at_head]
    parts += [p for p in (facts.arms,) if p]
    if len(facts.held_out) == 2:
        parts.append("both arms held out level")
    else:
        parts += [f"{side} arm held out level" for side in facts.held_out]
    hanging = [arm.side for arm in facts.arm_facts if arm.hangs]
    parts += (
        ["both arms hanging straight down"]
        if len(hanging) == 2
        else [f"{s} arm hanging straight down" for s in hanging]
    )
    parts += [a.words for a in facts.angles if "elbow" in a.joint]
    if facts.lean_degrees is not None:
        if facts.lean_degrees < 10:
            parts.append("torso upright")
        else:
            how = f"leaning {facts.lean_direction}" if facts.lean_direction else "tilted"
            parts.append(f"torso {how} about {facts.lean_degrees} degrees from vertical")
    parts += [a.words for a in facts.angles if "knee" in a.joint]
    parts += [p for p in (facts.stance,) if p]
    if facts.lifted_leg:
        parts.append(f"{facts.lifted_leg} leg lifted")
    parts += [f"{h.side} hand {h.relation} the {h.category}" for h in facts.hands]
    parts += [f"feet well above those of Person {n}, who is the same size" for n in facts.feet_above]
    parts += [f"{r.relation} Person {r.other}" + (" in the picture" if r.relation in ("left of", "right of") else "")
              for r in facts.relations]  # fmt: skip
    if not parts:
        parts.append("no pose details readable from the marked joints" if facts.labelled else "no body joints marked")
    return f"Person {facts.number} ({', '.join(head)}): " + "; ".join(parts) + "."


def facts_block(scene: Scene) -> str:
    """The pose-facts block of ``scene``: one line per person, Person 1 first; "" when there is nobody."""
    return "\n".join(describe(facts) for facts in scene_facts(scene))
