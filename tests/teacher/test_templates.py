"""Prompt templates: snapshots of the full message lists, the data files' rules, versions and instructions."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from keypoint_instruct.coco.annotations import Instance, Scene
from keypoint_instruct.coco.context import format_context
from keypoint_instruct.errors import PromptError
from keypoint_instruct.teacher import templates as prompts
from keypoint_instruct.teacher.templates import description_instructions, load_prompt, pick_instruction
from keypoint_instruct.vocab import CONTEXT_MODES, TASKS
from tests.paths import SNAPSHOTS as ALL_SNAPSHOTS
from tests.snapshot_check import check_snapshot

SNAPSHOTS = ALL_SNAPSHOTS / "prompts"

# A fixed context in the exact context format (two people, one of them with hidden and unlabelled joints).
CONTEXT = """A woman walks her dog along a city sidewalk.
A lady in a red coat holding a leash on a street.
Two people and a dog on a sidewalk next to parked cars.
A woman with a small dog passes a man waiting at a bus stop.
A person walking a dog past a bus stop.

person: [0.12, 0.2, 0.35, 0.95], keypoints: [0.25, 0.26, 2, 0.26, 0.25, 2, 0.24, 0.25, 2, 0.27, 0.26, 1, 0.0, 0.0, 0, \
0.3, 0.34, 2, 0.2, 0.34, 2, 0.32, 0.47, 2, 0.18, 0.46, 2, 0.33, 0.58, 2, 0.17, 0.57, 1, 0.29, 0.6, 2, 0.22, 0.6, 2, \
0.31, 0.77, 2, 0.2, 0.78, 2, 0.33, 0.93, 2, 0.18, 0.94, 2]
dog: [0.34, 0.78, 0.46, 0.95]
person: [0.7, 0.3, 0.82, 0.9]
car: [0.5, 0.4, 1.0, 0.75]"""

FACTS = (
    "Person 1 (on the left, standing, facing the camera): torso upright; left knee straight; right knee straight.\n"
    "Person 2 (on the right): no body joints marked."
)

# The instruction a detailed-description request ends with (one of the list; which one is the image's pick).
INSTRUCTION = (
    "Describe the people in this image in detail, paying close attention to their poses and what they are doing."
)


def _instruction(task: str) -> str | None:
    return INSTRUCTION if task == "detailed_description" else None


PERSON_LINE = re.compile(r"^person: \[([^\]]*)\], keypoints: \[([^\]]*)\]$")
BOX_LINE = re.compile(r"^[a-z][a-z ]*: \[([^\]]*)\]$")


def _numbers(text: str) -> list[str]:
    return [x.strip() for x in text.split(",")]


def _check_context(context: str) -> None:
    """The exact context format of ARCHITECTURE.md / issue 2."""
    captions, _, objects = context.partition("\n\n")
    assert len(captions.splitlines()) == 5 and all(c.strip() for c in captions.splitlines())
    for line in objects.splitlines():
        person = PERSON_LINE.match(line)
        box = _numbers((person or BOX_LINE.match(line)).group(1))
        assert len(box) == 4 and all(0.0 <= float(v) <= 1.0 and v == repr(round(float(v), 3)) for v in box)
        assert float(box[0]) <= float(box[2]) and float(box[1]) <= float(box[3])
        if person:
            keypoints = _numbers(person.group(2))
            assert len(keypoints) == 51
            for x, y, v in zip(keypoints[0::3], keypoints[1::3], keypoints[2::3], strict=True):
                assert v in ("0", "1", "2")
                assert all(0.0 <= float(c) <= 1.0 and c == repr(round(float(c), 3)) for c in (x, y))
                if v == "0":
                    assert (x, y) == ("0.0", "0.0")


def test_the_fixed_context_has_the_contract_format():
    _check_context(CONTEXT)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("mode", CONTEXT_MODES)
def test_snapshot_of_full_messages(task, mode):
    template = load_prompt(task, mode)
    context = CONTEXT if mode == "paper" else CONTEXT + "\n\n" + FACTS
    messages = template.messages(context, _instruction(task))
    got = {"task": task, "context_mode": mode, "version": template.version, "messages": messages}
    path = SNAPSHOTS / (f"{task}.json" if mode == "paper" else f"{task}.{mode}.json")
    check_snapshot(path, json.dumps(got, indent=1, ensure_ascii=False) + "\n", f"the {task} prompt", load=json.loads)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("mode", CONTEXT_MODES)
def test_static_prefix_is_byte_identical_and_context_last(task, mode):
    template = load_prompt(task, mode)
    first, second = template.messages(CONTEXT, _instruction(task)), template.messages("another", _instruction(task))
    assert json.dumps(first[:-1]) == json.dumps(second[:-1])
    last = CONTEXT + ("\n\n" + INSTRUCTION if task == "detailed_description" else "")
    assert first[-1] == {"role": "user", "content": last}
    assert [m["role"] for m in first] == ["system"] + ["user", "assistant"] * len(template.examples) + ["user"]
    assert len(template.examples) >= 2


@pytest.mark.parametrize("task", TASKS)
def test_system_message_conveys_the_setting(task):
    system = load_prompt(task).system
    for part in ("nose", "left eye", "right ankle", "(x1, y1, x2, y2)", "(x, y, visibility)", "0 to 1", "five"):
        assert part in system
    names = re.findall(r"^\d+\. (.+)$", system, flags=re.MULTILINE)
    assert names == [n.replace("_", " ") for n in prompts_keypoint_names()]
    assert "coordinates" in system and "number" in system  # the never-output-numbers rule


def prompts_keypoint_names() -> tuple[str, ...]:
    return (
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
        "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
        "right_ankle",
    )  # fmt: skip


@pytest.mark.parametrize("task", TASKS)
def test_few_shot_examples_follow_the_rules(task):
    for context, response in load_prompt(task).examples:
        _check_context(context)
        assert not re.search(r"\d", response), "responses never carry numbers"
        assert not re.search(r"caption|keypoint|bounding box|coordinate|annotat", response, flags=re.IGNORECASE)
        if task == "detailed_description":
            assert "Question:" not in response and "===" not in response
            continue
        chunks = response.split("\n===\n")
        assert len(chunks) % 2 == 0
        pairs = list(zip(chunks[0::2], chunks[1::2], strict=True))
        assert (len(pairs) == 1) if task == "complex_reasoning" else (len(pairs) >= 3)
        for question, answer in pairs:
            assert question.startswith("Question:\n") and len(question) > len("Question:\n") + 10
            assert answer.startswith("Answer:\n") and len(answer) > len("Answer:\n") + 20


@pytest.mark.parametrize("task", TASKS)
def test_few_shot_answers_pass_the_real_parser_and_filters_whole(task):
    """What the teacher is shown to write becomes training samples untouched: every pair parsed and kept."""
    from keypoint_instruct.dataset import quality
    from keypoint_instruct.dataset.parse import parse_description, parse_pairs

    for _, response in load_prompt(task).examples:
        if task == "detailed_description":
            assert parse_description(response) == response and quality.pair_reason(None, response) is None
            continue
        pairs = parse_pairs(response)
        assert len(pairs) == response.count("Question:\n") and (len(pairs) == 1) == (task == "complex_reasoning")
        for pair in pairs:
            assert quality.pair_reason(pair.question, pair.answer) is None, pair
            assert pair.question in response and pair.answer in response  # verbatim, nothing cut
        normalized = {quality.normalize_question(p.question) for p in pairs}
        assert len(normalized) == len(pairs)  # no question the repeated-question filter would drop


def test_the_body_parts_are_coco_keypoint_names():
    from keypoint_instruct.coco.keypoints import KEYPOINT_NAMES

    assert tuple(KEYPOINT_NAMES) == prompts_keypoint_names()


def _example_scenes() -> dict[str, tuple[Scene, list[str]]]:
    data = json.loads((Path(prompts.__file__).parent / "prompts" / "example_scenes.json").read_text())
    scenes = {}
    for name, s in data["scenes"].items():
        instances = tuple(
            Instance(
                id=number,
                category=x["category"],
                bbox=tuple(float(v) for v in x["bbox"]),
                iscrowd=False,
                keypoints=tuple(float(v) for v in x["keypoints"]) if "keypoints" in x else None,
                num_keypoints=sum(1 for v in x.get("keypoints", [])[2::3] if v > 0),
            )
            for number, x in enumerate(s["instances"], start=1)
        )
        scene = Scene(0, f"{name}.jpg", "examples", s["width"], s["height"], tuple(s["captions"]), instances)
        scenes[name] = (scene, s["used_by"])
    return scenes


def test_examples_are_rebuilt_exactly_from_their_scenes():
    """Every example context (both modes) is what the project's own formatter makes of its pixel-space scene."""
    covered = set()
    for scene, used_by in _example_scenes().values():
        for use in used_by:
            task, number = use.split("/")
            for mode in CONTEXT_MODES:
                context, _ = load_prompt(task, mode).examples[int(number) - 1]
                assert context == format_context(scene, mode), f"{use} ({mode}) is stale"
            covered.add(use)
    assert covered == {f"{t}/{n + 1}" for t in TASKS for n in range(len(load_prompt(t).examples))}


