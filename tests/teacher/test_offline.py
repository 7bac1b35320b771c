"""The offline teacher: the LLM teacher's response shapes, written only from captions and pose facts."""

from __future__ import annotations

import asyncio
import dataclasses
import re

import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.posefacts import scene_facts
from keypoint_instruct.dataset.decide import decide
from keypoint_instruct.dataset.parse import parse_description, parse_pairs
from keypoint_instruct.dataset.quality import pair_reason, text_reason
from keypoint_instruct.errors import TeacherError
from keypoint_instruct.llm.request import ChatRequest, GenerationSettings
from keypoint_instruct.teacher.offline import OfflineTeacher, person_names, prominent, respond
from keypoint_instruct.teacher.requests import build_requests
from keypoint_instruct.vocab import OFFLINE_TEACHER_MODEL
from tests.coco.test_posefacts import STANDING, person, scene, thing
from tests.paths import REALPOSES

TASKS = ("conversation", "detailed_description", "complex_reasoning")
FORBIDDEN = re.compile(r"caption|bounding box|key ?point|coordinate|annotation|degree|\d\.\d|\[", re.IGNORECASE)


@pytest.fixture(scope="module")
def fixture_scenes(coco_root):
    return list(load_scenes(coco_root, "val2014").values())


def test_every_fixture_scene_parses_and_passes_the_quality_filters(fixture_scenes):
    for s in fixture_scenes:
        for task in ("conversation", "complex_reasoning"):
            text = respond(s, task)
            pairs = parse_pairs(text)
            assert (len(pairs) >= 2) if task == "conversation" else (len(pairs) == 1), (s.image_id, text)
            assert len({p.question for p in pairs}) == len(pairs)
            for pair in pairs:
                assert pair_reason(pair.question, pair.answer) is None, (s.image_id, pair)
            assert not FORBIDDEN.search(text), (s.image_id, text)
        description = respond(s, "detailed_description")
        assert "Question:" not in description
        assert text_reason(parse_description(description)) is None, (s.image_id, description)
        assert not FORBIDDEN.search(description), (s.image_id, description)


def _kept_whole(scenes):
    """Every offline response about ``scenes`` goes through the build's decision function untouched."""
    for s in scenes:
        for task in TASKS:
            decision = decide(respond(s, task), task, s)
            assert decision.verified and not decision.findings, (s.image_id, task, decision.findings)


def test_the_build_keeps_every_offline_answer_about_the_fixture_coco(coco_root, fixture_scenes):
    """Leak filters, refusal rules and the pose verifier together drop nothing the offline teacher writes."""
    _kept_whole(fixture_scenes + list(load_scenes(coco_root, "train2017").values()))


@pytest.mark.skipif(not (REALPOSES / "annotations").is_dir(), reason=f"the real-pose tree {REALPOSES} is not there")
def test_the_build_keeps_every_offline_answer_about_real_photographs():
    _kept_whole(list(load_scenes(REALPOSES, "val2017").values()))


def test_the_largest_people_with_enough_joints_are_described_not_the_most_labelled():
    """A small, fully labelled figure far back does not displace the large one in front, whose box is much bigger
    though a few of its joints are unlabelled; a big box with two labelled joints is no candidate."""
    small = person(STANDING, bbox=(500, 20, 40, 90), ident=1)  # 17 joints, tiny box
    upper = {k: v for k, v in STANDING.items() if not k.endswith(("knee", "ankle"))}
    large = person({k: (x * 2, y * 1.5) for k, (x, y) in upper.items()}, bbox=(100, 20, 250, 400), ident=2)
    two = {k: v for k, v in STANDING.items() if k in ("left_shoulder", "right_shoulder")}
    huge = person(two, bbox=(0, 0, 640, 480), ident=3)
    s = scene(small, large, huge)
    assert [f.number for f in prominent(s, scene_facts(s))] == [2, 1]
    alone = scene(huge)
    assert [f.number for f in prominent(alone, scene_facts(alone))] == [1]  # nobody better: the one there is
    described = respond(s, "detailed_description")
    assert described.index(person_names(s)[2].capitalize()) < described.index(person_names(s)[1].capitalize())


def test_responses_are_deterministic_but_vary_across_images(fixture_scenes):
    first = [respond(s, "conversation") for s in fixture_scenes]
    assert first == [respond(s, "conversation") for s in fixture_scenes]
    questions = {tuple(p.question for p in parse_pairs(text)) for text in first}
    assert len(questions) > len(fixture_scenes) // 3


