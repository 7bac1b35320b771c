"""Pose-claim verification: the sentences of an answer whose pose claims the keypoints disprove.

A stub with the agreed interface: it finds nothing. The real verifier (issue 12, part 1) replaces this module; the
build, the decision function (:mod:`keypoint_instruct.dataset.decide`) and ``benchmarks/bench_quality.py`` already
call :func:`find_contradictions` and turn what it returns into ``pose_contradiction`` drops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keypoint_instruct.coco.annotations import Scene


@dataclass(frozen=True)
class Contradiction:
    sentence: str  # the sentence holding the claim
    start: int  # its character offsets in the text given to find_contradictions
    end: int
    claim: str  # "standing upright", "both arms raised"
    person: int | None  # person number as the pose notes number them; None: no person fits
    fact: str  # the geometric fact that contradicts it, in words


def find_contradictions(text: str, scene: Scene) -> list[Contradiction]:
    """The claims of ``text`` that the keypoints of ``scene`` disprove, in text order (the stub finds none)."""
    return []
