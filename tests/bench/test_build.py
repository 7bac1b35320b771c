"""``bench build`` on the synthetic COCO: deterministic image choice, teacher calls shared with training, outputs."""

from __future__ import annotations

import argparse
import json

import pytest

from keypoint_instruct.bench.build import draw_order, eligible_scenes
from keypoint_instruct.bench.layout import load_bench
from keypoint_instruct.cli import main
from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.context import format_context, labelled_keypoints
from keypoint_instruct.llm.request import GenerationSettings
from keypoint_instruct.teacher.requests import build_requests
from keypoint_instruct.teacher.templates import pick_instruction
from keypoint_instruct.vocab import TASKS
from tests.fake_openai import default_responder, detect_task


def build(coco_root, tmp_path, out="bench", *extra):
    args = ["bench", "build", "--coco-root", str(coco_root), "--split", "val2014"]
    args += ["--cache", str(tmp_path / "teacher.sqlite"), "--out", str(tmp_path / out), *extra]
    return main(args)


def image_ids(bench_dir) -> list[int]:
    return sorted(load_bench(bench_dir).contexts)


def test_image_choice_is_seeded_and_only_from_eligible_images(coco_root):
    scenes = load_scenes(coco_root, "val2014")
    eligible = eligible_scenes(scenes.values(), min_keypoints=8)
    assert 30 <= len(eligible) < len(scenes)
    for scene in eligible:
        assert any(i.category == "person" and labelled_keypoints(i) >= 8 for i in scene.instances)
    first = [s.image_id for s in draw_order(eligible, seed=0)]
    assert first == [s.image_id for s in draw_order(list(reversed(eligible)), seed=0)]  # input order does not matter
    assert first != [s.image_id for s in draw_order(eligible, seed=1)]
    assert sorted(first) == [s.image_id for s in eligible]


