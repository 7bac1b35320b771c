"""report.html: the report's tables and chart, and every question with each model's answer and the judge's scores."""

from __future__ import annotations

import json
import logging
import re
import shutil

import pytest

from keypoint_instruct.bench.judge import read_result
from keypoint_instruct.bench.layout import load_bench
from keypoint_instruct.bench.report import write_report
from tests.pages import VAGUE_ANSWER, hpaub_report


@pytest.fixture(scope="module")
def report(coco_root, tmp_path_factory):
    return hpaub_report(coco_root, tmp_path_factory.mktemp("hpaub"))


def test_the_judge_keeps_the_answer_it_judged(report):
    result = read_result(report.parent / "result_vague.json")
    assert {j.answer for j in result.judgements} == {VAGUE_ANSWER}


def test_the_page_holds_the_tables_and_the_chart(report):
    page = (report / "report.html").read_text()
    md = (report / "report.md").read_text()
    assert '<img class="chart" src="report.png"' in page and (report / "report.png").is_file()
    tables = [line for line in md.splitlines() if line.startswith("|---")]
    assert page.count("<table") == len(tables) == 5
    for line in md.splitlines():
        if line.startswith("| ") and "**" not in line:
            cell = line.split("|")[2].strip()
            assert f"<td>{cell}</td>" in page or f"<th>{cell}</th>" in page
    assert "<td><strong>" in page and "<th>vs vague</th>" in page
    assert "NOT GPT-4o" in page
    assert "http://" not in page and "https://" not in page


def test_one_section_per_question_with_every_answer_and_both_scores(report):
    page = (report / "report.html").read_text()
    bench = load_bench(report.parent / "hpaub")
    sections = re.findall(r'<section class="question" id="([^"]+)" data-order="(\d+)" data-category="(\w+)"', page)
    assert [(qid, cat) for qid, _, cat in sections] == [(q.question_id, q.category) for q in bench.questions]
    echo = {j.question_id: j for j in read_result(report.parent / "result_echo.json").judgements}
    for q in bench.questions:
        start = page.index(f'id="{q.question_id}"')
        section = page[start : page.index("</section>", start)]
        assert f'<img src="images/{q.image}"' in section and (report / "images" / q.image).is_file()
        assert q.text.replace("'", "&#x27;") in section
        assert bench.references[q.question_id].text.replace("'", "&#x27;") in section
        assert "A person is in the picture &lt;doing&gt; things: zzz" in section  # escaped, never markup
        j = echo[q.question_id]
        assert f'data-score-0="{j.model_score:g}"' in section  # models in the order given to `bench report`
        assert f"the reference got {j.reference_score:g} in the same judgement" in section
        assert "token F1 of Assistant 2 with Assistant 1" in section  # the judge's explanation


def test_a_result_without_answers_or_bench_says_what_is_missing(report, tmp_path, caplog):
    results = []
    for name in ("vague", "echo"):
        data = json.loads((report.parent / f"result_{name}.json").read_text())
        for j in data["judgements"]:
            j.pop("answer")  # written before answers were kept
        data["bench"] = str(tmp_path / "moved")
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        results.append(read_result(path))
    with caplog.at_level(logging.WARNING):
        write_report(results, tmp_path / "out", baseline="vague", resamples=200)
    page = (tmp_path / "out" / "report.html").read_text()
    assert "could not be read" in page and "moved" in caplog.text
    assert "the answer is not in this RESULT.json" in page
    assert page.count('<section class="question"') == 18 and "<img src=" not in page.split('id="questions"')[1]


def test_a_rewrite_keeps_its_images(report, tmp_path):
    copy = shutil.copytree(report, tmp_path / "again")
    results = [read_result(report.parent / f"result_{n}.json") for n in ("vague", "echo")]
    write_report(results, copy, baseline="vague", resamples=200)
    assert sorted(p.name for p in (copy / "images").iterdir()) == sorted(p.name for p in (report / "images").iterdir())


def test_control_characters_of_an_answer_never_reach_the_page(report, tmp_path):
    """A model's answer with NUL bytes and an escape sequence: report.html stays text (`grep` reads it)."""
    results = []
    for name in ("vague", "echo"):
        data = json.loads((report.parent / f"result_{name}.json").read_text())
        for j in data["judgements"]:
            j["answer"] = "standing\x00\x00 on one leg \x1b[31mred\x1b[0m"
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        results.append(read_result(path))
    write_report(results, tmp_path / "out", baseline="vague", resamples=200)
    page = (tmp_path / "out" / "report.html").read_bytes()
    assert b"\x00" not in page and b"\x1b" not in page
    assert "standing\ufffd\ufffd on one leg \ufffd[31mred".encode() in page
