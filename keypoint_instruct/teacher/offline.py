"""A deterministic teacher that needs no API key: responses written from a scene's captions and pose facts.

:class:`OfflineTeacher` answers like a chat model (``keypoint_instruct.llm.request.ChatModel``) under the model name
``offline-posefacts``. It reads ``request.payload`` (the scene) and ``request.task`` and writes text in the shapes
the LLM teacher is asked for: ``Question:``/``Answer:`` pairs separated by ``===`` for conversation (several pairs) and
complex reasoning (one pair), plain text for a detailed description.

Every pose statement comes from :mod:`keypoint_instruct.coco.posefacts`, so it never says more than the labelled joints
show; the scene summary comes from the human-written descriptions of the image. The output never contains numbers
with decimals and never names its sources. Wording is varied by a random generator seeded with the image id and
task, so the same scene always gets the same text while different images read differently. Phrase tables live in
``keypoint_instruct/data/offline_teacher.json``.
"""

from __future__ import annotations

import json
import logging
import random
import re
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from keypoint_instruct.coco.posefacts import PersonFacts, person_instances, scene_facts
from keypoint_instruct.errors import TeacherError
from keypoint_instruct.vocab import OFFLINE_TEACHER_MODEL, TASKS

if TYPE_CHECKING:
    from keypoint_instruct.coco.annotations import Scene
    from keypoint_instruct.llm.request import ChatRequest, Completion

log = logging.getLogger(__name__)

_NUMBERS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen \
seventeen eighteen nineteen twenty".split()
_ORDINALS = "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth \
fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth".split()
_LOWER_OK = {"a", "an", "the", "two", "three", "four", "five", "several", "some", "many", "one", "this", "there"}
_UNSAFE_CAPTION = re.compile(r"\d[.,]\d|\[|caption|box|key ?point|coordinate|annotation", re.IGNORECASE)


@lru_cache(maxsize=1)
def phrases() -> dict:
    """The phrase tables shipped with the package."""
    path = resources.files(__package__).joinpath("offline.json")
    return json.loads(path.read_text("utf-8"))


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _number(n: int) -> str:
    return _NUMBERS[n] if n < len(_NUMBERS) else str(n)


def counted(category: str, n: int) -> str:
    """A COCO category counted in words: "a dog", "an umbrella", "a pair of skis", "two wine glasses"."""
    forms = phrases()["nouns"].get(category)
    if forms:
        one, many = forms
    else:
        one = f"{'an' if category[:1] in ('a', 'e', 'i', 'o', 'u') else 'a'} {category}"
        many = category + ("es" if category.endswith(("s", "sh", "ch", "x", "z")) else "s")
    return one if n == 1 else f"{_number(n)} {many}"


def _captions(scene: Scene) -> list[str]:
    out = []
    for caption in scene.captions:
        text = " ".join(caption.split()).rstrip(" .")
        if text and not _UNSAFE_CAPTION.search(text):
            out.append(_cap(text) + ".")
    return out


def person_names(scene: Scene) -> dict[int, str]:
    """Person number -> how the text refers to them, by left-to-right order ("the person on the left")."""
    persons = person_instances(scene)
    order = sorted(range(1, len(persons) + 1), key=lambda n: persons[n - 1].bbox[0] + persons[n - 1].bbox[2] / 2)
    if len(order) == 1:
        labels = ["the person"]
    elif len(order) == 2:
        labels = ["the person on the left", "the person on the right"]
    elif len(order) == 3:
        labels = ["the person on the left", "the person in the middle", "the person on the right"]
    else:
        labels = [f"the {_ORDINALS[i]} person from the left" if i < len(_ORDINALS) else "another person"
                  for i in range(len(order))]  # fmt: skip
    return {number: labels[i] for i, number in enumerate(order)}


ENOUGH_JOINTS = 5  # labelled joints that make a person worth describing (a head and shoulders: 5-7)
FOCUS = 3  # people described in detail