def test_offline_build_is_deterministic_and_self_contained(coco_root, tmp_path):
    assert build(coco_root, tmp_path, "a", "--teacher", "offline", "--images", "30") == 0
    assert build(coco_root, tmp_path, "b", "--teacher", "offline", "--images", "30") == 0
    assert build(coco_root, tmp_path, "c", "--teacher", "offline", "--images", "30", "--seed", "7") == 0
    a, b = tmp_path / "a", tmp_path / "b"
    for name in ("questions.jsonl", "references.jsonl", "contexts.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert image_ids(a) != image_ids(tmp_path / "c")

    bench = load_bench(a)  # checks every question has a reference, a context and its image file
    assert len(bench.questions) == 90 and len(bench.contexts) == 30
    assert [q.category for q in bench.questions[:3]] == list(TASKS)
    scenes = load_scenes(coco_root, "val2014")
    for q in bench.questions:
        assert bench.image_path(q).read_bytes() == (coco_root / "val2014" / q.image).read_bytes()
        if q.category == "detailed_description":
            assert q.text == pick_instruction(q.image_id)
    for image_id, ctx in bench.contexts.items():
        assert ctx.context == format_context(scenes[image_id])
    meta = json.loads((a / "meta.json").read_text())
    assert meta["teacher_model"] == "offline-posefacts" and meta["seed"] == 0

    from datasets import get_dataset_config_names, load_dataset

    assert get_dataset_config_names(str(a / "hub")) == ["hpaub"]
    ds = load_dataset(str(a / "hub"), "hpaub", split="test")
    assert ds.num_rows == 90 and ds[0]["question_id"] == bench.questions[0].question_id
    assert ds[0]["reference"] == bench.references[ds[0]["question_id"]].text
    assert ds[0]["image"].size == (scenes[ds[0]["image_id"]].width, scenes[ds[0]["image_id"]].height)


def test_openai_teacher_uses_training_prompts_cache_and_replaces_unparseable(coco_root, tmp_path, fake_openai):
    scenes = load_scenes(coco_root, "val2014")
    order = draw_order(eligible_scenes(scenes.values(), min_keypoints=8), seed=0)
    spoiled = order[1].image_id  # its conversation answer has no Question/Answer labels

    def responder(body: dict) -> str:
        if body["messages"][-1]["content"] == spoiled_context and detect_task(body) == "conversation":
            return "Sorry, I cannot help with that."
        return default_responder(body)

    spoiled_context = format_context(scenes[spoiled])
    fake_openai.set_responder(responder)
    assert build(coco_root, tmp_path, "bench", "--images", "4", "--base-url", fake_openai.base_url) == 0
    bench = load_bench(tmp_path / "bench")
    assert sorted(bench.contexts) == sorted(s.image_id for s in (order[0], *order[2:5]))  # spoiled -> next one
    assert len(fake_openai.chat_log(ok_only=True)) == 5 * 3

    # The reference's key is the key of the training data's request for that scene and task (shared cache).
    settings = GenerationSettings()
    for q in bench.questions:
        (request,) = build_requests([scenes[q.image_id]], q.category, settings)
        assert bench.references[q.question_id].response_key == request.key
        assert bench.references[q.question_id].teacher_model == settings.model

    fake_openai.clear_log()
    assert build(coco_root, tmp_path, "again", "--images", "4", "--base-url", fake_openai.base_url) == 0
    assert fake_openai.chat_log() == []  # everything came from the cache
    assert (tmp_path / "again" / "questions.jsonl").read_bytes() == (
        tmp_path / "bench" / "questions.jsonl"
    ).read_bytes()


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_bad_input_is_one_line_exit_2(coco_root, tmp_path, capsys):
    assert build(coco_root, tmp_path, "x", "--images", "4") == 2  # openai teacher, no key, no URL
    assert "OPENAI_API_KEY" in _one_line(capsys)
    assert build(coco_root, tmp_path, "x", "--teacher", "offline", "--images", "500") == 2
    assert "500 asked" in _one_line(capsys)
    assert build(tmp_path / "nowhere", tmp_path, "x", "--teacher", "offline") == 2
    assert "nowhere" in _one_line(capsys)
    assert build(coco_root, tmp_path, "x", "--teacher", "offline", "--min-keypoints", "30") == 2
    assert "17" in _one_line(capsys)


def test_a_different_benchmark_is_not_written_over_without_overwrite(coco_root, tmp_path, capsys):
    offline = ("--teacher", "offline")
    assert build(coco_root, tmp_path, "b", *offline, "--images", "3") == 0
    first = (tmp_path / "b" / "questions.jsonl").read_bytes()
    assert build(coco_root, tmp_path, "b", *offline, "--images", "3") == 0  # the same benchmark: rebuilt as it was
    assert (tmp_path / "b" / "questions.jsonl").read_bytes() == first
    capsys.readouterr()
    assert build(coco_root, tmp_path, "b", *offline, "--images", "3", "--seed", "5") == 2
    assert "different benchmark" in (err := _one_line(capsys)) and "seed 0 -> 5" in err
    assert (tmp_path / "b" / "questions.jsonl").read_bytes() == first
    assert build(coco_root, tmp_path, "b", *offline, "--images", "2", "--seed", "5", "--overwrite") == 0
    contexts = load_bench(tmp_path / "b").contexts
    images = sorted(p.name for p in (tmp_path / "b" / "images").iterdir())
    assert len(contexts) == 2 and images == sorted(c.image for c in contexts.values())  # none of the first draw
    capsys.readouterr()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert build(coco_root, tmp_path, "other", *offline, "--images", "2", "--overwrite") == 2
    assert "notes.txt" in _one_line(capsys) and (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_unwritable_outputs_fail_before_any_work(coco_root, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert build(coco_root, tmp_path, "a-file", "--teacher", "offline", "--images", "2") == 2
    assert "is a file" in _one_line(capsys)
    assert build(coco_root, tmp_path, "a-file/bench", "--teacher", "offline", "--images", "2") == 2
    assert "a-file" in _one_line(capsys)
    assert build(coco_root, tmp_path, "b", "--teacher", "offline", "--images", "2") == 0
    capsys.readouterr()
    answer = ["bench", "answer", "--bench", str(tmp_path / "b"), "--model", "nowhere", "--backend", "hf"]
    assert main([*answer, "--out", str(blocker / "answers.jsonl")]) == 2
    assert "a-file" in _one_line(capsys)
    assert main(["bench", "report", str(tmp_path / "r.json"), "--out", str(tmp_path / "rep")]) == 2
    assert "r.json" in _one_line(capsys)


def test_hub_card_loads_and_a_rebuilt_benchmark_never_loads_stale_rows(coco_root, tmp_path):
    """`datasets` caches a local folder by its name and its card's YAML: two benchmarks in folders both named `hub`
    must still load as themselves (the card's dataset_info sizes tell them apart)."""
    import yaml
    from datasets import load_dataset

    assert build(coco_root, tmp_path, "two", "--teacher", "offline", "--images", "2") == 0
    assert build(coco_root, tmp_path, "three", "--teacher", "offline", "--images", "3", "--seed", "4") == 0
    for name, rows in (("two", 6), ("three", 9), ("two", 6)):
        card = (tmp_path / name / "hub" / "README.md").read_text()
        front = yaml.safe_load(card.split("---\n")[1])
        assert front["license"] == "cc-by-4.0" and front["configs"][0]["config_name"] == "hpaub"
        assert front["dataset_info"][0]["splits"][0]["num_examples"] == rows
        assert f'load_dataset("{tmp_path / name / "hub"}", "hpaub", split="test")' in card
        assert "offline-posefacts" in card and "<" not in card.split("---\n", 2)[2].replace("<1K", "")
        loaded = load_dataset(str(tmp_path / name / "hub"), "hpaub", split="test")
        assert loaded.num_rows == rows
        assert sorted(set(loaded["image_id"])) == image_ids(tmp_path / name)


def _bench_step_parsers():
    import argparse

    from keypoint_instruct.cli import build_parser

    def subparsers(parser):
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices

    return subparsers(subparsers(build_parser())["bench"])


def test_every_bench_step_has_a_description_and_shows_its_defaults(capsys):
    steps = _bench_step_parsers()
    assert sorted(steps) == ["answer", "build", "judge", "report"]
    for name, parser in steps.items():
        assert parser.description and len(parser.description) > 80, name
        with pytest.raises(SystemExit):
            main(["bench", name, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for action in parser._actions:
            if action.default not in (None, False, argparse.SUPPRESS) and action.dest != "help":
                assert f"(default: {action.default}" in text, (name, action.dest)  # e.g. "(default: 30, as the paper)"


def test_context_is_named_like_every_other_command(coco_root, tmp_path, capsys):
    offline = ("--teacher", "offline", "--images", "2")
    assert build(coco_root, tmp_path, "facts", *offline, "--context", "paper+facts") == 0
    assert json.loads((tmp_path / "facts" / "meta.json").read_text())["context_mode"] == "paper+facts"
    with pytest.raises(SystemExit) as caught:
        build(coco_root, tmp_path, "old", *offline, "--context-mode", "paper")
    assert caught.value.code == 2 and "--context-mode" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (("--model", "o4-mini"), "drop --model o4-mini"),
        (("--base-url", "http://127.0.0.1:1/v1"), "--base-url is for --teacher openai"),
    ],
)
def test_the_offline_teacher_is_never_recorded_as_another_model(coco_root, tmp_path, capsys, extra, said):
    """As generate: the offline teacher answers as offline-posefacts, so --model or --base-url with it is refused
    before anything is written (a build recorded as o4-mini would be priced at o4-mini's prices)."""
    assert build(coco_root, tmp_path, "x", "--teacher", "offline", "--images", "2", *extra) == 2
    assert said in _one_line(capsys)
    assert not (tmp_path / "x").exists() and not (tmp_path / "teacher.sqlite").exists()
    main(["generate", "--task", "conversation", "--coco-root", str(coco_root), "--split", "val2014", "--cache",
          str(tmp_path / "g.sqlite"), "--teacher", "offline", *extra])  # fmt: skip
    assert said in _one_line(capsys)  # generate says the same
    own = ("--model", "offline-posefacts")
    assert build(coco_root, tmp_path, "x", "--teacher", "offline", "--images", "2", *own) == 0


def test_the_help_of_max_tokens_names_only_flags_bench_build_has(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "build", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-cost" not in text and "left out of the dataset" not in text
    assert "not used as a reference" in text
    for command in (["generate"], ["batch", "submit"]):  # they do have --max-cost
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        assert "--max-cost counts the limit" in " ".join(capsys.readouterr().out.split())
