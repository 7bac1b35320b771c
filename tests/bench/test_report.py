"""HPAUB report: scores, All, relative scores, improvement and intervals against hand-computed values."""

from __future__ import annotations

import dataclasses
import json

import pytest
from PIL import Image

from keypoint_instruct.bench.judge import Judgement, JudgeResult, read_result
from keypoint_instruct.bench.report import ALL, build_report, write_report
from keypoint_instruct.cli import main
from keypoint_instruct.errors import BenchmarkError

# (reference score, model score) per question, two judged questions per category.
MODEL_A = {
    "conversation": [(8, 4), (8, 3)],  # mean 3.5 -> 35.00; relative 3.5 / 8 = 43.75
    "detailed_description": [(10, 6), (6, 2)],  # mean 4 -> 40.00; relative 4 / 8 = 50.00
    "complex_reasoning": [(9, 7), (7, 9)],  # mean 8 -> 80.00; relative 8 / 8 = 100.00
}
MODEL_B = {
    "conversation": [(8, 3), (8, 3)],  # 30
    "detailed_description": [(10, 4), (6, 2)],  # 30
    "complex_reasoning": [(9, 6), (7, 6)],  # 60
}


def make_result(model: str, table: dict, *, excluded: int = 0, label: str = "gpt-4o-2024-08-06") -> JudgeResult:
    judgements = []
    for category, pairs in table.items():
        for i, (ref, mod) in enumerate(pairs):
            judgements.append(
                Judgement(
                    f"{category}-{i}", category, i, "judged", float(ref), float(mod), 1, (f"k{i}",), f"{ref} {mod}"
                )
            )
    for i in range(excluded):  # never scored, only counted
        judgements.append(Judgement(f"conversation-x{i}", "conversation", 100 + i, "excluded", None, None, 2, (), "?"))
    return JudgeResult(model, "gpt-4o-2024-08-06", label, "rubric1", "bench", {}, tuple(judgements))


def test_scores_all_relative_and_improvement_match_hand_computation():
    a = make_result("model-a", MODEL_A, excluded=1)
    b = make_result("model-b", MODEL_B, excluded=1)
    scored = {s.model: s for s in build_report([a, b], baseline="model-b", resamples=500)}
    sa, sb = scored["model-a"], scored["model-b"]
    assert sa.score == pytest.approx(
        {"conversation": 35.0, "detailed_description": 40.0, "complex_reasoning": 80.0, ALL: 155 / 3}
    )
    assert sa.relative == pytest.approx(
        {"conversation": 43.75, "detailed_description": 50.0, "complex_reasoning": 100.0, ALL: 193.75 / 3}
    )
    assert sb.score[ALL] == pytest.approx(40.0)
    assert sa.improvement == pytest.approx((155 / 3 / 40 - 1) * 100)  # 29.17 %
    assert sb.improvement == pytest.approx(0.0)
    assert sa.counts["conversation"] == {"judged": 2, "excluded": 1, "unanswered": 0}


def test_paper_improvement_formula():
    # Table 4: All = mean of the categories; 59.11 / 48.78 - 1 = 21.18 %
    base = {"conversation": [(10, 3.575)], "detailed_description": [(10, 3.85)], "complex_reasoning": [(10, 7.2083)]}
    full = {"conversation": [(10, 4.367)], "detailed_description": [(10, 6.7)], "complex_reasoning": [(10, 6.667)]}
    scored = build_report([make_result("full", full), make_result("llava", base)], baseline="llava", resamples=200)
    assert scored[1].score[ALL] == pytest.approx(48.78, abs=0.01)
    assert scored[0].score[ALL] == pytest.approx(59.11, abs=0.01)
    assert scored[0].improvement == pytest.approx(21.18, abs=0.02)


def test_bootstrap_intervals_are_seeded_and_bracket_the_score():
    a = make_result("model-a", MODEL_A)
    first = build_report([a], resamples=1000, seed=3)[0]
    again = build_report([a], resamples=1000, seed=3)[0]
    assert first.score_ci == again.score_ci
    for column, (low, high) in first.score_ci.items():
        assert low <= first.score[column] <= high
    # two distinct values 3 and 4: the resampled mean spans [30, 40]
    assert first.score_ci["conversation"] == pytest.approx((30.0, 40.0))
    b = make_result("b", {c: [(8, 5), (8, 5)] for c in MODEL_A})
    assert build_report([b], resamples=200)[0].score_ci[ALL] == pytest.approx((50.0, 50.0))