def test_facts_mode_adds_the_pose_notes_sentence_and_blocks():
    for task in TASKS:
        paper, facts = load_prompt(task, "paper"), load_prompt(task, "paper+facts")
        assert facts.system.startswith(paper.system + "\n\n") and "pose notes" in facts.system[len(paper.system) :]
        for (with_notes, answer), (plain, same_answer) in zip(facts.examples, paper.examples, strict=True):
            assert with_notes.startswith(plain + "\n\nPerson 1 (") and answer == same_answer
        assert facts.version != paper.version
    versions = {load_prompt(t, m).version for t in TASKS for m in CONTEXT_MODES}
    assert len(versions) == len(TASKS) * len(CONTEXT_MODES)


def test_the_pose_notes_sentence_says_which_frame_each_left_and_right_is_in():
    """The notes mix the person's own sides (body parts) with the picture's (places, facing, people side by side):
    the sentence the teacher reads says which is which, for every marker the notes use, and the system message it
    follows says the same."""
    paper, facts = load_prompt("conversation"), load_prompt("conversation", "paper+facts")
    notes = facts.system[len(paper.system) :]
    assert "person's own side" in notes and "as the viewer sees the image" in notes
    blocks = " ".join(
        notes_of[len(plain) :]
        for task in TASKS
        for (notes_of, _), (plain, _) in zip(
            load_prompt(task, "paper+facts").examples, load_prompt(task).examples, strict=True
        )
    )
    assert "of the picture" in blocks and "Person 2 in the picture" in blocks  # what the sentence is about
    for marker in ("of the picture", "in the picture", "facing the picture's", "in front of", "behind"):
        assert marker in notes, marker
    for marker in re.findall(r"of the picture|in the picture|the picture's|in front of|behind", blocks):
        assert marker in notes, marker
    assert "Left and right are the person's own sides, not the sides of the picture." in paper.system


