"""Quality filters: each decides to keep a response or a pair, or names the reason code it is dropped for.

Nothing is dropped silently: the build counts every drop under one of :data:`REASONS` and the dataset card shows
the counts. The word lists and patterns are data (``keypoint_instruct/data/quality_filters.json``).

Response-level reasons drop the whole teacher response; pair-level reasons drop one question/answer pair (or the
description) and keep the rest of the response.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

TRUNCATED = "truncated"  # the teacher stopped at its token limit (finish_reason "length")
CONTENT_FILTER = "content_filter"  # the provider's content filter stopped the answer (finish_reason "content_filter")
EMPTY = "empty"  # blank response text
UNPARSEABLE = "unparseable"  # no Question/Answer structure where one was expected
COORDINATE_LEAKAGE = "coordinate_leakage"  # normalised numbers, number lists or "x=" values reach the text
NAMES_SOURCE = "names_source"  # the text talks about captions, boxes, keypoints or coordinates
REFUSAL = "refusal"  # "I'm sorry", "as an AI", "cannot be determined", ...; or the provider's refusal field
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
    REFUSAL,
    REPEATED_QUESTION,
    SUPERSEDED,
    EXTRA_PAIR,
    BENCHMARK_IMAGE,
)

REASON_DESCRIPTIONS = {
    TRUNCATED: "the teacher hit its token limit (finish_reason `length`)",
    CONTENT_FILTER: "the provider's content filter stopped the answer (finish_reason `content_filter`)",
    EMPTY: "the response text was blank",
    UNPARSEABLE: "no usable `Question:`/`Answer:` structure",
    COORDINATE_LEAKAGE: "coordinates in the text: normalised numbers (0.42), number lists ([..], (245, 130)), x=, v=",
    NAMES_SOURCE: "the text names its source (captions, bounding boxes, keypoints, coordinates)",
    REFUSAL: "a refusal or a non-answer (also the provider's own refusal, finish_reason `refusal`)",
    REPEATED_QUESTION: "a question asked twice in one response (same image and task)",
    SUPERSEDED: "another response for the same image and task is used: the newest one not cut short",
    EXTRA_PAIR: "a complex reasoning response's questions after its first (one question per image is kept)",
    BENCHMARK_IMAGE: "the image is in a benchmark excluded with `--exclude-bench` (never train on benchmark images)",
}

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})
_NON_WORD = re.compile(r"[^\w]+")


@dataclass(frozen=True)
class FilterRules:
    coordinates: tuple[re.Pattern[str], ...]
    source: re.Pattern[str]
    source_patterns: tuple[re.Pattern[str], ...]
    refusal: re.Pattern[str]


def _any_phrase(phrases: list[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(p.lower()) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


@lru_cache(maxsize=1)
def load_rules() -> FilterRules:
    """The filter tables shipped with the package, compiled once."""
    raw = json.loads(resources.files(__package__).joinpath("quality_filters.json").read_text("utf-8"))
    return FilterRules(
        coordinates=tuple(re.compile(p) for p in raw["coordinate_patterns"]),
        source=_any_phrase(raw["source_terms"]),
        source_patterns=tuple(re.compile(p) for p in raw.get("source_patterns", ())),
        refusal=_any_phrase(raw["refusal_phrases"]),
    )


# A refusal in the provider's refusal field (content null) is stored by the teacher with finish_reason "refusal":
# the whole response is a refusal, whatever its words, and like an answer cut short it never replaces a complete one.
_CUT_SHORT = {"length": TRUNCATED, "content_filter": CONTENT_FILTER, "refusal": REFUSAL}


def response_reason(finish_reason: str) -> str | None:
    """Why an answer the teacher did not finish is dropped (``truncated``, ``content_filter``, ``refusal``), else
    None."""
    return _CUT_SHORT.get(finish_reason)


def text_reason(text: str, *, check_refusal: bool = True) -> str | None:
    """The first reason ``text`` must not reach a student, or None."""
    rules = load_rules()
    if any(p.search(text) for p in rules.coordinates):
        return COORDINATE_LEAKAGE
    lowered = text.lower().translate(_APOSTROPHES)
    if rules.source.search(lowered) or any(p.search(text) for p in rules.source_patterns):
        return NAMES_SOURCE
    if check_refusal and rules.refusal.search(lowered):
        return REFUSAL
    return None


def pair_reason(question: str | None, answer: str) -> str | None:
    """Why a question/answer pair is dropped, or None to keep it.

    ``question=None`` skips the question (a detailed description's instruction is ours, not the teacher's).
    Refusals are looked for in the answer only.
    """
    if question is not None:
        reason = text_reason(question, check_refusal=False)
        if reason:
            return reason
    return text_reason(answer)


def normalize_question(question: str) -> str:
    """Lower case, punctuation and spacing removed: the key for the repeated-question filter."""
    return " ".join(_NON_WORD.sub(" ", question.lower().translate(_APOSTROPHES)).split())
