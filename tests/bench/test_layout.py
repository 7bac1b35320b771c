"""The benchmark folder and answers file, written and read back. ``make_bench`` serves the other bench tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from keypoint_instruct.bench.layout import (
    Answer,
    ImageContext,
    Question,
    Reference,
    append_jsonl,
    load_answers,
    load_bench,
    question_id,
    write_jsonl,
)
from keypoint_instruct.errors import BenchmarkError, InputNotFoundError
from keypoint_instruct.vocab import TASKS

IMAGE_IDS = (42, 73)
SIZES = {42: (64, 48), 73: (40, 56)}  # landscape and portrait


def reference_text(category: str, image_id: int) -> str:
    return f"The skier in image {image_id} bends both knees and holds the poles forward ({category})."


def make_bench(root: Path, image_ids=IMAGE_IDS) -> Path:
    """A hand-written benchmark folder: len(image_ids) images x 3 categories, real JPEGs."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    questions, references, contexts = [], [], []
    for image_id in image_ids:
        name = f"COCO_val2014_{image_id:012d}.jpg"
        Image.new("RGB", SIZES.get(image_id, (32, 32)), (200, 30 + image_id, 60)).save(root / "images" / name)
        contexts.append(
            ImageContext(image_id, name, "val2014", f"A person skis.\nperson: [0.1, 0.2, 0.5, 0.9] #{image_id}")
        )
        for category in TASKS:
            qid = question_id(category, image_id)
            questions.append(
                Question(qid, name, image_id, category, f"What does the skier do? ({category}, {image_id})")
            )
            references.append(Reference(qid, category, reference_text(category, image_id), "teacher-x", f"key-{qid}"))
    write_jsonl(root / "questions.jsonl", questions)
    write_jsonl(root / "references.jsonl", references)
    write_jsonl(root / "contexts.jsonl", contexts)
    (root / "meta.json").write_text(json.dumps({"name": "HPAUB", "coco_split": "val2014"}))
    return root


def write_answers(path: Path, texts: dict[str, str], model: str = "model-a") -> Path:
    append_jsonl(path, [Answer(qid, model, text, "openai", model) for qid, text in texts.items()])
    return path


def test_bench_reads_back(tmp_path):
    bench = load_bench(make_bench(tmp_path / "b"))
    assert len(bench.questions) == 6
    assert [q.category for q in bench.questions[:3]] == list(TASKS)
    q = bench.by_id["complex_reasoning-73"]
    assert bench.references[q.question_id].text == reference_text("complex_reasoning", 73)
    assert bench.image_path(q).is_file()
    assert bench.contexts[73].coco_split == "val2014"


def test_missing_image_is_reported(tmp_path):
    root = make_bench(tmp_path / "b")
    (root / "images" / "COCO_val2014_000000000073.jpg").unlink()
    with pytest.raises(InputNotFoundError, match="COCO_val2014_000000000073.jpg"):
        load_bench(root)


def test_missing_reference_is_reported(tmp_path):
    root = make_bench(tmp_path / "b")
    lines = (root / "references.jsonl").read_text().splitlines()
    (root / "references.jsonl").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(BenchmarkError, match="conversation-42 has no reference"):
        load_bench(root)


def test_answers_to_unknown_questions_are_refused(tmp_path):
    bench = load_bench(make_bench(tmp_path / "b"))
    path = write_answers(tmp_path / "a.jsonl", {"conversation-42": "x", "conversation-999": "y"})
    with pytest.raises(BenchmarkError, match="conversation-999"):
        load_answers(path, bench)


def test_answers_last_line_wins_and_one_model_per_file(tmp_path):
    path = write_answers(tmp_path / "a.jsonl", {"conversation-42": "first"})
    write_answers(path, {"conversation-42": "second"})
    assert load_answers(path)["conversation-42"].text == "second"
    write_answers(path, {"conversation-73": "other"}, model="model-b")
    with pytest.raises(BenchmarkError, match="several models"):
        load_answers(path)


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"question_id": "conversation-42"}\nnot json\n')
    with pytest.raises(BenchmarkError, match=r"a\.jsonl:1: missing field"):
        load_answers(path)


