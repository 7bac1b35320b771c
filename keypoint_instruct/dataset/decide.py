"""What the build does with one teacher response: keep it, or drop it (or some of its pairs) and say why.

:func:`decide` is the one place that decision is made. ``keypoint-instruct build`` (through
:mod:`~keypoint_instruct.dataset.samples`), ``benchmarks/bench_quality.py`` and review tools all call it, so what
they report is what the build does::

    from keypoint_instruct.dataset.decide import decide
    decision = decide(text, "conversation", scene)           # scene: a coco.annotations.Scene
    for unit in decision.units:                              # one per question/answer pair (or the description)
        print(unit.index, "kept" if unit.kept else unit.finding.reason)

A decision holds either a response-level finding (``truncated``, ``content_filter``, ``refusal`` by the
provider, ``empty``, ``unparseable``: nothing is kept) or one :class:`Unit` per pair, each kept or dropped with a
:class:`Finding`: the reason code (:mod:`~keypoint_instruct.dataset.quality`), the offending span's offsets in the
response text and its text, and for a ``pose_contradiction`` the claim, the person and the contradicting fact.

Per pair, in this order: the question's leaks (a detailed description has no teacher question), the answer's
leaks, a refusal in the answer, a question already asked in this response (``repeated_question``), then the pose
claims of the answer (``verify_poses``): a contradicted claim drops that pair of a conversation, and the whole
response of a detailed description or complex reasoning (which keep one unit each). A complex reasoning response's
pairs after its first are ``extra_pair``. ``superseded`` is not decided here: it compares the responses of one image
(:func:`keypoint_instruct.dataset.samples.iter_rows`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from keypoint_instruct.dataset import quality
from keypoint_instruct.dataset.parse import ParseError, parse_description, parse_pairs

if TYPE_CHECKING:
    from keypoint_instruct.coco.annotations import Scene

__all__ = ["Decision", "Finding", "Unit", "decide"]


@dataclass(frozen=True)
class Finding:
    """Why something is dropped, and where.

    ``start``/``end`` are offsets in the response text with its line ends made ``\\n`` (``span`` is that text); both
    are None for a response-level reason, or where the span cannot be placed in the response (a pair whose text the
    parser changed).
    """

    reason: str
    span: str = ""
    start: int | None = None
    end: int | None = None
    claim: str | None = None  # pose_contradiction: the claim ("standing upright")
    person: int | None = None  # its person, numbered as the pose notes number them; None: no person fits it
    fact: str | None = None  # the geometric fact that contradicts it


@dataclass(frozen=True)
class Unit:
    """One question/answer pair of a response, or its description (``question`` None), and what becomes of it."""

    index: int  # the pair's place in the response, from 0 (0 for a description)
    question: str | None
    answer: str
    finding: Finding | None = None  # None: kept

    @property
    def kept(self) -> bool:
        return self.finding is None


@dataclass(frozen=True)
class Decision:
    task: str
    units: tuple[Unit, ...] = ()
    finding: Finding | None = None  # a response-level drop: no units then
    verified: bool = True  # whether the pose claims were checked

    @property
    def kept(self) -> tuple[Unit, ...]:
        return tuple(unit for unit in self.units if unit.kept)

    @property
    def findings(self) -> tuple[Finding, ...]:
        """Every drop: the response-level one, or one per dropped unit."""
        if self.finding is not None:
            return (self.finding,)
        return tuple(unit.finding for unit in self.units if unit.finding is not None)


def _unix_lines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _locate(text: str, part: str, cursor: int) -> int | None:
    """Where ``part`` starts in ``text`` at or after ``cursor`` (the parser keeps parts verbatim but trims them)."""
    at = text.find(part, cursor)
    return at if at >= 0 else None


def _finding(reason: str, part: str, base: int | None, start: int, end: int, **claim) -> Finding:
    offsets = (base + start, base + end) if base is not None else (None, None)
    return Finding(reason, part[start:end], *offsets, **claim)


def _check(
    question: str | None, answer: str, where: tuple[int | None, int | None], scene: Scene | None
) -> Finding | None:
    """The text filters on one pair: the question's leaks, then the answer's leaks and refusal."""
    if question is not None:
        hit = quality.text_hit(question, scene=scene, check_refusal=False)
        if hit:
            return _finding(hit.reason, question, where[0], hit.start, hit.end)
    hit = quality.text_hit(answer, scene=scene)
    if hit:
        return _finding(hit.reason, answer, where[1], hit.start, hit.end)
    return None


def _contradiction(question: str | None, answer: str, base: int | None, scene: Scene) -> Finding | None:
    """The first pose claim of ``answer`` the keypoints disprove; the question says whom "he" or "they" means."""
    from keypoint_instruct.dataset.verify import find_contradictions

    asked = f"Question: {question}\nAnswer: " if question else ""
    for found in find_contradictions(asked + answer, scene):
        return _finding(
            quality.POSE_CONTRADICTION,
            answer,
            base,
            found.start - len(asked),
            found.end - len(asked),
            claim=found.claim,
            person=found.person,
            fact=found.fact,
        )
    return None


def decide(
    text: str,
    task: str,
    scene: Scene | None,
    *,
    finish_reason: str = "stop",
    verify_poses: bool = True,
) -> Decision:
    """What the build does with the response ``text`` of ``task`` about ``scene`` (see the module docstring).

    ``scene`` gives the captions and keypoints the leak filters and the pose verifier compare with; without one
    (None) the text filters still run and the poses are not verified.
    """
    verified = verify_poses and scene is not None
    reason = quality.response_reason(finish_reason)
    if reason:
        return Decision(task, finding=Finding(reason), verified=verified)
    text = _unix_lines(text or "")
    try:
        if task == "detailed_description":
            parts = [(None, parse_description(text))]
        else:
            parts = [(pair.question, pair.answer) for pair in parse_pairs(text)]
    except ParseError as err:
        return Decision(task, finding=Finding(err.reason), verified=verified)
    units, seen, cursor = [], set(), 0
    for index, (question, answer) in enumerate(parts):
        q_at = _locate(text, question, cursor) if question is not None else None
        a_at = _locate(text, answer, q_at + len(question) if q_at is not None else cursor)
        cursor = a_at + len(answer) if a_at is not None else cursor
        if task == "complex_reasoning" and index > 0:
            units.append(Unit(index, question, answer, _finding(quality.EXTRA_PAIR, question, q_at, 0, len(question))))
            continue
        finding = _check(question, answer, (q_at, a_at), scene)
        if finding is None and question is not None:
            normalized = quality.normalize_question(question)
            if normalized in seen:
                finding = _finding(quality.REPEATED_QUESTION, question, q_at, 0, len(question))
            seen.add(normalized)
        if finding is None and verified:
            finding = _contradiction(question, answer, a_at, scene)
        units.append(Unit(index, question, answer, finding))
    return Decision(task, units=tuple(units), verified=verified)
