"""Refusals: answers that decline instead of answering.

Three strengths of evidence, from ``quality_filters.json``:

* ``refusal_always``: the teacher says it is an AI or cannot see the image. A student must never learn to say
  that, so the answer is a refusal whatever follows.
* ``apology_patterns`` ("I'm sorry", "Unfortunately"): a refusal unless another sentence carries an answer.
* ``refusal_phrases`` / ``refusal_patterns`` ("cannot be determined", "I can't tell"): a hedge when an answer
  follows, in the same sentence after "but" ("It cannot be determined exactly ..., but he seems ...") or in a later
  sentence; a refusal when nothing does.

Pure functions; :func:`refusal_span` gives the declining sentence's offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keypoint_instruct.dataset.sentences import sentence_spans

ANSWER_WORDS = 8  # words of non-declining sentences that make an answer
CLAUSE_WORDS = 4  # words after "but" that make a hedged answer within one sentence
_BUT = re.compile(r"(?:,|;|\u2014|-)?\s+\b(?:but|yet|though|however|still)\b,?\s+", re.IGNORECASE)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})


@dataclass(frozen=True)
class RefusalRules:
    always: tuple[re.Pattern[str], ...]
    apology: tuple[re.Pattern[str], ...]
    weak: tuple[re.Pattern[str], ...]


def refusal_rules(raw: dict) -> RefusalRules:
    """The refusal tables of ``quality_filters.json``, compiled."""
    phrases = sorted(raw["refusal_phrases"], key=len, reverse=True)
    alternatives = "|".join(re.escape(p) for p in phrases)
    weak = (re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE),)
    return RefusalRules(
        always=tuple(re.compile(p, re.IGNORECASE) for p in raw["refusal_always"]),
        apology=tuple(re.compile(p, re.IGNORECASE | re.MULTILINE) for p in raw["apology_patterns"]),
        weak=weak + tuple(re.compile(p, re.IGNORECASE) for p in raw["refusal_patterns"]),
    )


def _first(patterns: tuple[re.Pattern[str], ...], text: str) -> re.Match[str] | None:
    found = [m for m in (p.search(text) for p in patterns) if m]
    return min(found, key=lambda m: m.start()) if found else None


def _words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def _hedged(sentence: str, match: re.Match[str], rules: RefusalRules) -> bool:
    """True when ``sentence`` goes on after its declining phrase with an answer ("..., but he seems to ...")."""
    for but in _BUT.finditer(sentence, match.end()):
        rest = sentence[but.end() :]
        if _words(rest) >= CLAUSE_WORDS and not _first(rules.always + rules.weak + rules.apology, rest):
            return True
    return False


def refusal_span(text: str, rules: RefusalRules) -> tuple[int, int] | None:
    """The span of the declining sentence when ``text`` is a refusal, else None."""
    text = text.translate(_APOSTROPHES)  # same length: offsets hold for the original text
    always = _first(rules.always, text)
    if always:
        return always.span()
    declining, answered = None, 0
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        apology = _first(rules.apology, sentence)
        weak = _first(rules.weak, sentence)
        if weak and not apology and _hedged(sentence, weak, rules):
            return None
        if apology or weak:
            declining = declining or (start, end)
        else:
            answered += _words(sentence)
    if declining and answered < ANSWER_WORDS:
        return declining
    return None
