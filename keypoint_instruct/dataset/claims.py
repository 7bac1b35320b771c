"""Answer text -> sentences -> clauses -> pose claims (pure, no I/O; word lists in ``pose_claims.json``).

A clause is a stretch of a sentence between commas, semicolons, colons, dashes and linking words ("while", "with",
"but", ...): short enough that a "not", a "would" or an "if" in it governs the claims in it. Each clause gets the words
before its verb (its subject words), which :mod:`keypoint_instruct.dataset.claims_people` resolves to people.

What is left out on purpose, so that nothing uncertain is ever checked: claims under a negation ("is not standing",
"rather than leaning"), under a modal, condition or time word ("would", "about to", "if", "after"), in a clause that
reports what the inputs say ("the notes say he kneels"), in questions, gerunds used as subjects ("Kneeling would
..."), and words qualified by a hedge that changes their meaning ("nearly straight"). Hedges of certainty ("appears
to", "seems") still claim.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

WORDS_FILE = Path(__file__).with_name("pose_claims.json")
_QA = re.compile(r"^\s*Question:\s*(?P<q>.*?)\s*\n\s*Answer:\s*", re.S | re.I)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\n+")
_ABBREV = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|St|vs|etc|e\.g|i\.e|No|approx)\.$", re.I)
_CLAUSE_BREAK = re.compile(
    r"\s*[;:]\s*|\s+[—–-]{1,2}\s+|\s*,\s*|\s+(?=(?:while|whereas|but|although|though|because|unless|with|so that|as if"
    r"|as though|who|which|whose|where|when|if)\b|and (?:the|a|an|his|her|their) )",
    re.I,
)
_LEAD = re.compile(
    r"\s*(?:there (?:is|are|was|were)|(?:in )?(?:the|this) (?:image|picture|photo|photograph|scene|frame|shot)"
    r" (?:shows|captures|features|depicts|presents)|we (?:can )?see|you can see)\s+",
    re.I,
)
_FINITE = re.compile(
    r"\b(?:is|are|was|would|will|can|could|makes?|helps?|lets?|gives?|keeps?|risks?|takes?|means?)\b", re.I
)
_NEXT_VERB = re.compile(
    r"\s*(?:(?:down|up|out|back|flat|still|around|over)\s+)*(?!his\b|its\b|is\b|this\b)[a-z]+s\b", re.I
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*|\d+")


@cache
def words() -> dict:
    """The word lists and patterns of ``pose_claims.json``, patterns compiled."""
    data = json.loads(WORDS_FILE.read_text(encoding="utf-8"))
    macros = data["macros"]

    def expand(pattern: str) -> re.Pattern:
        for name, value in macros.items():
            pattern = pattern.replace("{" + name + "}", value)
        return re.compile(pattern, re.I)

    data["compiled"] = {name: [expand(p) for p in pats] for name, pats in data["claims"].items()}
    data["triggers"] = {name: frozenset(t) for name, t in data["triggers"].items()}
    for key in ("person_nouns", "relational_nouns", "body_parts", "function_words", "colours", "key_nouns"):
        data[key] = frozenset(data[key])
    data["verb"] = re.compile(r"\b(?:" + "|".join(data["verbs"]) + r")\b", re.I)
    return data


@dataclass(frozen=True)
class Claim:
    name: str  # "standing", "arms raised", ... (a key of pose_claims.json "claims")
    words: str  # the words as written
    sides: str  # "left" | "right" | "both" | "either"
    strong: bool  # "sharply", "bent over", ...: a marked degree
    start: int  # offset in the clause


@dataclass
class Clause:
    text: str
    start: int  # offset in the answer text
    subject: str  # the words before the verb ("" when the clause has none)
    claims: list[Claim] = field(default_factory=list)
    attributive: list[Claim] = field(default_factory=list)  # "a sitting girl": about a noun, not the subject


def split_answer(text: str) -> tuple[str, str, int]:
    """(question, answer, offset of the answer in ``text``); the question is "" for plain answer text."""
    match = _QA.match(text)
    if match:
        return match["q"], text[match.end() :], match.end()
    return "", text, 0


def sentences(text: str, offset: int = 0) -> list[tuple[str, int, int]]:
    """(sentence, start, end) with offsets into the text the answer came from."""
    out, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if _ABBREV.search(text[start : match.start()]):
            continue
        piece = text[start : match.start()]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append((piece.strip(), offset + start + lead, offset + start + lead + len(piece.strip())))
        start = match.end()
    piece = text[start:]
    if piece.strip():
        lead = len(piece) - len(piece.lstrip())
        out.append((piece.strip(), offset + start + lead, offset + start + lead + len(piece.strip())))
    return out


def clauses(sentence: str, offset: int = 0) -> list[Clause]:
    out, start = [], 0
    for match in _CLAUSE_BREAK.finditer(sentence):
        if match.start() > start:
            out.append(_clause(sentence[start : match.start()], offset + start))
        start = match.end()
    if start < len(sentence):
        out.append(_clause(sentence[start:], offset + start))
    return out


@cache
def phrase_pattern(phrases: tuple[str, ...], edge: str = r"\w'") -> re.Pattern:
    """Any of ``phrases`` as whole words, longest first."""
    alternatives = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<![{edge}])(?:{alternatives})(?![{edge}])", re.I)


def _has(text: str, phrases: list[str]) -> re.Match | None:
    return phrase_pattern(tuple(phrases)).search(text)


def _clause(text: str, start: int) -> Clause:
    data = words()
    found: list[Claim] = []
    present = set(tokens(text))
    for name, patterns in data["compiled"].items():
        if present & data["triggers"][name]:  # most clauses hold no claim: only their words' patterns are tried
            found += [_claim(name, match) for pattern in patterns for match in pattern.finditer(text)]
    found.sort(key=lambda c: c.start)
    lead = _LEAD.match(text)
    body = lead.end() if lead else 0  # "The image shows a man sitting": the man is the subject
    verb = data["verb"].search(text, body)
    ends = [c.start for c in found if c.start >= body and not _is_attributive(text, c)]
    end = min(ends + ([verb.start()] if verb else []) + [len(text)])
    clause = Clause(text, start, text[body:end].strip())
    if _reported(text):
        return clause
    for claim in found:
        if claim.start < body:
            continue
        if _is_attributive(text, claim) and claim.start >= end:
            clause.attributive.append(claim)
        elif not _blocked(text[body:], dataclasses.replace(claim, start=claim.start - body), data):
            clause.claims.append(claim)
    return clause


def _claim(name: str, match: re.Match) -> Claim:
    groups = match.groupdict()
    side, part = (groups.get("side") or "").lower(), (groups.get("part") or "").lower()
    if side in ("left", "right", "both"):
        sides = side
    elif side in ("one", "other"):
        sides = "either"
    else:
        sides = "both" if part.endswith("s") else "either"
    strong = bool(_has(match.group(0), words()["strong"]))
    return Claim(name, match.group(0), sides, strong, match.start())


def _is_attributive(text: str, claim: Claim) -> bool:
    """ "a sitting girl", "the standing man": an -ing word between a determiner and a person noun."""
    before = text[: claim.start].rstrip().lower()
    after = text[claim.start + len(claim.words) :].lstrip().lower()
    nouns = words()["person_nouns"]
    return bool(re.search(r"\b(?:a|an|the|another)$", before)) and bool(
        re.match(r"(?:[\w-]+ )?" + phrase_pattern(tuple(sorted(nouns))).pattern, after)
    )


def _reported(text: str) -> bool:
    """The clause says what an input says ("the pose notes say ...", "according to the captions")."""
    rep = words()["reporting"]
    if _has(text, rep["phrases"]):
        return True
    return bool(_has(text, rep["sources"]) and _has(text, rep["verbs"]))


@cache
def _hedge_pattern(hedges: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(h) for h in sorted(hedges, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})(?:\s+|-)$", re.I)


def _hedge_before(before: str, hedges: list[str]) -> bool:
    """A degree word just before the claim ("slightly crouched", "half-kneeling", "a bit bent"): not a plain claim."""
    return bool(_hedge_pattern(tuple(hedges)).search(before))


def _blocked(text: str, claim: Claim, data: dict) -> bool:
    """Negated, modal, conditional, hedged or generic: not a plain statement about the picture."""
    before = text[: claim.start]
    if _has(before, data["negators"]) or _has(before, data["modal"]) or re.search(r"n't\b", before, re.I):
        return True
    if re.search(r"\bto\s+(?:\w+ly\s+)?$", before, re.I):  # "to stand", "to stay upright": an aim, not a state
        return True
    if _has(claim.words, data["hedged"]) or _hedge_before(before, data["hedged"]):
        return True
    after = text[claim.start + len(claim.words) :]
    if re.match(r"\s*(?:or|and/or)\b", after, re.I) and claim.name in ("standing", "sitting", "crouching", "kneeling"):
        return True  # "standing or sitting": a choice, not a claim
    opening = not before.strip() or re.fullmatch(r"\s*(?:and|but|while|whereas|so|yet|or)\s+", before, re.I)
    if opening and claim.words.split()[0].lower().endswith("ing"):  # a gerund opening the clause ...
        if _FINITE.search(after) or _NEXT_VERB.match(after):
            return True  # ... as its subject: "Kneeling would commit her", "Lying down points to rest"
    return False


def tokens(text: str) -> list[str]:
    """Lower-case words, a possessive 's dropped ("the player's hands" -> player, hands)."""
    return [t[:-2] if t.endswith("'s") else t for t in _WORD.findall(text.lower())]
