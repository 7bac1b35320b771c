"""What the build does with each teacher response, in a form a page can show: the review stage's one adapter.

The review page must never hold rules of its own: whatever ``keypoint-instruct build`` keeps or drops is what the
page says it keeps or drops. :func:`decide` is the single place where the page asks the dataset stage; everything
else in :mod:`keypoint_instruct.review` reads its :class:`Decision` only.

Today the build's rules live in :mod:`keypoint_instruct.dataset.samples` (``response_rows``: response-level drops,
parsing, extra pairs, repeated questions) and :mod:`keypoint_instruct.dataset.quality` (the text filters), and they
return rows and counts, not a reason per pair nor where in the text a filter fired. So :func:`decide` runs the
build's own ``response_rows`` on the response, then names each pair's reason with the same quality functions and
checks that its per-pair answer adds up to exactly the build's rows and counts (a mismatch is logged and the pair is
shown as dropped "by the build" without a reason of its own). Spans are located with the filters' own compiled
patterns (:func:`quality.load_rules`), only for the reason the build gave.

When the dataset stage gains one decision function per response (kept, or dropped with a reason code, the span of
the finding and, for a pose claim the keypoints contradict, the fact), replace the body of :func:`decide` with a call
to it and a conversion into :class:`Decision`; :class:`Finding` already carries ``fact`` and the page renders it.
:func:`used_response` mirrors the build's choice among several answers for one image and task (``superseded``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from keypoint_instruct.dataset import quality
from keypoint_instruct.dataset.parse import ParseError, parse_description, parse_pairs
from keypoint_instruct.dataset.samples import BuildStats, response_rows

logger = logging.getLogger(__name__)

__all__ = ["Decision", "Finding", "Part", "decide", "used_response"]

KEPT = "kept"
DROPPED = "dropped"
UNATTRIBUTED = "dropped_by_build"  # the build dropped this pair but the adapter could not say under which reason


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


def _lowered(text: str) -> str:
    """The text as the filters read their word lists: lower case, curly apostrophes straight (same length)."""
    return text.lower().replace("\u2019", "'").replace("\u2018", "'")


def locate(reason: str | None, text: str, where: str) -> tuple[Finding, ...]:
    """Where in ``text`` the build's filter for ``reason`` fires (its own compiled patterns), in text order."""
    rules = quality.load_rules()
    if reason == quality.COORDINATE_LEAKAGE:
        pairs = [(p, text) for p in rules.coordinates]
    elif reason == quality.NAMES_SOURCE:
        pairs = [(rules.source, _lowered(text)), *((p, text) for p in rules.source_patterns)]
    elif reason == quality.REFUSAL and where != "question":
        pairs = [(rules.refusal, _lowered(text))]
    else:
        return ()
    spans = set()
    for pattern, searched in pairs:
        if len(searched) != len(text):  # a lower-cased character that changed length: no span rather than a wrong one
            continue
        spans.update((m.start(), m.end()) for m in pattern.finditer(searched) if m.end() > m.start())
    merged: list[list[int]] = []
    for start, end in sorted(spans):  # "[0.42, 0.31]" and the "0.42" inside it are one finding
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple(Finding(reason, s, e, text[s:e], where) for s, e in merged)


def _pair_findings(reason: str | None, question: str | None, answer: str) -> tuple[Finding, ...]:
    found = locate(reason, question, "question") if question is not None else ()
    return found + locate(reason, answer, "answer")


def _whole(response: Any, reason: str) -> Decision:
    findings = locate(reason, response.text or "", "response") if reason != quality.REFUSAL else ()
    return Decision(DROPPED, reason=reason, findings=findings, dropped={reason: 1})


def _kept_indices(rows: Sequence[dict]) -> set[int]:
    """Pair indices of the rows ``response_rows`` wrote in single-turn mode (their ids end in the pair index)."""
    return {int(row["id"].rsplit("-", 1)[1]) for row in rows}


def decide(response: Any, scene: Any, *, instruction: Callable[[int, str], str]) -> Decision:
    """What the build does with ``response`` (a cached teacher answer) about ``scene``: THE adapter to swap.

    ``instruction`` is the build's instruction for a detailed description, by image id and prompt version
    (``teacher.catalogue.KnownPrompts.instruction``).
    Conversation questions are decided one by one as the default single-turn build does.
    """
    task = response.task
    stats = BuildStats()
    rows = response_rows(
        response, scene, {"bytes": None, "path": ""}, conversation_turns="single", instruction=instruction, stats=stats
    )
    dropped = Counter({reason: n for (_, reason), n in stats.dropped.items() if n})
    whole = quality.response_reason(response.finish_reason)
    if whole:
        return _whole(response, whole)
    try:
        if task == "detailed_description":
            pairs = [(instruction(response.image_id, response.prompt_version), parse_description(response.text))]
        else:
            pairs = [(p.question, p.answer) for p in parse_pairs(response.text)]
    except ParseError as err:
        return _whole(response, err.reason)
    kept = _kept_indices(rows)
    named = _name_pairs(task, pairs, kept)
    if Counter(r for r in named if r) != dropped:
        logger.warning(
            "review: the reasons named for the %s response %s (%s) differ from the build's counts (%s); its dropped "
            "pairs are shown without a reason",
            task,
            response.key,
            dict(Counter(r for r in named if r)),
            dict(dropped),
        )
        named = [None if i in kept else UNATTRIBUTED for i in range(len(pairs))]
    parts = []
    for index, ((question, answer), reason) in enumerate(zip(pairs, named, strict=True)):
        own_question = task != "detailed_description"
        status = KEPT if index in kept else DROPPED
        findings = _pair_findings(reason, question if own_question else None, answer) if reason else ()
        parts.append(Part(question, answer, status, reason, findings, instruction=not own_question))
    return Decision(
        KEPT if rows else DROPPED, parts=tuple(parts), rows=len(rows), dropped=dict(sorted(dropped.items()))
    )


def _name_pairs(task: str, pairs: list[tuple[str, str]], kept: set[int]) -> list[str | None]:
    """Each dropped pair's reason code, from the build's quality functions; None for kept pairs."""
    named: list[str | None] = []
    seen: set[str] = set()
    for index, (question, answer) in enumerate(pairs):
        if task == "complex_reasoning" and index > 0:
            named.append(quality.EXTRA_PAIR)
            continue
        own_question = None if task == "detailed_description" else question
        reason = quality.pair_reason(own_question, answer)
        if not reason and own_question is not None:
            normalized = quality.normalize_question(question)
            reason = quality.REPEATED_QUESTION if normalized in seen else None
            seen.add(normalized)
        named.append(None if index in kept else reason or UNATTRIBUTED)
    return named


def used_response(group: Sequence[Any]) -> Any:
    """The one of several answers for one image and task that the build uses; the others are ``superseded``.

    The newest answer not cut short (then the greatest key), as ``dataset.samples.iter_rows`` picks it
    (tests/review/test_decision.py checks the two agree).
    """
    return max(group, key=lambda r: (quality.response_reason(r.finish_reason) is None, r.created_at or "", r.key))