def prominent(scene: Scene, facts: list[PersonFacts]) -> list[PersonFacts]:
    """The people described in detail: the largest boxes among those with at least :data:`ENOUGH_JOINTS` labelled
    joints (any labelled joint when nobody has that many), largest first, at most :data:`FOCUS`.

    The most prominent people, as a viewer sees them; a small figure in the background with every joint labelled
    never displaces the large one in front.
    """
    area = {inst.id: inst.bbox[2] * inst.bbox[3] for inst in person_instances(scene)}
    posed = [f for f in facts if f.labelled]
    enough = [f for f in posed if f.labelled >= ENOUGH_JOINTS] or posed
    return sorted(enough, key=lambda f: (-area[f.instance_id], f.number))[:FOCUS]


def _angle_kind(degrees: int) -> str:
    return "straight" if degrees >= 160 else "slight" if degrees >= 120 else "bent" if degrees >= 70 else "sharp"


def _bend(degrees: int) -> str:
    """A clearly bent joint (70-120 degrees) in words, relative to a right angle."""
    if degrees < 80:
        return "a little tighter than a right angle"
    return "at about a right angle" if degrees <= 100 else "a little wider than a right angle"


def _amount(degrees: int) -> str:
    return "slightly" if degrees < 20 else "clearly" if degrees < 40 else "strongly"


