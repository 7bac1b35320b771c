"""Quality filters: each decides to keep a response or a pair, or names the reason code it is dropped for.

Nothing is dropped silently: the build counts every drop under one of :data:`REASONS` and the dataset card shows
the counts. The word lists and patterns are data (``quality_filters.json`` beside this module); angle and
"Person N" leaks are in :mod:`~keypoint_instruct.dataset.leaks`, refusals and hedges in
:mod:`~keypoint_instruct.dataset.refusals`. What the build does with a whole response, pose verification included,
is :func:`keypoint_instruct.dataset.decide.decide`.

Response-level reasons drop the whole teacher response; pair-level reasons drop one question/answer pair (or the
description) and keep the rest of the response.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from keypoint_instruct.dataset.leaks import LeakRules, angle_leak, leak_rules, person_label_leak
from keypoint_instruct.dataset.refusals import RefusalRules, refusal_rules, refusal_span
from keypoint_instruct.dataset.sentences import sentence_at

if TYPE_CHECKING:
    from keypoint_instruct.coco.annotations import Scene

TRUNCATED = "truncated"  # the teacher stopped at its token limit (finish_reason "length")
CONTENT_FILTER = "content_filter"  # the provider's content filter stopped the answer (finish_reason "content_filter")
EMPTY = "empty"  # blank response text
UNPARSEABLE = "unparseable"  # no Question/Answer structure where one was expected
COORDINATE_LEAKAGE = "coordinate_leakage"  # normalised numbers, number lists or "x=" values reach the text
NAMES_SOURCE = "names_source"  # the text talks about captions, boxes, keypoints, "the description/text says"
LEAK_ANGLE = "leak_angle"  # a joint angle or lean in degrees, as the pose notes give them
LEAK_NOTES = "leak_notes"  # the pose notes named ("the notes say")
LEAK_SKELETON = "leak_skeleton"  # "skeleton", "the joints given", "joint data"
LEAK_VISIBILITY = "leak_visibility"  # visibility flags or their wording ("visibility 1", "labelled but hidden")
LEAK_PERSON_LABEL = "leak_person_label"  # "Person 2": the notes' label, in no caption of the image
REFUSAL = "refusal"  # "I'm sorry", "as an AI", "cannot be determined" with no answer; or the provider's refusal
POSE_CONTRADICTION = "pose_contradiction"  # a pose claim the keypoints disprove (the verifier, dataset/verify.py)
REPEATED_QUESTION = "repeated_question"  # the same question was already kept for this image and task
SUPERSEDED = "superseded"  # another response for the same image and task is used (the newest complete one)
EXTRA_PAIR = "extra_pair"  # a complex reasoning response's pairs after the first (one question per image is kept)
BENCHMARK_IMAGE = "benchmark_image"  # the image is in a benchmark the build excludes (build --exclude-bench)

REASONS = (
    TRUNCATED,
    CONTENT_FILTER,
    EMPTY,
    UNPARSEABLE,
    COORDINATE_LEAKAGE,
    NAMES_SOURCE,
    LEAK_ANGLE,
    LEAK_NOTES,
    LEAK_SKELETON,
    LEAK_VISIBILITY,
    LEAK_PERSON_LABEL,
    REFUSAL,
    POSE_CONTRADICTION,
    REPEATED_QUESTION,
    SUPERSEDED,
    EXTRA_PAIR,
    BENCHMARK_IMAGE,
)
# What the teacher saw and a viewer could not know: the text filters in the order they are tried.
LEAK_REASONS = (
    COORDINATE_LEAKAGE,
    LEAK_ANGLE,
    LEAK_NOTES,
    LEAK_SKELETON,
    LEAK_VISIBILITY,
    LEAK_PERSON_LABEL,
    NAMES_SOURCE,
)

REASON_DESCRIPTIONS = {
    TRUNCATED: "the teacher hit its token limit (finish_reason `length`)",
    CONTENT_FILTER: "the provider's content filter stopped the answer (finish_reason `content_filter`)",
    EMPTY: "the response text was blank",
    UNPARSEABLE: "no usable `Question:`/`Answer:` structure",
    COORDINATE_LEAKAGE: "coordinates in the text: normalised numbers (0.42), number lists ([..], (245, 130)), x=, v=",
    NAMES_SOURCE: "the text names its source (captions, bounding boxes, keypoints, annotations, "
    '"the description says", "the text mentions")',
    LEAK_ANGLE: 'a joint angle or lean in degrees, as the pose notes give them ("knee bent at about 110 degrees")',
    LEAK_NOTES: 'the pose notes named ("the pose notes say", "according to the notes")',
    LEAK_SKELETON: 'the skeleton or the joints given named ("the skeleton shows", "only the upper-body joints are '
    'given")',
    LEAK_VISIBILITY: 'visibility flags or their wording ("visibility 1", "labelled but not visible", "marked as '
    'hidden")',
    LEAK_PERSON_LABEL: 'a "Person N" label of the pose notes that no caption of the image uses',
    REFUSAL: "a refusal or a non-answer with no answer after it (a hedge followed by an answer is kept); also the "
    "provider's own refusal, finish_reason `refusal`",
    POSE_CONTRADICTION: "a pose claim the keypoints disprove (the pair of a conversation, else the whole response)",
    REPEATED_QUESTION: "a question asked twice in one response (same image and task)",
    SUPERSEDED: "another response for the same image and task is used: the newest one not cut short",
    EXTRA_PAIR: "a complex reasoning response's questions after its first (one question per image is kept)",
    BENCHMARK_IMAGE: "the image is in a benchmark excluded with `--exclude-bench` (never train on benchmark images)",
}

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})
_NON_WORD = re.compile(r"[^\w]+")


@dataclass(frozen=True)
class FilterRules:
    decimal: re.Pattern[str]  # a lone normalised number
    ordinary_number: re.Pattern[str]  # a sentence whose decimals are ordinary numbers (a batting average, a price)
    coordinates: tuple[re.Pattern[str], ...]
    source: re.Pattern[str]
    source_patterns: tuple[re.Pattern[str], ...]
    leaks: dict[str, tuple[re.Pattern[str], ...]]  # reason code -> patterns (notes, skeleton, visibility)
    special: LeakRules  # angles and person labels
    refusal: RefusalRules
    triggers: dict[str, tuple[str, ...]]  # reason code -> substrings one of which any text it drops contains


def _any_phrase(phrases: list[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


@lru_cache(maxsize=1)
def load_rules() -> FilterRules:
    """The filter tables shipped with the package, compiled once."""
    raw = json.loads(resources.files(__package__).joinpath("quality_filters.json").read_text("utf-8"))
    units = "|".join(re.escape(u) for u in sorted(raw["ordinary_number_units"], key=len, reverse=True))
    sensitive = tuple(re.compile(p) for p in raw.get("source_patterns_case_sensitive", ()))
    return FilterRules(
        decimal=re.compile(raw["decimal_pattern"].replace("UNITS", units)),
        ordinary_number=re.compile(raw["ordinary_number_context"], re.IGNORECASE),
        coordinates=tuple(re.compile(p.replace("UNITS", units)) for p in raw["coordinate_patterns"]),
        source=_any_phrase(raw["source_terms"]),
        source_patterns=sensitive + tuple(re.compile(p, re.IGNORECASE) for p in raw["source_patterns"]),
        leaks={
            reason: tuple(re.compile(p, re.IGNORECASE) for p in patterns)
            for reason, patterns in raw["leak_patterns"].items()
        },
        special=leak_rules(raw),
        refusal=refusal_rules(raw),
        triggers={reason: tuple(t.lower() for t in words) for reason, words in raw["triggers"].items()},
    )


# A refusal in the provider's refusal field (content null) is stored by the teacher with finish_reason "refusal":
# the whole response is a refusal, whatever its words, and like an answer cut short it never replaces a complete one.
_CUT_SHORT = {"length": TRUNCATED, "content_filter": CONTENT_FILTER, "refusal": REFUSAL}


def response_reason(finish_reason: str) -> str | None:
    """Why an answer the teacher did not finish is dropped (``truncated``, ``content_filter``, ``refusal``), else
    None."""
    return _CUT_SHORT.get(finish_reason)


@dataclass(frozen=True)
class Hit:
    """Why a text is dropped and where: ``text[start:end]`` is the offending span."""

    reason: str
    start: int
    end: int


def _coordinates(text: str, rules: FilterRules) -> tuple[int, int] | None:
    """The first coordinate in ``text``: a lone decimal outside a sentence about ordinary numbers, a number list or
    pair, an ``x=`` value."""
    listed = [m.span() for p in rules.coordinates for m in p.finditer(text)]
    for match in rules.decimal.finditer(text):
        start, end = sentence_at(text, match.start())
        if not rules.ordinary_number.search(text, start, end):
            # a decimal inside a number list or pair: the whole list is the span ("[0.42, 0.31]")
            around = [(a, b) for a, b in listed if a <= match.start() and match.end() <= b]
            return min(around, key=lambda span: (span[0], -span[1])) if around else match.span()
    return min(listed) if listed else None


def _first(patterns, text: str) -> tuple[int, int] | None:
    found = [m.span() for m in (p.search(text) for p in patterns) if m]
    return min(found) if found else None


def text_hit(text: str, *, scene: Scene | None = None, check_refusal: bool = True) -> Hit | None:
    """The first reason ``text`` must not reach a student, with the offending span, or None.

    Leaks are tried in :data:`LEAK_REASONS` order, then refusals. ``scene`` (optional) sharpens two leak checks:
    "Person N" is no leak where a caption of the image says it, and a number of degrees that the scene's pose
    notes print is an angle leak even where the wording would pass for an object's angle or a turn.
    """
    rules = load_rules()
    text = text.translate(_APOSTROPHES)  # one character for one: the offsets hold for the original text
    lowered = text.lower()

    def triggered(reason: str) -> bool:
        """A cheap substring test before the patterns: most answers hold none of a reason's trigger words."""
        words = rules.triggers.get(reason)
        return words is None or len(lowered) != len(text) or any(word in lowered for word in words)

    checks = {
        COORDINATE_LEAKAGE: lambda: _coordinates(text, rules),
        LEAK_ANGLE: lambda: angle_leak(text, rules.special, scene),
        LEAK_PERSON_LABEL: lambda: person_label_leak(text, rules.special, scene),
        NAMES_SOURCE: lambda: _first((rules.source, *rules.source_patterns), text),
    }
    for reason in LEAK_REASONS:
        if not triggered(reason):
            continue
        span = checks[reason]() if reason in checks else _first(rules.leaks.get(reason, ()), text)
        if span:
            return Hit(reason, *span)
    if check_refusal and triggered(REFUSAL):
        span = refusal_span(text, rules.refusal)
        if span:
            return Hit(REFUSAL, *span)
    return None


def text_reason(text: str, *, scene: Scene | None = None, check_refusal: bool = True) -> str | None:
    """The first reason ``text`` must not reach a student, or None (:func:`text_hit` without the span)."""
    hit = text_hit(text, scene=scene, check_refusal=check_refusal)
    return hit.reason if hit else None


def pair_reason(question: str | None, answer: str, *, scene: Scene | None = None) -> str | None:
    """Why a question/answer pair is dropped by the text filters, or None to keep it.

    ``question=None`` skips the question (a detailed description's instruction is ours, not the teacher's).
    Refusals are looked for in the answer only. Pose claims are not checked here (see ``decide``).
    """
    if question is not None:
        reason = text_reason(question, scene=scene, check_refusal=False)
        if reason:
            return reason
    return text_reason(answer, scene=scene)


def normalize_question(question: str) -> str:
    """Lower case, punctuation and spacing removed: the key for the repeated-question filter."""
    return " ".join(_NON_WORD.sub(" ", question.lower().translate(_APOSTROPHES)).split())