def test_only_supported_facts_are_stated():
    # Only the torso is labelled: nothing about arms, legs, hands, posture or facing may be said.
    torso = {k: v for k, v in STANDING.items() if k.endswith(("shoulder", "hip"))}
    s = scene(person(torso, visibility={"left_shoulder": 1}), thing("tennis racket", (150, 100, 30, 30)))
    text = " ".join(respond(s, task) for task in TASKS).lower()
    # Shoulder order alone tells the chest side (COCO labels anatomical left/right), so facing may be stated.
    unsupported = re.findall(r"\b(?:elbows?|knees?|arms?|legs?|hands?|feet|standing|stands|sitting|seated)\b", text)
    assert unsupported == []
    assert "upright" in text
    full = scene(person(STANDING), thing("tennis racket", (150, 100, 30, 30)))
    described = respond(full, "detailed_description")
    assert "standing" in described or "on their feet" in described or "stands" in described
    assert "right angle" in described and "tennis racket" in described
    assert "degree" not in " ".join(respond(full, task) for task in TASKS)  # angles in words, as the LLM is told


def test_both_hands_on_one_object_read_as_one_sentence():
    joints = STANDING | {"right_elbow": (80, 110), "right_wrist": (150, 115)}
    s = scene(person(joints), thing("tennis racket", (140, 100, 30, 30)))
    described = respond(s, "detailed_description")
    assert "Both hands" in described and "tennis racket" in described and "left hand" not in described


def test_people_are_named_by_position():
    s = scene(person(STANDING, ident=1), person(STANDING, bbox=(400, 20, 110, 235), ident=2),
              person(STANDING, bbox=(200, 20, 110, 235), ident=3))  # fmt: skip
    assert person_names(s) == {
        1: "the person on the left",
        3: "the person in the middle",
        2: "the person on the right",
    }
    assert person_names(scene(person(STANDING))) == {1: "the person"}


def test_complete_through_the_teacher_protocol(fixture_scenes):
    settings = GenerationSettings(model=OFFLINE_TEACHER_MODEL)
    teacher = OfflineTeacher()
    for task in TASKS:
        request = build_requests(fixture_scenes[:1], task, settings, "paper+facts")[0]
        completion = asyncio.run(teacher.complete(request))
        assert completion.model == "offline-posefacts" and completion.finish_reason == "stop"
        assert completion.text == respond(fixture_scenes[0], task)
        assert completion.prompt_tokens > 100 and completion.completion_tokens == len(completion.text.split())


def test_missing_scene_or_unknown_task_is_a_teacher_error(fixture_scenes):
    bare = ChatRequest("conversation", 1, "val2014", "v", {"messages": []})
    with pytest.raises(TeacherError, match="needs the scene"):
        asyncio.run(OfflineTeacher().complete(bare))
    with pytest.raises(TeacherError, match="judge/conversation"):
        respond(fixture_scenes[0], "judge/conversation")