class _Writer:
    """Sentences about one scene; every random choice comes from one generator seeded by image id and task."""

    def __init__(self, scene: Scene, task: str) -> None:
        self.scene = scene
        self.rng = random.Random(f"{scene.image_id}:{task}")
        self.table = phrases()
        self.facts = scene_facts(scene)
        self.names = person_names(scene)
        self.captions = _captions(scene)
        self.focus = prominent(scene, self.facts)

    def pick(self, options: list[str], **values: object) -> str:
        return self.rng.choice(options).format(**values)

    def crowd(self) -> bool:
        return any(i.iscrowd and i.category == "person" for i in self.scene.instances)

    def opener(self) -> str:
        if not self.captions:
            n = len(self.facts)
            who = "people" if n > 1 else "a person" if n else "a crowd of people" if self.crowd() else ""
            shown = " together with ".join(part for part in (who, self.objects()) if part)
            return f"The picture shows {shown}." if shown else "The picture shows an everyday scene."
        caption = self.rng.choice(self.captions)
        first, _, rest = caption.partition(" ")
        lowered = (first.lower() + " " + rest) if first.lower() in _LOWER_OK else caption
        return self.pick(self.table["openers"], caption=caption, caption_lower=lowered)

    def count(self) -> str:
        n = len(self.facts)
        if self.crowd():
            key = "crowd" if n else "crowd_only"
        else:
            key = "none" if not n else "one" if n == 1 else "many"
        people = "person" if n == 1 else "people"
        return self.pick(self.table["count"][key], n=_number(n), N=_cap(_number(n)), people=people)

    def name(self, facts: PersonFacts) -> str:
        return self.names[facts.number]

    def posture(self, f: PersonFacts) -> list[str]:
        out = [self.pick(self.table["posture"][f.posture or "none"], Name=_cap(self.name(f)))]
        if f.lean_degrees is not None:
            if f.lean_degrees < 10:
                out.append(self.pick(self.table["torso"]["upright"]))
            elif f.lean_direction:
                direction = "to the side" if f.lean_direction == "sideways" else f.lean_direction
                lean = f"{_amount(f.lean_degrees)} {direction}"
                out.append(self.pick(self.table["torso"]["lean"], lean=lean))
            else:
                out.append(self.pick(self.table["torso"]["tilt"], amount=_amount(f.lean_degrees)))
        return out

    def facing(self, f: PersonFacts) -> list[str]:
        return [self.pick(self.table["facing"][f.facing])] if f.facing else []

    def arms(self, f: PersonFacts) -> list[str]:
        raised = dict(f.raised)
        if len(raised) == 2 and raised["left"] == raised["right"]:
            out = [self.pick(self.table["both_raised"][raised["left"]])]
        else:
            out = [self.pick(self.table["one_raised"][level], side=side) for side, level in f.raised]
        if len(f.hand_at_head) == 2:
            out.append(self.pick(self.table["hand_head"]["both"]))
        else:
            out += [self.pick(self.table["hand_head"]["one"], side=side) for side in f.hand_at_head]
        if f.arms:
            out.append(self.pick(self.table["arms_pose"][f.arms]))
        if len(f.held_out) == 2:
            out.append(self.pick(self.table["held_out"]["both"]))
        else:
            out += [self.pick(self.table["held_out"]["one"], side=side) for side in f.held_out]
        return out + self.joints(f, "elbow")

    def joints(self, f: PersonFacts, joint: str) -> list[str]:
        """Sentences about both elbows or both knees; one sentence when the two look alike."""
        angles = [a for a in f.angles if a.joint.endswith(joint)]
        kinds = {_angle_kind(a.degrees) for a in angles}
        if len(angles) == 2 and len(kinds) == 1:
            return [self.pick(self.table[f"{joint}_both"][kinds.pop()])]
        table = self.table[joint]
        return [
            self.pick(table[_angle_kind(a.degrees)], side=a.joint.split()[0], bend=_bend(a.degrees)) for a in angles
        ]

    def legs(self, f: PersonFacts) -> list[str]:
        out = self.joints(f, "knee")
        if f.stance:
            out.append(self.pick(self.table["stance"][f.stance]))
        if f.lifted_leg:
            out.append(self.pick(self.table["lifted"], side=f.lifted_leg))
        return out

    def hands(self, f: PersonFacts) -> list[str]:
        same = {(h.category, h.relation) for h in f.hands}
        if len(f.hands) == 2 and len(same) == 1:
            return [self.pick(self.table["hand_both"][f.hands[0].relation], obj=f.hands[0].category)]
        return [self.pick(self.table["hand"][h.relation], side=h.side, obj=h.category) for h in f.hands]

    def relations(self, f: PersonFacts) -> list[str]:
        return [
            self.pick(self.table["relation"][r.relation], Name=_cap(self.name(f)), other=self.names[r.other])
            for r in f.relations
            if r.relation in ("in front of", "behind")  # left/right is already in how people are named
        ]

    def person(self, f: PersonFacts) -> list[str]:
        return self.posture(f) + self.facing(f) + self.arms(f) + self.legs(f) + self.hands(f)

    # --- the three tasks -------------------------------------------------------------------------------------

    def conversation(self) -> list[tuple[str, str]]:
        questions = self.table["questions"]
        pairs = [(self.rng.choice(questions["activity"]), " ".join([self.opener(), self.count()]))]
        topics = []
        for topic, sentences in (("posture", self.posture), ("facing", self.facing), ("arms", self.arms),
                                 ("legs", self.legs), ("hands", self.hands)):  # fmt: skip
            person = next((f for f in self.focus if sentences(f) and (topic != "posture" or f.posture)), None)
            if person is not None:
                topics.append((topic, person, sentences))
        self.rng.shuffle(topics)
        for topic, person, sentences in topics[:3]:
            question = self.pick(questions[topic], name=self.name(person))
            pairs.append((_cap(question), " ".join(sentences(person))))
        related = [s for f in self.focus for s in self.relations(f)]
        if len(self.facts) > 1 and related:
            pairs.append((self.rng.choice(questions["relations"]), " ".join(related[:3])))
        elif len(pairs) < 4 and (len(self.facts) > 1 or len(pairs) < 2):
            pairs.append((self.rng.choice(questions["count"]), self.count()))
        objects = self.objects()
        if objects and len(pairs) < 3:
            pairs.append((self.rng.choice(questions["objects"]), self.pick(self.table["objects"], objs=objects)))
        return pairs

    def objects(self) -> str:
        """ "a dog, a frisbee and two cups": the non-person things of the scene, counted."""
        counts: dict[str, int] = {}
        for inst in self.scene.instances:
            if inst.category != "person" and not inst.iscrowd:
                counts[inst.category] = counts.get(inst.category, 0) + 1
        names = [counted(category, n) for category, n in counts.items()]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}" if names else ""

    def description(self) -> str:
        sentences = [self.opener(), self.count()]
        order = list(self.names)  # left to right
        details = 0
        for f in sorted(self.focus, key=lambda f: order.index(f.number)):
            said = self.person(f)
            details += len(said) - (f.posture is None)  # "X is in view" is no pose detail
            sentences += said + self.relations(f)
        if details >= 3:  # a summing-up sentence only where there is something to sum up
            sentences.append(self.rng.choice(self.table["closing"]))
        return " ".join(sentences)

    def readings(self, f: PersonFacts) -> list[str]:
        """What the pose of ``f`` suggests, one sentence per cue, strongest cues first."""
        reading = self.table["reading"]
        raised = {level for _, level in f.raised}
        bent = len([a for a in f.angles if a.joint.endswith("elbow") and a.degrees < 120])
        keys = [
            f.posture if f.posture in reading else None,
            "wide" if f.stance == "feet wide apart" else None,
            "raised_head" if "the head" in raised else "raised_shoulder" if raised else None,
            "hand_head" if f.hand_at_head else None,
            {"arms crossed": "crossed", "hands on the hips": "akimbo"}.get(f.arms or ""),
            "held_out" if f.held_out else None,
            "lifted" if f.lifted_leg else None,
            f.lean_direction if f.lean_direction in ("forward", "backward") else None,
            "away" if f.facing == "away from the camera" else None,
            {0: None, 1: "bent_elbow", 2: "bent_elbows"}[bent],
        ]
        out = [reading[k] for k in keys if k]
        fixed = self.table["not_held"]["categories"]
        held = next((h.category for h in f.hands if h.relation == "at" and h.category not in fixed), None)
        if held:
            out.append(reading["hand_at"].format(obj=held))
        return out

    def reasoning(self) -> tuple[str, str]:
        advice = self.table["advice"]
        sentences = [self.opener()]
        notes: list[str] = []
        for f in self.focus[:2]:
            sentences += self.person(f)
            notes += [note for note in self.readings(f) if note not in notes]
        notes = notes[:3] or [self.table["reading"]["default"]]
        main = self.focus[0].posture if self.focus else None
        answer = " ".join(sentences + notes + [advice.get(main or "default", advice["default"])])
        one = len(self.facts) == 1
        values = {"who": "the person" if one else "the people", "be": "is" if one else "are", "their": "their",
                  "body": "body" if one else "bodies"}  # fmt: skip
        return self.pick(self.table["questions"]["reasoning"], **values), answer