def _reword_first_question(root: Path) -> None:
    """What a rebuild with another teacher or context does: same images and ids, another question."""
    rows = [json.loads(line) for line in (root / "questions.jsonl").read_text().splitlines()]
    rows[0]["text"] = "How is the skier's weight distributed?"
    (root / "questions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_answers_to_another_build_of_the_questions_are_refused(tmp_path):
    root = make_bench(tmp_path / "b")
    bench = load_bench(root)
    asked = [Answer(q.question_id, "m", "x", "openai", "m", question=q.text) for q in bench.questions]
    append_jsonl(tmp_path / "a.jsonl", asked)
    assert len(load_answers(tmp_path / "a.jsonl", bench)) == 6
    _reword_first_question(root)
    with pytest.raises(BenchmarkError, match="conversation-42.*another build of the benchmark"):
        load_answers(tmp_path / "a.jsonl", load_bench(root))
    old = tmp_path / "old.jsonl"  # written before answers kept their question
    fields = {"question_id": "conversation-42", "model": "m", "text": "x", "backend": "openai", "model_path": "m"}
    old.write_text(json.dumps(fields) + "\n")
    assert load_answers(old, load_bench(root))["conversation-42"].question == ""


def test_the_fingerprint_covers_questions_references_and_contexts(tmp_path):
    root = make_bench(tmp_path / "b")
    first = load_bench(root).fingerprint
    assert first == load_bench(root).fingerprint and len(first) == 16
    _reword_first_question(root)
    second = load_bench(root).fingerprint
    assert second != first
    references = (root / "references.jsonl").read_text()
    (root / "references.jsonl").write_text(references.replace("bends both knees", "kneels", 1))
    assert load_bench(root).fingerprint not in (first, second)


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\xff\xfe"  # not UTF-8, no newline at its end


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "fig1.png").write_bytes(PNG)
    (tmp_path / "a-folder").mkdir()
    return {"image": tmp_path / "fig1.png", "folder": tmp_path / "a-folder"}


def _one_line(capsys, *names: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert all(name in err for name in names), err


@pytest.mark.parametrize("bad", ["image", "folder"])
def test_a_user_file_that_is_an_image_or_a_folder_is_one_line_naming_it(tmp_path, capsys, bad):
    """bench judge --answers, bench report's RESULT.json, bench answer --out and --chat-template, the bench folder's
    own files: an image (not UTF-8) or a folder given for one is one line naming it, exit 2, never a traceback."""
    from keypoint_instruct.cli import main

    bench = make_bench(tmp_path / "bench")
    path = _bad_files(tmp_path)[bad]
    out = str(tmp_path / "r.json")
    judge = ["bench", "judge", "--bench", str(bench), "--cache", str(tmp_path / "j.sqlite"), "--out", out]
    assert main([*judge, "--answers", str(path), "--judge-model", "offline-overlap"]) == 2
    _one_line(capsys, path.name)
    assert main(["bench", "report", str(path), "--out", str(tmp_path / "rep")]) == 2
    _one_line(capsys, path.name)
    answer = ["bench", "answer", "--bench", str(bench), "--model", "m", "--backend"]
    assert main([*answer, "hf", "--out", str(tmp_path / "a.jsonl"), "--chat-template", str(path)]) == 2
    _one_line(capsys, path.name)
    if bad == "image":  # never cut as if a killed run had torn its last line
        assert main([*answer, "openai", "--base-url", "http://127.0.0.1:9/v1", "--out", str(path)]) == 2
        _one_line(capsys, path.name)
        assert path.read_bytes() == PNG
    write_answers(tmp_path / "answers.jsonl", {"conversation-42": "x"})
    for name in ("questions.jsonl", "meta.json"):
        broken = make_bench(tmp_path / f"broken-{name}")
        (broken / name).unlink()
        if bad == "image":
            (broken / name).write_bytes(PNG)
        else:
            (broken / name).mkdir()
        judge[3] = str(broken)
        assert main([*judge, "--answers", str(tmp_path / "answers.jsonl"), "--judge-model", "offline-overlap"]) == 2
        _one_line(capsys, str(broken / name))
    judge[3] = str(path)  # --bench itself
    assert main([*judge, "--answers", str(tmp_path / "answers.jsonl"), "--judge-model", "offline-overlap"]) == 2
    _one_line(capsys, path.name)


def test_meta_json_that_is_not_an_object_is_one_line(tmp_path):
    bench = make_bench(tmp_path / "bench")
    (bench / "meta.json").write_text("[1, 2]")
    with pytest.raises(BenchmarkError, match="meta.json: not a JSON object"):
        load_bench(bench)
    (bench / "meta.json").write_text("{")
    with pytest.raises(BenchmarkError, match="meta.json: not JSON"):
        load_bench(bench)


def test_an_answer_with_a_unicode_line_separator_reads_back_whole(tmp_path):
    """JSON lines end at \\n only: U+2028 in an answer (json.dumps keeps it raw) is part of the line."""
    bench = load_bench(make_bench(tmp_path / "bench"))
    write_answers(tmp_path / "a.jsonl", {"conversation-42": "one\u2028two\u0085three"})
    assert load_answers(tmp_path / "a.jsonl", bench)["conversation-42"].text == "one\u2028two\u0085three"
