"""What prompt versions stand for (context mode, instruction list), recorded in the cache by the runs that send
them; and the detailed-description instruction the teacher answered, paired by the build with its answer."""

from __future__ import annotations

import pyarrow.parquet as pq

from keypoint_instruct.cli import main
from keypoint_instruct.llm.request import request_key
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.llm.store.prompts import PromptCatalogue
from keypoint_instruct.teacher.catalogue import installed_versions, known_prompts, record_prompts
from keypoint_instruct.teacher.templates import description_instructions, load_prompt, pick_instruction
from keypoint_instruct.vocab import CONTEXT_MODES, TASKS
from tests.fixtures_dataset import put_response

SPLIT = "val2014"


def test_the_installed_versions_are_known_without_a_record():
    versions = installed_versions()
    assert len(versions) == len(TASKS) * len(CONTEXT_MODES)
    known = known_prompts()
    for task in TASKS:
        for mode in CONTEXT_MODES:
            assert known.context_mode(load_prompt(task, mode).version) == mode
    assert known.context_mode("0ld") is None


def test_generate_records_its_versions_and_they_outlive_the_prompt_files(coco_root, tmp_path):
    cache = tmp_path / "c.sqlite"
    argv = ["generate", "--teacher", "offline", "--task", "all", "--coco-root", str(coco_root), "--split", SPLIT]
    assert main([*argv, "--cache", str(cache), "--limit", "1", "--context", "paper+facts"]) == 0
    with ResponseCache(cache) as opened:
        recorded = PromptCatalogue(opened).read()
        assert {version: task for version, (task, _) in recorded.items()} == {
            load_prompt(task, "paper+facts").version: task for task in TASKS
        }
        description = recorded[load_prompt("detailed_description", "paper+facts").version][1]
        assert description == {"context_mode": "paper+facts", "instructions": list(description_instructions())}
        # A version the installed files no longer make (the prompts were edited since) is still known by its record.
        old = {"context_mode": "paper", "instructions": ["Only this."]}
        PromptCatalogue(opened).record({"0ld": ("detailed_description", old)})
        known = known_prompts(opened)
        assert known.context_mode("0ld") == "paper" and known.instruction(5, "0ld") == "Only this."
        assert known.instruction(5, "unrecorded") == pick_instruction(5)  # as builds always paired it
        record_prompts(opened, TASKS, "paper+facts")  # recording again changes nothing
        assert PromptCatalogue(opened).read()["0ld"][1]["instructions"] == ["Only this."]


def test_the_row_pairs_the_instruction_the_teacher_was_asked(fake_openai, coco_root, tmp_path):
    """Issue 13: the instruction was attached only at build time, so the teacher never saw the question its answer
    is paired with. Now the request ends with it, and the row's question is that very line."""
    cache, out = tmp_path / "c.sqlite", tmp_path / "ds"
    argv = ["generate", "--task", "detailed_description", "--coco-root", str(coco_root), "--split", SPLIT]
    assert (
        main([*argv, "--cache", str(cache), "--limit", "4", "--base-url", fake_openai.base_url, "--no-progress"]) == 0
    )
    asked = {request_key(e.body): e.body["messages"][-1]["content"] for e in fake_openai.chat_log(ok_only=True)}
    assert len(asked) == 4
    assert main(["build", "--coco-root", str(coco_root), "--split", SPLIT, "--cache", str(cache), "--out", str(out),
                 "--version", "1.0.0"]) == 0  # fmt: skip
    rows = pq.read_table(sorted((out / "detailed_description").glob("*.parquet"))).to_pylist()
    assert len(rows) == 4
    for row in rows:
        question = row["messages"][0]["content"][1]["text"]
        assert asked[row["response_key"]].endswith("\n\n" + question)
        assert question == pick_instruction(row["image_id"]) in description_instructions()


def test_a_build_pairs_a_recorded_older_list_exactly(coco_root, tmp_path):
    """Answers of a prompt version sent with another instruction list (the list changed since) keep the instruction
    their request ended with."""
    from keypoint_instruct.coco.annotations import load_scenes

    cache, out = tmp_path / "c.sqlite", tmp_path / "ds"
    image_id = next(iter(load_scenes(coco_root, SPLIT)))
    with ResponseCache(cache, create=True) as opened:
        old = {"context_mode": "paper", "instructions": ["Say it all."]}
        PromptCatalogue(opened).record({"0ld": ("detailed_description", old)})
        text = "A man stands on a court with his arms raised and his weight on his left leg, ready to swing."
        put_response(opened, "detailed_description", image_id, text, coco_split=SPLIT, prompt_version="0ld")
    assert main(["build", "--coco-root", str(coco_root), "--split", SPLIT, "--cache", str(cache), "--out", str(out),
                 "--version", "1.0.0"]) == 0  # fmt: skip
    [row] = pq.read_table(sorted((out / "detailed_description").glob("*.parquet"))).to_pylist()
    assert row["messages"][0]["content"][1]["text"] == "Say it all."
    assert "- Context mode: `paper`" in (out / "README.md").read_text()
