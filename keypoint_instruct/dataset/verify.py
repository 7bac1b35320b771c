"""Pose claims of a teacher answer checked against the keypoints: the sentences whose claims the geometry disproves.

``find_contradictions(text, scene)`` splits one answer unit (a conversation answer, a description, a reasoning
answer; of a "Question: ...\\nAnswer: ..." pair only the answer is checked, the question only says whom "he" means)
into sentences and clauses, finds the pose claims in them (:mod:`keypoint_instruct.dataset.claims`), works out whom
each clause is about (:mod:`keypoint_instruct.dataset.claims_people`) and checks the claims against that person's pose
facts, the same facts the pose notes print (:mod:`keypoint_instruct.dataset.claims_check`).

A sentence is a contradiction when
* it is about one person, resolved, and one of its claims about them is contradicted; or
* it is about one person nobody can tell, and every person in the picture is contradicted by its claims (no one
  fits); or
* it is about a group ("both", "all three", "the two acrobats") and fewer people fit than the group holds.
Claims the geometry cannot decide count as fitting, so an undecidable claim never makes a contradiction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keypoint_instruct.coco.posefacts import scene_facts
from keypoint_instruct.dataset.claims import Claim, clauses, sentences, split_answer, tokens, words
from keypoint_instruct.dataset.claims_check import check
from keypoint_instruct.dataset.claims_people import People, Who, last_mention

if TYPE_CHECKING:
    from keypoint_instruct.coco.annotations import Scene
    from keypoint_instruct.coco.posefacts import PersonFacts


@dataclass(frozen=True)
class Contradiction:
    sentence: str  # the sentence of `text` holding the claim
    start: int  # character offsets of that sentence in `text`
    end: int
    claim: str  # the claim as read, in words ("standing upright", "both arms raised")
    person: int | None  # the person (numbered as in the pose notes) it was checked against; None: no person fits
    fact: str  # the geometric fact that contradicts it, in words a reader can check on the picture


def find_contradictions(text: str, scene: Scene) -> list[Contradiction]:
    """The sentences of ``text`` whose pose claims the keypoints of ``scene`` contradict (at most one per sentence)."""
    facts, people = _scene(scene)
    if not facts:
        return []
    question, answer, offset = split_answer(text)
    reader = _Reader(people, _question_subject(question, people))
    out = []
    for sentence, start, end in sentences(answer, offset):
        if sentence.rstrip().endswith("?"):
            continue
        for who, claims in reader.read(sentence):
            found = _judge(who, claims, facts, people)
            if found:
                claim, person, fact = found
                out.append(Contradiction(text[start:end], start, end, claim, person, fact))
                break
    return out


class _Reader:
    """Reads sentences in order, keeping track of whom "he", "she" and "they" mean."""

    def __init__(self, people: People, previous: Who | None):
        self.people, self.previous = people, previous

    def read(self, sentence: str) -> list[tuple[Who, list[Claim]]]:
        """(who, their claims) in the order the sentence makes them."""
        about: list[tuple[Who, list[Claim]]] = []
        lead, mentioned, opening, named = "", "", [], ""
        for index, clause in enumerate(clauses(sentence)):
            if index == 0 and not clause.subject and re.match(r"[A-Za-z]+ing\b", clause.text):
                opening = clause.claims  # "Facing away from the viewer, their attention is ...": the next subject's
                continue
            if not clause.claims and _only_place(clause.text):
                if named and self.previous == Who("person"):  # "Her friend, on the right of the picture, stands"
                    placed = self.people.who(f"{named} {clause.text}", None)
                    self.previous = placed if placed and placed.kind == "person" else self.previous
                else:
                    lead = f"{lead} {clause.text}"  # "On the left of the picture," / "Beneath her,": the next noun's
                continue
            who, own = self._who(clause, lead, mentioned)
            mentioned, lead = clause.text, ""
            named = clause.subject if own and not clause.claims else ""  # a noun phrase a place may follow
            claims, opening = (opening + clause.claims if who.kind != "none" else clause.claims), []
            if _names_a_part(clause.subject):  # "his right hand sits in front of him": not how the body rests
                claims = [c for c in claims if c.name not in _WHOLE_BODY]
            if re.match(r"(?:an?|any)\b", clause.subject.strip(), re.I) and _names_a_part(clause.text):
                claims = []  # "An arm stretched out level goes with pointing": arms in general
            if who.kind in ("person", "group") and claims:
                if about and about[-1][0] == who:
                    about[-1][1].extend(claims)
                else:
                    about.append((who, list(claims)))
        return about

    def _who(self, clause, lead: str, mentioned: str) -> tuple[Who, bool]:
        """Whom the clause is about, and whether its own words say so."""
        mention = last_mention(mentioned) if re.match(r"who\b", clause.text, re.I) else None
        if mention:  # "... presses against the player in white, who has lifted his knee"
            who = self.people.who(mention, self.previous)
        else:
            who = self.people.who(clause.subject, self.previous, lead)
        own = who is not None
        if who is None:  # no subject of its own: the one before goes on
            who = self.previous or Who("person", 1 if self.people.alone else None)
        if who.kind != "none":  # "The ball is in the air. He ..." still means the person before
            self.previous = who
        return who, own


_RECENT: list[tuple[Scene, list[PersonFacts], People | None]] = []  # the last few scenes (a build goes image by image)


def _scene(scene: Scene) -> tuple[list[PersonFacts], People | None]:
    for seen, facts, people in _RECENT:
        if seen is scene:
            return facts, people
    facts = scene_facts(scene)
    people = People(scene, facts) if facts else None
    _RECENT.insert(0, (scene, facts, people))
    del _RECENT[8:]
    return facts, people


def _question_subject(question: str, people: People) -> Who | None:
    """The person a question asks about ("What is the woman in the white cap doing?"), to read "she" by."""
    for clause in clauses(question.replace("?", "")):
        who = people.who(clause.text, None)
        if who is not None and who.kind != "none":
            return who
    return None


_WHOLE_BODY = ("standing", "sitting", "crouching", "kneeling", "lying", "upside down", "jumping", "on the feet")


def _names_a_part(subject: str) -> bool:
    """The subject is a body part ("her lower legs", "his right hand"), not the person."""
    toks = tokens(subject)
    return any(t in words()["body_parts"] for t in toks) and not any(t in words()["person_nouns"] for t in toks)


def _only_place(text: str) -> bool:
    """A clause that only says where ("On the right side of the picture", "Beneath her")."""
    toks = tokens(text)
    if len(toks) > 8 or any(t in words()["person_nouns"] for t in toks):
        return False
    low = f" {' '.join(toks)} "
    return any(f" {p} " in low for phrases in words()["locators"].values() for p in phrases)


def _judge(who: Who, claims: list[Claim], facts: list[PersonFacts], people: People):
    """(claim words, person, fact) of the first contradiction, or None."""

    def against(f: PersonFacts):
        for claim in claims:
            fact = check(claim, f)
            if fact:
                return claim.words, fact
        return None

    if who.kind == "person" and who.number:
        hit = against(facts[who.number - 1])
        return (hit[0], who.number, hit[1]) if hit else None
    if people.crowd:
        return None  # people without keypoints in the picture: any of them might fit
    results = [(f.number, against(f)) for f in facts]
    misses = [(n, hit) for n, hit in results if hit]
    if who.kind == "person":
        if len(misses) == len(facts):
            fact = "; ".join(f"Person {n}: {hit[1]}" for n, hit in misses)
            return misses[0][1][0], None, fact
        return None
    size = len(facts) if who.size <= 0 else who.size
    if size > len(facts) or len(facts) - len(misses) >= size:
        return None  # the group may hold people without keypoints, or enough people fit
    n, hit = misses[0]
    return hit[0], n, f"Person {n}: {hit[1]}"