def test_bad_combinations_are_refused():
    a = make_result("model-a", MODEL_A)
    with pytest.raises(BenchmarkError, match="baseline 'nope'"):
        build_report([a], baseline="nope")
    with pytest.raises(BenchmarkError, match="several results"):
        build_report([a, make_result("model-a", MODEL_B)])
    empty = make_result("e", {"conversation": [(8, 4)], "detailed_description": [(8, 4)]})
    with pytest.raises(BenchmarkError, match="complex_reasoning"):
        build_report([empty])


def test_report_command_writes_table_json_and_chart(tmp_path, capsys):
    paths = []
    for name, table in (("model-a", MODEL_A), ("model-b", MODEL_B)):
        result = make_result(name, table, excluded=1)
        result.write(tmp_path / f"{name}.json")
        assert read_result(tmp_path / f"{name}.json") == result
        paths.append(str(tmp_path / f"{name}.json"))
    assert main(["bench", "report", *paths, "--baseline", "model-b", "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    md = (tmp_path / "rep" / "report.md").read_text()
    assert out.startswith(md)
    row = next(line for line in md.splitlines() if line.startswith("| model-a") and "%" in line)
    assert "**35.00**" in row and "**51.67**" in row and "+29.17%" in row
    assert "| model-b | 30.00" in md and "baseline" in md
    assert "| model-a | 2 / 1 / 0 |" in md
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["models"][0]["score"]["all"] == pytest.approx(155 / 3)
    with Image.open(tmp_path / "rep" / "report.png") as png:
        assert png.format == "PNG" and png.size[0] > 300


def test_report_cli_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{}")
    assert main(["bench", "report", str(tmp_path / "bad.json"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "bad.json" in err
    assert main(["bench", "report", str(tmp_path / "missing.json"), "--out", str(tmp_path / "r")]) == 2
    assert "missing.json" in capsys.readouterr().err


# The paper's Table 4 (LLaVA-1.5-7B baseline and four fine-tuned models). Every cell is k / 12 for an integer k, so the
# table can be reproduced exactly from 120 integer grades per category (the paper's 30 questions judged 4 times):
# the grade sums below give the printed values, e.g. 429 / 120 x 10 = 35.75.
TABLE_4_SUMS = {
    "Full data": (524, 804, 800),
    "Conversation": (540, 388, 464),
    "Detailed description": (724, 740, 776),
    "Complex reasoning": (576, 668, 972),
    "LLaVA-1.5-7B": (429, 462, 865),
}
TABLE_4_ROWS = [
    "| Full data | 43.67 | **67.00** | 66.67 | 59.11 | +21.18% |",
    "| Conversation | 45.00 | 32.33 | 38.67 | 38.67 | -20.73% |",
    "| Detailed description | **60.33** | 61.67 | 64.67 | **62.22** | +27.56% |",
    "| Complex reasoning | 48.00 | 55.67 | **81.00** | 61.56 | +26.20% |",
    "| LLaVA-1.5-7B | 35.75 | 38.50 | 72.08 | 48.78 | baseline |",
]


def _grades(total: int, n: int = 120) -> list[tuple[int, int]]:
    """n (reference, model) grades whose model grades sum to ``total``, each 1..10."""
    low, extra = divmod(total, n)
    return [(9, low + 1 if i < extra else low) for i in range(n)]


def test_report_reproduces_the_papers_table_4(tmp_path):
    results = [
        make_result(name, {c: _grades(total) for c, total in zip(MODEL_A, sums, strict=True)})
        for name, sums in TABLE_4_SUMS.items()
    ]
    write_report(results, tmp_path, baseline="LLaVA-1.5-7B", resamples=200)
    md = (tmp_path / "report.md").read_text()
    for row in TABLE_4_ROWS:  # the paper's numbers and its bold marks, cell by cell
        assert row in md
    # the improvement the paper quotes: 59.11 / 48.78 - 1 = 21.18 %, and no interval for the baseline itself
    scores = {s["model"]: s for s in json.loads((tmp_path / "report.json").read_text())["models"]}
    assert scores["Full data"]["improvement"] == pytest.approx((2128 / 1756 - 1) * 100)  # sums of the grade sums
    assert scores["LLaVA-1.5-7B"]["improvement_ci"] is None


def test_report_explains_the_figures_and_says_when_a_difference_is_noise(tmp_path):
    same = {c: [(8, 5), (8, 6), (8, 5), (8, 6)] for c in MODEL_A}
    better = {c: [(8, 9), (8, 9), (8, 8), (8, 9)] for c in MODEL_A}
    close = {c: [(8, 6), (8, 5), (8, 5), (8, 6)] for c in MODEL_A}
    results = [make_result("base", same), make_result("better", better), make_result("close", close)]
    write_report(results, tmp_path, baseline="base", resamples=500)
    md = (tmp_path / "report.md").read_text()
    explained = md[md.index("## How to read these figures") :]
    for term in ("**Score**", "**All**", "**Relative score**", "**Improvement**", "**Intervals**", "**Excluded**"):
        assert term in explained
    assert "4 judged per category" in explained
    better_line = next(line for line in explained.splitlines() if line.startswith("- better:"))
    close_line = next(line for line in explained.splitlines() if line.startswith("- close:"))
    assert "above 0" in better_line and "+0.00%" in close_line and "includes 0" in close_line
    assert "not GPT-4o" not in explained and "not directly comparable with the paper" in explained

    offline = make_result("offline", same, label="offline-overlap (NOT GPT-4o)")
    offline = dataclasses.replace(offline, judge_model="offline-overlap")
    write_report([offline], tmp_path / "off", resamples=200)
    assert "**Judge offline-overlap is not GPT-4o.**" in (tmp_path / "off" / "report.md").read_text()


def test_results_of_different_builds_of_the_benchmark_are_not_compared(tmp_path, capsys):
    """Same question ids (same images and seed) but another teacher: other questions and references."""
    a = dataclasses.replace(make_result("model-a", MODEL_A), bench_fingerprint="1111")
    b = dataclasses.replace(make_result("model-b", MODEL_B), bench_fingerprint="2222")
    with pytest.raises(BenchmarkError, match="different builds of the benchmark"):
        build_report([a, b], baseline="model-b")
    assert len(build_report([a, dataclasses.replace(b, bench_fingerprint="1111")])) == 2
    c = dataclasses.replace(make_result("model-c", MODEL_B), bench_meta={"teacher_model": "offline-posefacts"})
    with pytest.raises(BenchmarkError, match="different builds of the benchmark"):
        build_report([make_result("model-a", MODEL_A), c])  # results written before fingerprints: meta differs
    for result in (a, b):
        result.write(tmp_path / f"{result.model}.json")
        assert read_result(tmp_path / f"{result.model}.json") == result
    paths = [str(tmp_path / "model-a.json"), str(tmp_path / "model-b.json")]
    assert main(["bench", "report", *paths, "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different builds" in err and "model-a" in err and "1111" in err
    assert not (tmp_path / "rep" / "report.md").exists()


def test_results_graded_with_different_rubrics_or_judges_carry_a_warning(tmp_path):
    a = make_result("model-a", MODEL_A)
    b = dataclasses.replace(make_result("model-b", MODEL_B), rubric_version="rubric2")
    write_report([a, b], tmp_path / "rubrics", resamples=200)
    md = (tmp_path / "rubrics" / "report.md").read_text()
    assert "different judge rubrics" in md and "not comparable" in md
    write_report(
        [a, make_result("model-b", MODEL_B, label="gpt-4o at http://x/v1")], tmp_path / "judges", resamples=200
    )
    assert "different judges" in (tmp_path / "judges" / "report.md").read_text()
    write_report([a, make_result("model-b", MODEL_B)], tmp_path / "same", resamples=200)
    assert "not comparable" not in (tmp_path / "same" / "report.md").read_text()
