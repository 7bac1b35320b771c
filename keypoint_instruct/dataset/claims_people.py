"""Which person a clause speaks of: subject words -> a person number of the pose notes, a group, or nobody to check.

Cues, strongest first: "Person N"; position words ("on the left", "the lower performer", "the taller one"), read
from the boxes only when one person clearly stands out; a role or a thing held ("the batter", "the man holding the
racket": a hand at that object in the pose facts); "the other" / "her partner" when there are two people; words the
captions tie to one person. The captions are read with the same claim finder: "A boy lying on the grass next to a
sitting girl" ties "boy" to the only person the geometry lets lie, and a caption whose claim no annotated person fits
("A player in white raises his knee" in a picture where only the player in red has keypoints) names someone without
keypoints, whose sentences are then never checked. One person in the picture resolves everything else to them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from keypoint_instruct.dataset.claims import clauses, phrase_pattern, sentences, tokens, words

if TYPE_CHECKING:
    from keypoint_instruct.coco.annotations import Scene
    from keypoint_instruct.coco.posefacts import PersonFacts


@dataclass(frozen=True)
class Who:
    kind: str  # "person" | "group" | "none" (no one, or people in general: nothing to check) | "other" (no keypoints)
    number: int | None = None  # kind "person": the person; None: not resolved
    size: int = 1  # kind "group": how many of the people it names (0: all of them)


_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth")
_NTH = re.compile(r"\b(" + "|".join(_ORDINALS) + r")\s+(?:[a-z]+\s+)?from the (left|right)\b")
_PRONOUNS = ("he", "she", "him", "his", "her", "hers", "they", "them", "their", "theirs")
NOBODY = Who("none")
SOMEONE = Who("person")


def _phrase(text: str, phrases: list[str]) -> bool:
    return bool(phrase_pattern(tuple(phrases), r"\w-").search(text))


class People:
    """Resolves subject words against one scene's people (persons in annotation order, as the notes number them)."""

    def __init__(self, scene: Scene, facts: list[PersonFacts], read_captions: bool = True):
        from keypoint_instruct.coco.geometry import person_instances  # coco is upstream of dataset

        self.scene, self.facts = scene, facts
        self.boxes = [p.bbox for p in person_instances(scene)]
        self.count = len(facts)
        self.crowd = any(i.category == "person" and i.iscrowd for i in scene.instances)
        self.data = words()
        self.keys: dict[str, frozenset[int]] = {}  # caption word -> the people it can name (empty: nobody annotated)
        self.alone = read_captions and self.count == 1 and not self.crowd  # one person: every "he" is them
        if read_captions and self.count:
            self._read_captions()

    # --- the subject of a clause --------------------------------------------------------------------------------

    def who(self, subject: str, previous: Who | None, lead: str = "") -> Who | None:
        """Who ``subject`` (the words before a clause's verb) names; None when it names nobody new (the clause goes
        on about ``previous``)."""
        data = self.data
        toks = [t for t in tokens(subject) if not (t.endswith("ly") and t not in data["person_nouns"])]
        if not toks or all(t in data["function_words"] for t in toks):
            return None
        content = [t for t in toks if t not in data["function_words"]]
        if content[0].endswith(("ed", "ing")) and not any(t in data["person_nouns"] for t in content):
            return None  # "fully extended", "reaching around him": a phrase about the same person
        text = f"{lead} {subject}".strip()
        if _phrase(subject, data["negative_subjects"]):
            return NOBODY
        if re.match(r"\s*(?:one|either|any|some|a few|several|most|many)\s+of\b", subject, re.I):
            return SOMEONE  # "one of the two players": true when anyone fits it
        if match := re.search(r"\bperson (\d+)\b", subject, re.I):
            number = int(match[1])
            return Who("person", number if 1 <= number <= self.count else None)
        first = next(t for t in toks if t not in data["function_words"] or t in ("both", "all", "each"))
        if first in ("it", "its", "we", "you", "i", "us", "our", "your", "this", "these", "those", "that"):
            return NOBODY
        nouns = [
            t
            for i, t in enumerate(toks)
            if t in data["person_nouns"]
            and not (t in ("one", "ones") and i + 1 < len(toks) and toks[i + 1] in data["body_parts"])
        ]
        group = self._group(toks)
        if group and first not in _PRONOUNS:
            return group
        pronoun = next((t for t in toks if t in _PRONOUNS), None)
        if first in _PRONOUNS or (pronoun and not nouns and (first in ("both", "all", "each") or len(toks) <= 3)):
            return self._pronoun(first if first in _PRONOUNS else pronoun, toks, previous)
        if not nouns:
            if any(t in data["body_parts"] for t in toks):
                return None  # "the arms", "the left knee": the same person goes on
            return NOBODY  # "the laptop", "the ball", "the stands"
        noun = nouns[-1]
        if noun.endswith("s") and noun not in ("someone", "anyone", "everyone", "boss") and not noun.endswith("ss"):
            if re.match(r"(?:the|these|those|both|all|two|three|four|five)\b", subject.strip(), re.I):
                return Who("group", size=min(2, self.count))
            return NOBODY  # "Players often ...", "People walking through ...": people in general
        if noun in ("someone", "anyone", "anybody", "somebody", "everyone", "everybody"):
            return Who("group", size=0) if noun.startswith("every") else SOMEONE
        return self.resolve(text, previous)

    def _pronoun(self, first: str, toks: list[str], previous: Who | None) -> Who | None:
        after = toks[toks.index(first) + 1 :] if first in toks else []
        relational = [t for t in after[:3] if t in self.data["relational_nouns"]]
        if first in ("his", "her", "their") and relational:
            return self._other(previous) if first != "their" else SOMEONE
        if first in ("his", "her", "their") and after and not any(t in self.data["body_parts"] for t in after[:3]):
            if not any(t in self.data["person_nouns"] for t in after[:3]):
                return NOBODY  # "her book", "his costume"
        if previous and previous.kind in ("person", "other", "group"):
            return previous  # "they" after one person is that person ("The person on the left stands. They ...")
        if first in ("they", "them", "their") and not self.alone:
            return Who("group", size=0)
        return Who("person", 1) if self.alone else SOMEONE

    def _group(self, toks: list[str]) -> Who | None:
        sizes = self.data["group_words"]
        for i, t in enumerate(toks):
            if t not in sizes:
                continue
            rest = toks[i + 1 : i + 4]
            if rest and rest[0] in self.data["body_parts"]:
                continue  # "both arms", "all fours"
            if t in ("both", "all", "each") and rest[:1] == ["of"] and rest[1:2] in (["his"], ["her"]):
                continue  # "both of her arms"
            if not rest or rest[0] in ("of", "the") or any(r in self.data["person_nouns"] for r in rest):
                return Who("group", size=sizes[t])
        return None

    def _other(self, previous: Who | None) -> Who:
        if self.count == 2 and previous and previous.kind == "person" and previous.number:
            return Who("person", 3 - previous.number)
        return SOMEONE

    # --- cues that single out one person -------------------------------------------------------------------------

    def resolve(self, text: str, previous: Who | None) -> Who:
        """One person named by ``text`` (a noun phrase, with any place words said before it)."""
        low = text.lower()
        if re.search(r"\b(?:the other|another)\b", low) and not _phrase(low, self.data["locators"]["left"]):
            other = self._other(previous)
            if other.number:
                return other
        candidates = set(range(1, self.count + 1))
        explicit = False
        for kind, phrases in self.data["locators"].items():
            if _phrase(low, phrases) and not (kind in ("left", "right") and _NTH.search(low)):
                candidates &= self._place(kind)
                explicit = True
        if match := _NTH.search(low):  # "the second person from the left"
            candidates &= self._nth(_ORDINALS.index(match[1]), match[2])
            explicit = True
        held = self._held(low)
        if held is not None:
            candidates &= held
            explicit = True
        if explicit and len(candidates) == 1:
            return Who("person", candidates.pop())
        keys = self._keys(low)
        if any(k in self.keys and not self.keys[k] for k in keys):
            return Who("other")  # the captions' person of that description has no keypoints
        for key in keys:
            if self.keys.get(key) and candidates & self.keys[key]:
                candidates &= self.keys[key]
                explicit = True
        if len(candidates) == 1 and (explicit or self.alone):
            return Who("person", candidates.pop())
        return SOMEONE

    def _place(self, kind: str) -> set[int]:
        """The one person a position word singles out, or all of them (the word decides nothing)."""
        everyone = set(range(1, self.count + 1))
        if self.count < 2:
            return everyone
        boxes = self.boxes
        centre_x = [b[0] + b[2] / 2 for b in boxes]
        centre_y = [b[1] + b[3] / 2 for b in boxes]
        if kind in ("left", "right", "middle"):
            order = sorted(range(self.count), key=lambda i: centre_x[i])
            if kind == "middle":
                if self.count != 3:
                    return everyone
                pick, neighbours = order[1], (order[0], order[2])
            else:
                pick = order[0] if kind == "left" else order[-1]
                neighbours = (order[1] if kind == "left" else order[-2],)
            for other in neighbours:
                gap = abs(centre_x[pick] - centre_x[other])
                if gap < 0.5 * (boxes[pick][2] + boxes[other][2]) / 2:
                    return everyone
            return {pick + 1}
        if kind in ("top", "bottom", "tall", "small"):
            value = centre_y if kind in ("top", "bottom") else [b[3] for b in boxes]
            order = sorted(range(self.count), key=lambda i: value[i])
            pick, other = (order[0], order[1]) if kind in ("top", "small") else (order[-1], order[-2])
            if kind in ("top", "bottom"):
                clear = abs(value[pick] - value[other]) >= 0.25 * max(boxes[pick][3], boxes[other][3])
            else:
                clear = max(value[pick], value[other]) >= 1.15 * min(value[pick], value[other])
            return {pick + 1} if clear else everyone
        relation = "in front of" if kind == "front" else "behind"
        found = {f.number for f in self.facts if any(r.relation == relation for r in f.relations)}
        found |= {r.other for f in self.facts for r in f.relations if r.relation == _opposite(relation)}
        return found or everyone

    def _nth(self, index: int, side: str) -> set[int]:
        """The person at place ``index`` (0: first) counted from the picture's ``side``, when clearly apart."""
        everyone = set(range(1, self.count + 1))
        centre = [b[0] + b[2] / 2 for b in self.boxes]
        order = sorted(range(self.count), key=lambda i: centre[i], reverse=side == "right")
        if index >= self.count:
            return everyone
        pick = order[index]
        for other in order[max(0, index - 1) : index + 2]:
            width = (self.boxes[pick][2] + self.boxes[other][2]) / 2
            if other != pick and abs(centre[pick] - centre[other]) < 0.5 * width:
                return everyone
        return {pick + 1}

    def _held(self, text: str) -> set[int] | None:
        """People with a hand at the object that a role or a "holding the ..." names; None: no such cue."""
        categories: set[str] = set()
        roles, objects = self.data["roles"], self.data["object_words"]
        for match in phrase_pattern(tuple(roles) + tuple(f"{r}s" for r in roles)).finditer(text):
            categories |= set(roles[match.group(0).lower().removesuffix("s")] if match.group(0).lower() not in roles
                              else roles[match.group(0).lower()])  # fmt: skip
        if re.search(r"\b(?:holding|with|carrying|grips?|gripping|on)\b", text):
            categories |= {objects[m.group(0).lower()] for m in phrase_pattern(tuple(objects)).finditer(text)}
        if not categories:
            return None
        holders = {f.number for f in self.facts if any(h.category in categories for h in f.hands)}
        return holders or None

    def _keys(self, text: str) -> set[str]:
        """Words that describe one person in the captions' terms: colours, else the person noun."""
        toks = tokens(text)
        colours = {t for t in toks if t in self.data["colours"]}
        return colours or {t for t in toks if t in self.data["key_nouns"]}

    # --- what the captions say about who is who ------------------------------------------------------------------

    def _read_captions(self) -> None:
        from keypoint_instruct.dataset.claims_check import fits  # the checks read this module's Who

        plain = People(self.scene, self.facts, read_captions=False)
        shared: set[str] = set()
        for caption in self.scene.captions:
            previous = None
            for sentence, _, _ in sentences(caption):
                for clause in clauses(sentence):
                    who = plain.who(clause.subject, previous) or previous
                    keys = self._keys(clause.subject)
                    if re.search(r"\b(?:another|other)\b", clause.subject, re.I) or (who and who.kind == "group"):
                        shared |= keys
                    if who is not None:
                        previous = who
                    if not (who and who.kind == "person" and who.number is None and clause.claims and keys):
                        continue
                    fitting = frozenset(f.number for f in self.facts if all(fits(c, f) for c in clause.claims))
                    for key in keys:  # a description names whoever any caption's claims let it name
                        self.keys[key] = self.keys.get(key, frozenset()) | fitting
        for key in shared:
            self.keys.pop(key, None)


def last_mention(text: str) -> str | None:
    """The last noun phrase naming a person in ``text`` ("... presses against the player in white"), for a "who"
    that follows it."""
    pattern = _mention_pattern()
    found = list(pattern.finditer(text))
    return found[-1].group(0) if found else None


@cache
def _mention_pattern() -> re.Pattern:
    nouns = "|".join(re.escape(n) for n in sorted(words()["person_nouns"], key=lambda n: (-len(n), n)))
    return re.compile(
        rf"\b(?:(?:the|a|an|another|his|her|their)\s+)?(?:[\w-]+\s+){{0,2}}?(?:{nouns})\b"
        rf"(?:\s+(?:in|with|holding|wearing)\s+(?:(?:the|a|an|his|her)\s+)?(?:[\w-]+\s+){{0,2}}?[\w-]+)?",
        re.I,
    )


def _opposite(relation: str) -> str:
    return "behind" if relation == "in front of" else "in front of"