def test_generate_offline_fills_the_cache(coco_root, tmp_path, capsys):
    from keypoint_instruct.llm.store.cache import ResponseCache

    cache = tmp_path / "responses.sqlite"
    argv = ["generate", "--teacher", "offline", "--task", "all", "--coco-root", str(coco_root), "--split",
            "val2014", "--cache", str(cache), "--limit", "3", "--context", "paper+facts", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    with ResponseCache(cache) as responses:
        rows = list(responses.iter_responses())
    assert len(rows) == 9 and {r.model for r in rows} == {"offline-posefacts"}
    assert {r.task for r in rows} == set(TASKS)
    capsys.readouterr()
    assert main([*argv, "--model", "gpt-4o"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err and "offline" in err


def test_objects_are_counted_in_proper_english():
    from keypoint_instruct.teacher.offline import counted

    assert [counted("skis", 1), counted("skis", 2), counted("wine glass", 2), counted("bus", 3)] == [
        "a pair of skis", "two pairs of skis", "two wine glasses", "three buses",
    ]  # fmt: skip
    assert [counted("umbrella", 1), counted("knife", 2), counted("dog", 1), counted("dog", 4)] == [
        "an umbrella", "two knives", "a dog", "four dogs",
    ]  # fmt: skip
    things = (thing("wine glass", (400, 400, 10, 10), 101), thing("wine glass", (420, 400, 10, 10), 102),
              thing("skis", (300, 440, 100, 10), 103))  # fmt: skip
    bare = dataclasses.replace(scene(person(STANDING), *things), captions=())
    opening = respond(bare, "detailed_description").split(". ")[0]
    assert opening == "The picture shows a person together with two wine glasses and a pair of skis"


def test_reasoning_reads_the_hand_that_holds_something_and_agrees_in_number():
    # left wrist (160, 110) just past the bench's left edge (near), right wrist (80, 150) inside the racket (at)
    s = scene(person(STANDING), thing("bench", (163, 90, 40, 40), 101), thing("tennis racket", (70, 140, 20, 20), 102))
    answer = parse_pairs(respond(s, "complex_reasoning"))[0].answer
    assert "holding or using the tennis racket" in answer and "using the bench" not in answer
    assert "A bent elbow keeps the hand" in answer  # only the left elbow is bent
    table = scene(person(STANDING), thing("dining table", (150, 100, 200, 100), 103))
    assert "holding or using" not in parse_pairs(respond(table, "complex_reasoning"))[0].answer  # not held: furniture
    both = STANDING | {"right_elbow": (80, 110), "right_wrist": (40, 110)}
    answer = parse_pairs(respond(scene(person(both)), "complex_reasoning"))[0].answer
    assert "Bent elbows keep the hands" in answer


def test_no_summing_up_without_pose_details_and_a_crowd_alone_is_named():
    from keypoint_instruct.teacher.offline import phrases

    torso = {k: v for k, v in STANDING.items() if k.endswith(("shoulder", "hip"))}
    described = respond(scene(person(torso)), "detailed_description")
    assert not any(closing in described for closing in phrases()["closing"])
    assert any(closing in respond(scene(person(STANDING)), "detailed_description") for closing in phrases()["closing"])
    crowd = dataclasses.replace(scene(person({}, bbox=(0, 0, 300, 100), crowd=True)), captions=())
    described = respond(crowd, "detailed_description")
    assert described.startswith("The picture shows a crowd of people.") and "only as a crowd" in described


def test_a_hand_up_at_the_head_is_said_as_such_not_as_a_raised_arm():
    phone = STANDING | {"left_elbow": (128, 110), "left_wrist": (112, 45)}
    for image_id in range(8):  # every wording the phrase tables offer
        s = dataclasses.replace(scene(person(phone)), image_id=image_id)
        described = respond(s, "detailed_description")
        assert re.search(r"left hand is (?:brought )?up (?:to the head|near the face)", described), described
        assert not re.search(r"arm is raised|above shoulder|higher than the shoulder", described), described
    answer = parse_pairs(respond(s, "complex_reasoning"))[0].answer
    assert "phone" in answer and "Lifting a hand over the head" not in answer


def test_counts_and_wordings_agree_with_what_the_pose_shows():
    crowd = person({}, bbox=(0, 0, 300, 100), ident=9, crowd=True)
    hug = {"nose": (125, 95), "left_eye": (121, 91), "left_ear": (110, 93), "left_shoulder": (105, 120),
           "right_shoulder": (103, 120), "left_hip": (100, 200), "right_hip": (98, 200), "left_knee": (140, 150),
           "right_knee": (138, 150), "left_ankle": (150, 205), "right_ankle": (148, 205)}  # fmt: skip
    texts = []
    for image_id in range(12):  # every wording the phrase tables offer
        one_in_a_crowd = dataclasses.replace(scene(person(STANDING), crowd), image_id=image_id)
        texts += [respond(one_in_a_crowd, task) for task in TASKS]
        sitting_on_the_ground = dataclasses.replace(scene(person(hug, (90, 85, 80, 125)), crowd), image_id=image_id)
        texts += [respond(sitting_on_the_ground, task) for task in TASKS]  # thighs raised, not level
        two = dataclasses.replace(scene(person(STANDING), person(STANDING, (400, 20, 110, 235), 2)), image_id=image_id)
        texts.append(respond(two, "complex_reasoning"))
    text = " ".join(texts)
    assert "one people" not in text and "one person can be made out" in text
    assert "thighs roughly level" not in text and "sitting" in text
    assert "people hold their body " not in text and "people hold their bodies " in text


def test_crossed_arms_hands_on_hips_and_an_arm_held_out_are_said_and_read():
    crossed = STANDING | {"left_elbow": (125, 110), "right_elbow": (75, 110), "left_wrist": (80, 95),
                          "right_wrist": (120, 95)}  # fmt: skip
    akimbo = STANDING | {"left_elbow": (145, 110), "right_elbow": (55, 110), "left_wrist": (116, 146),
                         "right_wrist": (84, 146)}  # fmt: skip
    from keypoint_instruct.teacher.offline import phrases

    pointing = STANDING | {"right_elbow": (45, 72), "right_wrist": (10, 74)}
    for joints, words, reading in (
        (crossed, "arms are (?:crossed|folded)", "crossed"),
        (akimbo, "on (?:the|their) hips", "akimbo"),
        (pointing, "right arm (?:is )?(?:stretched|held) out", "held_out"),
    ):
        for image_id in range(4):
            s = dataclasses.replace(scene(person(joints)), image_id=image_id)
            assert re.search(words, respond(s, "detailed_description"))
            assert phrases()["reading"][reading] in parse_pairs(respond(s, "complex_reasoning"))[0].answer