def respond(scene: Scene, task: str) -> str:
    """The offline teacher's response text for ``scene`` and ``task``."""
    writer = _Writer(scene, task)
    if task == "conversation":
        pairs = writer.conversation()
    elif task == "complex_reasoning":
        pairs = [writer.reasoning()]
    elif task == "detailed_description":
        return writer.description()
    else:
        raise TeacherError(f"the offline teacher writes only {', '.join(TASKS)}; got task {task!r}")
    return "\n===\n".join(f"Question:\n{q}\n===\nAnswer:\n{a}" for q, a in pairs)


def _words(value: object) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, dict):
        return sum(_words(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_words(v) for v in value)
    return 0


class OfflineTeacher:
    """Teacher protocol implementation that writes from captions and pose facts; no network, no key."""

    model = OFFLINE_TEACHER_MODEL

    async def complete(self, request: ChatRequest) -> Completion:
        from keypoint_instruct.llm.request import Completion

        if request.payload is None:
            raise TeacherError(
                f"the offline teacher needs the scene of image {request.item_id}; build requests with "
                "teacher.build_requests so each request carries its scene"
            )
        text = respond(request.payload, request.task)
        messages = request.body.get("messages", []) if isinstance(request.body, dict) else []
        return Completion(
            text=text,
            finish_reason="stop",
            prompt_tokens=_words(messages),
            completion_tokens=len(text.split()),
            cached_tokens=0,
            model=self.model,
        )
