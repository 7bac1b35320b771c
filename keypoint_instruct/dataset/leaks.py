"""Leaks that need more than a word list: joint angles in degrees and "Person N" labels.

Both read the scene when they have one. An angle is what the pose notes give for elbows, knees and the torso
("left knee bent about 110 degrees"); a number of degrees in an answer is a leak unless it is plainly something
else: a temperature, a turn ("a 360-degree spin"), or the angle of an object in a sentence about no body part
("the bat at a 45-degree angle"). Those exceptions never hold for a number the scene's own notes print. "Person N"
is how the notes name people; the captions never do, so a "Person N" that no caption of the scene contains is a
leak. Pure functions; the patterns are in ``quality_filters.json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from keypoint_instruct.dataset.sentences import sentence_at

if TYPE_CHECKING:
    from keypoint_instruct.coco.annotations import Scene


@dataclass(frozen=True)
class LeakRules:
    degree: re.Pattern[str]
    temperature: re.Pattern[str]
    rotation_numbers: frozenset[int]
    rotation_words: re.Pattern[str]
    object_angle: re.Pattern[str]
    body_words: re.Pattern[str]
    person_label: re.Pattern[str]
    person_label_not_after: frozenset[str]
    quantity_after: re.Pattern[str]


def leak_rules(raw: dict) -> LeakRules:
    """The angle and person-label tables of ``quality_filters.json``, compiled."""
    flags = re.IGNORECASE
    return LeakRules(
        degree=re.compile(raw["degree_pattern"], flags),
        temperature=re.compile(raw["degree_temperature"], flags),
        rotation_numbers=frozenset(raw["degree_rotation_numbers"]),
        rotation_words=re.compile(raw["degree_rotation_words"], flags),
        object_angle=re.compile(raw["degree_object_angle"], flags),
        body_words=re.compile(raw["degree_body_words"], flags),
        person_label=re.compile(raw["person_label_pattern"], flags),
        person_label_not_after=frozenset(raw["person_label_not_after"]),
        quantity_after=re.compile(raw["person_label_quantity_after"], flags),
    )


@lru_cache(maxsize=64)
def note_numbers(scene: Scene) -> frozenset[int]:
    """The numbers of degrees the pose notes of ``scene`` print (joint angles under 160, torso leans)."""
    from keypoint_instruct.coco.posefacts import scene_facts

    numbers = set()
    for facts in scene_facts(scene):
        numbers.update(a.degrees for a in facts.angles if 30 <= a.degrees < 160)
        if facts.lean_degrees is not None and facts.lean_degrees >= 10:
            numbers.add(facts.lean_degrees)
    return frozenset(numbers)


def angle_leak(text: str, rules: LeakRules, scene: Scene | None = None) -> tuple[int, int] | None:
    """The span of the first number of degrees in ``text`` that is a body angle, or None."""
    for match in rules.degree.finditer(text):
        numbers = {int(n) for n in match.groups() if n}
        start, end = sentence_at(text, match.start())
        sentence = text[start:end]
        if rules.temperature.search(sentence):
            continue
        if scene is not None and numbers & note_numbers(scene):
            return match.span()
        if numbers <= rules.rotation_numbers and rules.rotation_words.search(sentence):
            continue
        if rules.object_angle.search(sentence) and not rules.body_words.search(sentence):
            continue
        return match.span()
    return None


def _caption_labels(scene: Scene | None) -> str:
    return " ".join(" ".join(c.lower().split()) for c in scene.captions) if scene is not None else ""


def person_label_leak(text: str, rules: LeakRules, scene: Scene | None = None) -> tuple[int, int] | None:
    """The span of the first "Person N" in ``text`` that no caption of ``scene`` contains, or None.

    "a person 2 metres away" is no label: a determiner before "person" or a unit after the number rules it out.
    """
    captions = None
    for match in rules.person_label.finditer(text):
        before = text[: match.start()].split()
        if before and before[-1].lower().strip("(\"'") in rules.person_label_not_after:
            continue
        if rules.quantity_after.match(text, match.end()):
            continue
        captions = _caption_labels(scene) if captions is None else captions
        if " ".join(match.group(0).lower().split()) in captions:
            continue
        return match.span()
    return None