def test_version_is_a_hash_of_the_template_files(tmp_path, monkeypatch):
    copy = tmp_path / "prompts"
    shutil.copytree(Path(prompts.__file__).parent / "prompts", copy)
    monkeypatch.setattr(prompts, "_root", lambda: copy)
    uncached = load_prompt.__wrapped__
    assert uncached("conversation").version == load_prompt("conversation").version
    response = copy / "conversation" / "examples" / "2.response.txt"
    response.write_text(response.read_text() + " ", encoding="utf-8")
    assert uncached("conversation").version != load_prompt("conversation").version
    (copy / "conversation" / "examples" / "1.response.txt").unlink()
    with pytest.raises(PromptError, match="1.response.txt is missing"):
        uncached("conversation")


@pytest.mark.parametrize(("task", "mode"), [("captioning", "paper"), ("conversation", "pixels")])
def test_unknown_task_or_mode_is_a_prompt_error(task, mode):
    with pytest.raises(PromptError, match="unknown") as err:
        load_prompt(task, mode)
    assert isinstance(err.value, ValueError)


def test_instructions_are_pose_focused_and_unique():
    instructions = description_instructions()
    assert len(instructions) >= 10 and len(set(instructions)) == len(instructions)
    assert all(re.search(r"pose|posture|bod(y|ies)|stand|movement|gesture|action", i, re.I) for i in instructions)


def test_a_description_request_ends_with_its_instruction_and_examples_show_theirs():
    """The teacher answers the instruction the dataset row will pair with its description (issue 13): the last user
    line is the instruction, and each few-shot example shows one, so the answer follows the pattern."""
    template = load_prompt("detailed_description")
    assert template.asks_instruction and template.instructions == description_instructions()
    messages = template.messages(CONTEXT, INSTRUCTION)
    assert messages[-1]["content"].splitlines()[-1] == INSTRUCTION
    assert messages[-1]["content"].startswith(CONTEXT + "\n\n")
    for number, (context, _) in enumerate(template.examples):
        shown = messages[1 + 2 * number]["content"]
        assert shown == f"{context}\n\n{template.example_instructions[number]}"
        assert template.example_instructions[number] in description_instructions()
    assert "last line" in template.system and "request" in template.system
    with pytest.raises(PromptError, match="needs an instruction"):
        template.messages(CONTEXT)
    with pytest.raises(PromptError, match="takes no instruction"):
        load_prompt("conversation").messages(CONTEXT, INSTRUCTION)


def test_a_rich_narrative_instruction_in_the_spirit_of_the_papers_table_3_is_in_the_list():
    assert any("narrative" in line and "posed" in line for line in description_instructions())


def test_the_description_version_follows_the_instruction_list(tmp_path, monkeypatch):
    """The list decides each image's instruction, so a changed list is a new prompt version (and new keys)."""
    copy = tmp_path / "prompts"
    shutil.copytree(Path(prompts.__file__).parent / "prompts", copy)
    monkeypatch.setattr(prompts, "_root", lambda: copy)
    uncached = load_prompt.__wrapped__
    assert uncached("detailed_description").version == load_prompt("detailed_description").version
    listed = copy / "detailed_description" / "instructions.txt"
    listed.write_text(listed.read_text() + "Describe every person's stance in this photo in detail.\n")
    assert uncached("detailed_description").version != load_prompt("detailed_description").version
    assert uncached("conversation").version == load_prompt("conversation").version


def test_pick_instruction_is_stable_across_processes_and_spreads():
    ids = [1, 42, 139, 581929, 10**9]
    here = [pick_instruction(i) for i in ids]
    code = (
        "from keypoint_instruct.teacher.templates import pick_instruction; "
        f"print(repr([pick_instruction(i) for i in {ids}]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert eval(out) == here  # noqa: S307 - our own repr
    picked = {pick_instruction(i) for i in range(2000)}
    assert picked == set(description_instructions())
