"""Sentences of an answer with their character offsets (pure; used by the text filters)."""

from __future__ import annotations

import re

# A sentence ends at . ! or ? (with closing quotes or brackets) followed by white space, or at a line break; a
# decimal point ("0.4 seconds") or an initial is not followed by white space and so never ends one.
_END = re.compile(r"(?<=[.!?])[\"')\]\u201d\u2019]*\s+|\n+")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each non-blank sentence of ``text``, in order, without surrounding white space."""
    spans, start = [], 0
    for match in _END.finditer(text):
        spans.append((start, match.start() + len(match.group(0).rstrip())))
        start = match.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            out.append((a, b))
    return out


def sentence_at(text: str, offset: int) -> tuple[int, int]:
    """The span of the sentence of ``text`` that holds ``offset`` (the whole text when none does)."""
    for start, end in sentence_spans(text):
        if start <= offset < end:
            return start, end
    return 0, len(text)
