"""What the build does with each teacher response, in a form a page can show: the review stage's one adapter.

The review page never holds rules of its own: whatever ``keypoint-instruct build`` keeps or drops is what the page
says it keeps or drops. :func:`decide` asks :func:`keypoint_instruct.dataset.decide.decide`, the function the build
itself runs on every response, and turns its answer into a :class:`Decision` of :class:`Part` objects whose
findings are placed in the question or the answer they were found in (a leaked span, a refusal phrase, a
contradicted pose claim with the fact that contradicts it). :func:`used_response` mirrors the build's choice among
several answers for one image and task (``superseded``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from keypoint_instruct.dataset import decide as build_rules
from keypoint_instruct.dataset import quality

logger = logging.getLogger(__name__)

__all__ = ["Decision", "Finding", "Part", "decide", "used_response"]

KEPT = "kept"
DROPPED = "dropped"
UNATTRIBUTED = "dropped_by_build"  # a pair the build dropped without a reason the page can name (none today)


@dataclass(frozen=True)
class Finding:
    """Something in a text that made the build drop it: a leaked span, a refusal phrase, a contradicted claim.

    ``start``/``end`` index ``where``'s text ("question", "answer", or "response" for the raw response text);
    ``text`` is that slice. ``fact`` is set for a pose claim the keypoints contradict: what the geometry says instead.
    """

    reason: str
    start: int
    end: int
    text: str
    where: str = "answer"
    fact: str | None = None


@dataclass(frozen=True)
class Part:
    """One question/answer pair of a response (a detailed description: the build's instruction and the text)."""

    question: str
    answer: str
    status: str  # KEPT | DROPPED
    reason: str | None = None  # the reason code when dropped
    findings: tuple[Finding, ...] = ()
    instruction: bool = False  # the question is the build's instruction, not the teacher's text


@dataclass(frozen=True)
class Decision:
    """What the build does with one response: its parts (each kept or dropped), or one reason for the whole of it."""

    status: str  # KEPT when at least one part becomes a row, else DROPPED
    reason: str | None = None  # set when the whole response is dropped before its parts are looked at
    parts: tuple[Part, ...] = ()
    findings: tuple[Finding, ...] = ()  # on the raw response text, for a whole-response drop
    rows: int = 0  # dataset rows the response gives (conversation: one per kept question)
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count, exactly as the build counts them

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every reason code this response shows (whole-response reason first), without repeats."""
        found = [self.reason] if self.reason else []
        found += [p.reason for p in self.parts if p.reason]
        return tuple(dict.fromkeys(found))


def _place(finding: build_rules.Finding, question: str | None, answer: str) -> tuple[Finding, ...]:
    """The build's finding placed in the question or the answer where its span stands (the answer first)."""
    fact = None
    if finding.fact:
        if not finding.claim:
            fact = finding.fact
        elif finding.person:
            fact = f"“{finding.claim}”, said of Person {finding.person}: {finding.fact}"
        else:  # the sentence names no one person: the claim was checked against everyone, and fits no one
            fact = f"“{finding.claim}” fits no one in the image: {finding.fact}"
    for where, text in (("answer", answer), ("question", question)):
        if text and finding.span and (start := text.find(finding.span)) >= 0:
            return (Finding(finding.reason, start, start + len(finding.span), finding.span, where, fact),)
    return (Finding(finding.reason, 0, 0, "", "answer", fact),) if fact else ()


def _whole(response: Any, finding: build_rules.Finding) -> Decision:
    text = (response.text or "").replace("\r\n", "\n")
    findings = ()
    if finding.start is not None and finding.end is not None and finding.end > finding.start:
        findings = (
            Finding(finding.reason, finding.start, finding.end, text[finding.start : finding.end], "response"),
        )
    return Decision(DROPPED, reason=finding.reason, findings=findings, dropped={finding.reason: 1})


def decide(response: Any, scene: Any, *, instruction: Callable[[int, str], str]) -> Decision:
    """What the build does with ``response`` (a cached teacher answer) about ``scene``.

    ``instruction`` is the build's instruction for a detailed description, by image id and prompt version
    (``teacher.catalogue.KnownPrompts.instruction``). Conversation questions are decided one by one as the default
    single-turn build does; pose claims are checked as the build checks them by default.
    """
    ruled = build_rules.decide(response.text, response.task, scene, finish_reason=response.finish_reason)
    if ruled.finding is not None:
        return _whole(response, ruled.finding)
    parts = []
    for unit in ruled.units:
        own_question = unit.question is not None
        question = unit.question if own_question else instruction(response.image_id, response.prompt_version)
        found = unit.finding
        findings = _place(found, unit.question, unit.answer) if found else ()
        status, reason = (KEPT, None) if found is None else (DROPPED, found.reason)
        parts.append(Part(question, unit.answer, status, reason, findings, instruction=not own_question))
    kept = sum(part.status == KEPT for part in parts)
    rows = kept if response.task == "conversation" else min(kept, 1)
    dropped = Counter(part.reason for part in parts if part.reason)
    return Decision(KEPT if rows else DROPPED, parts=tuple(parts), rows=rows, dropped=dict(sorted(dropped.items())))


def used_response(group: Sequence[Any]) -> Any:
    """The one of several answers for one image and task that the build uses; the others are ``superseded``.

    The newest answer not cut short (then the greatest key), as ``dataset.samples.iter_rows`` picks it
    (tests/review/test_decision.py checks the two agree).
    """
    return max(group, key=lambda r: (quality.response_reason(r.finish_reason) is None, r.created_at or "", r.key))
