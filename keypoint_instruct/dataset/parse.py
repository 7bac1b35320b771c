"""Teacher response text -> question/answer pairs or a description.

The teacher is asked to write conversations and complex reasoning as ``Question:`` / ``Answer:`` blocks (the
paper's Fig. 1). Teachers decorate these labels in many ways (``**Question:**``, ``Question 2:``, ``===`` separator
lines, ``Q:``/``A:``, a ``### Question 1`` heading line), so the labels are matched loosely and the text between
them is kept verbatim apart from surrounding whitespace and markdown emphasis left over from the label.
A description loses a leading markdown heading or "Description:" label. Parsing is pure: no I/O, no filtering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A label at the start of a line: optional markdown emphasis, heading, list bullet or list number ("1." / "2)"),
# "Question"/"Answer" (or Q/A), an optional number ("2", "#2", "(2)"), a colon, and optional closing emphasis; or
# "Question"/"Answer" and its number alone on the line without a colon ("### Question 1", "**Answer**").
_NUMBER = r"(?:[ \t]*(?:#?\d+|\(\d+\)))?"
_LABEL = re.compile(
    r"^[ \t>#*_-]*(?:\d+[.)][ \t]*)?[ \t*_]*"
    rf"(?:(?P<label>question|answer|q|a){_NUMBER}[ \t]*[:\uff1a][ \t]*[*_]*[ \t]*"
    rf"|(?P<bare>question|answer){_NUMBER}[ \t]*[*_]*[ \t]*$)",
    re.IGNORECASE | re.MULTILINE,
)
_SEPARATOR = re.compile(r"^[ \t]*(?:={3,}|-{3,}|\*{3,})[ \t]*$", re.MULTILINE)
# A first line that is a markdown heading ("## The scene"), or a "Description:" label (also "**Detailed
# description**" alone on its line): the teacher's formatting, not text for the student.
_DESCRIPTION_HEADING = re.compile(r"\A[ \t]*#{1,6}[ \t][^\n]*(?:\n|\Z)")
_DESCRIPTION_LABEL = re.compile(
    r"^[ \t#*_]*(?:(?:detailed|image|scene)[ \t]+)?description"
    r"(?:[ \t]*:[ \t]*[*_]*[ \t]*|[ \t]*[*_]*[ \t]*(?:\n|\Z))",
    re.IGNORECASE,
)


class ParseError(ValueError):
    """A response whose text does not have the expected shape; ``reason`` is a quality reason code.

    Internal to the build: it becomes a filter count, never a CLI error.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class QAPair:
    question: str
    answer: str


def _unix_lines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _clean(text: str) -> str:
    text = _SEPARATOR.sub("", text)
    return text.strip().strip("*_").strip()


def parse_pairs(text: str) -> list[QAPair]:
    """Split ``Question:``/``Answer:`` text into pairs, in order.

    Raises :class:`ParseError` with reason ``empty`` for blank text and ``unparseable`` when there is no pair, a
    question has no answer, an answer has no question, or a part is blank.
    """
    if not text or not text.strip():
        raise ParseError("empty", "the response is empty")
    text = _unix_lines(text)
    labels = list(_LABEL.finditer(text))
    if not labels:
        raise ParseError("unparseable", "no 'Question:'/'Answer:' labels in the response")
    # Text before the first label is usually a preamble ("Sure! Here are ..."): it is dropped, not an error.
    parts: list[tuple[str, str]] = []
    for i, match in enumerate(labels):
        end = labels[i + 1].start() if i + 1 < len(labels) else len(text)
        label = match.group("label") or match.group("bare")
        kind = "question" if label.lower().startswith("q") else "answer"
        parts.append((kind, _clean(text[match.end() : end])))
    pairs: list[QAPair] = []
    for i in range(0, len(parts), 2):
        chunk = parts[i : i + 2]
        kinds = [kind for kind, _ in chunk]
        if kinds != ["question", "answer"]:
            raise ParseError("unparseable", f"label {i + 1} of the response breaks the Question/Answer alternation")
        question, answer = chunk[0][1], chunk[1][1]
        if not question or not answer:
            raise ParseError("unparseable", f"pair {len(pairs) + 1} of the response has an empty question or answer")
        pairs.append(QAPair(question, answer))
    return pairs


def parse_description(text: str) -> str:
    """The description text, without a leading heading line or ``Description:`` label.

    Blank text raises ``ParseError('empty')``.
    """
    description = _unix_lines(text or "").strip()
    description = _DESCRIPTION_LABEL.sub("", _DESCRIPTION_HEADING.sub("", description, count=1), count=1)
    description = _clean(description)
    if not description:
        raise ParseError("empty", "the response is empty")
    return description
