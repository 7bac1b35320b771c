"""HPAUB scores from judge results: the paper's Tables 4 and 5, with bootstrap intervals, and a bar chart.

Per model and category, on judged questions only (excluded and unanswered ones are counted, never scored):
``score`` = mean judge score of the model x 10 (the paper's scale); ``relative`` = mean model score / mean reference
score x 100 (LLaVA-Bench's relative score). ``All`` = mean of the three categories. Improvement over the baseline =
All(model) / All(baseline) - 1, in percent (the paper: 59.11 / 48.78 - 1 = 21.18%). Intervals are percentile
bootstrap 95% intervals over questions, resampled within each category with a fixed seed; the improvement's interval
resamples the questions both models were judged on, the same draw for both.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keypoint_instruct.bench.decontam import report_header
from keypoint_instruct.bench.judge import JudgeResult
from keypoint_instruct.bench.layout import CATEGORY_TITLES
from keypoint_instruct.bench.report_html import write_report_html
from keypoint_instruct.errors import BenchmarkError
from keypoint_instruct.vocab import ALL, OFFLINE_JUDGE_MODEL, TASKS

log = logging.getLogger(__name__)

COLUMNS = (*TASKS, ALL)
TITLES = {**CATEGORY_TITLES, ALL: "All"}


@dataclass
class ModelScores:
    model: str
    judge_label: str
    score: dict[str, float] = field(default_factory=dict)
    score_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    relative: dict[str, float] = field(default_factory=dict)
    relative_ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    improvement: float | None = None  # percent over the baseline's All score
    improvement_ci: tuple[float, float] | None = None


def _pairs(result: JudgeResult) -> dict[str, dict[str, tuple[float, float]]]:
    """Judged (reference, model) scores by category and question id."""
    out: dict[str, dict[str, tuple[float, float]]] = {c: {} for c in TASKS}
    for j in result.judgements:
        if j.status == "judged":
            out[j.category][j.question_id] = (float(j.reference_score), float(j.model_score))
    return out


def _interval(samples: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(low), float(high)


def _category_draws(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap draws of row indices: (resamples, n)."""
    return rng.integers(0, len(values), size=(resamples, len(values)))


def score_model(result: JudgeResult, *, resamples: int = 2000, seed: int = 0) -> ModelScores:
    """Scores, relative scores and their bootstrap intervals of one judge result."""
    rng = np.random.default_rng(seed)
    pairs = _pairs(result)
    scores = ModelScores(model=result.model, judge_label=result.judge_label, counts=result.counts())
    boot_score, boot_rel = [], []
    for category in TASKS:
        values = np.array(list(pairs[category].values()), dtype=float).reshape(-1, 2)
        if len(values) == 0:
            raise BenchmarkError(
                f"model {result.model!r}: no judged question in category {category!r}; "
                "nothing to score (are all its answers excluded or missing?)"
            )
        ref, mod = values[:, 0], values[:, 1]
        scores.score[category] = float(mod.mean() * 10)
        scores.relative[category] = float(mod.mean() / ref.mean() * 100)
        idx = _category_draws(values, resamples, rng)
        b_score = mod[idx].mean(axis=1) * 10
        b_rel = mod[idx].mean(axis=1) / ref[idx].mean(axis=1) * 100
        scores.score_ci[category] = _interval(b_score)
        scores.relative_ci[category] = _interval(b_rel)
        boot_score.append(b_score)
        boot_rel.append(b_rel)
    scores.score[ALL] = float(np.mean([scores.score[c] for c in TASKS]))
    scores.relative[ALL] = float(np.mean([scores.relative[c] for c in TASKS]))
    scores.score_ci[ALL] = _interval(np.mean(boot_score, axis=0))
    scores.relative_ci[ALL] = _interval(np.mean(boot_rel, axis=0))
    return scores


def improvement_interval(
    model: JudgeResult, baseline: JudgeResult, *, resamples: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """Paired bootstrap interval of All(model) / All(baseline) - 1 (percent) over questions judged for both."""
    rng = np.random.default_rng(seed)
    mine, theirs = _pairs(model), _pairs(baseline)
    ours, base = [], []
    for category in TASKS:
        shared = sorted(set(mine[category]) & set(theirs[category]))
        if not shared:
            return None
        a = np.array([mine[category][q][1] for q in shared])
        b = np.array([theirs[category][q][1] for q in shared])
        idx = rng.integers(0, len(shared), size=(resamples, len(shared)))
        ours.append(a[idx].mean(axis=1))
        base.append(b[idx].mean(axis=1))
    ratio = np.mean(ours, axis=0) / np.mean(base, axis=0) - 1
    return _interval(ratio * 100)


def _builds(results: list[JudgeResult]) -> dict[str, str]:
    """Which build of the benchmark each result was judged on: its fingerprint, or (results written before
    fingerprints were kept) how the build was made."""
    if all(r.bench_fingerprint for r in results):
        return {r.model: f"build {r.bench_fingerprint}" for r in results}
    return {r.model: "built with " + json.dumps(r.bench_meta, sort_keys=True) for r in results}


def build_report(
    results: list[JudgeResult], *, baseline: str | None = None, resamples: int = 2000, seed: int = 0
) -> list[ModelScores]:
    """Score every result; with ``baseline`` (a model name), add each model's improvement over it."""
    names = [r.model for r in results]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise BenchmarkError(f"several results for model(s) {', '.join(dup)}: give each model one RESULT.json")
    question_sets = {frozenset(j.question_id for j in r.judgements) for r in results}
    if len(question_sets) > 1:
        raise BenchmarkError("the results come from different benchmarks (their question ids differ)")
    builds = _builds(results)
    if len(set(builds.values())) > 1:
        shown = "; ".join(f"{name}: {build}" for name, build in builds.items())
        raise BenchmarkError(
            f"the results come from different builds of the benchmark ({shown}): the same question ids with other "
            "questions or references; judge every model's answers on one build"
        )
    if baseline is not None and baseline not in names:
        raise BenchmarkError(f"baseline {baseline!r} is not among the results' models: {', '.join(names)}")
    scored = [score_model(r, resamples=resamples, seed=seed) for r in results]
    if baseline is not None:
        base_result = results[names.index(baseline)]
        base = scored[names.index(baseline)]
        for result, scores in zip(results, scored, strict=True):
            scores.improvement = (scores.score[ALL] / base.score[ALL] - 1) * 100
            if result is not base_result:
                scores.improvement_ci = improvement_interval(result, base_result, resamples=resamples, seed=seed)
    return scored


def _best(scored: list[ModelScores], attr: str, column: str, value: float) -> bool:
    return len(scored) > 1 and value == max(getattr(o, attr)[column] for o in scored)


def _table(scored: list[ModelScores], attr: str, baseline: str | None = None, intervals: bool = False) -> list[str]:
    """One row per model, the categories and All as columns: the paper's layout (best value in bold)."""
    header = ["Model", *(TITLES[c] for c in COLUMNS)]
    if baseline:
        header.append(f"vs {baseline}")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in scored:
        values, cis = getattr(s, attr), getattr(s, f"{attr}_ci")
        row = [s.model]
        for c in COLUMNS:
            if intervals:
                row.append(f"[{cis[c][0]:.2f}, {cis[c][1]:.2f}]")
            else:
                row.append(f"**{values[c]:.2f}**" if _best(scored, attr, c, values[c]) else f"{values[c]:.2f}")
        if baseline:
            if s.model == baseline:
                row.append("baseline")
            elif intervals:
                ci = s.improvement_ci
                row.append(f"[{ci[0]:+.2f}%, {ci[1]:+.2f}%]" if ci else "n/a")
            else:
                row.append(f"{s.improvement:+.2f}%")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _verdict(s: ModelScores, baseline: str) -> str:
    """One sentence on a model's improvement over the baseline and whether its interval rules out no change."""
    ci = s.improvement_ci
    if ci is None:
        return f"- {s.model}: {s.improvement:+.2f}% over {baseline}; no question was judged for both, so no interval."
    if ci[0] > 0:
        verdict = "above 0: the judge prefers this model's answers on the whole, beyond question-sampling noise"
    elif ci[1] < 0:
        verdict = "below 0: the judge prefers the baseline's answers, beyond question-sampling noise"
    else:
        verdict = "it includes 0: with this many questions the difference could be question-sampling noise"
    interval = f"95% interval [{ci[0]:+.2f}%, {ci[1]:+.2f}%]"
    return f"- {s.model}: {s.improvement:+.2f}% over {baseline}, {interval}; {verdict}."


def _how_to_read(scored: list[ModelScores], results: list[JudgeResult], baseline: str | None) -> list[str]:
    """What the figures mean, written for the numbers of this report."""
    judged = sorted({s.counts[c]["judged"] for s in scored for c in TASKS})
    per_category = f"{judged[0]}" if len(judged) == 1 else f"{judged[0]} to {judged[-1]}"
    widest = max((s.score_ci[c][1] - s.score_ci[c][0]) / 2 for s in scored for c in TASKS)
    lines = [
        "## How to read these figures",
        "",
        "- **Score**: the judge grades every answer from 1 to 10; a category's score is the mean grade of the model's "
        "answers x 10 (so 10 to 100). This is the scale of the paper's Tables 4 and 5, where LLaVA-1.5-7B scores "
        "35.75 / 38.50 / 72.08 and the model fine-tuned on the full keypoint data 43.67 / 67.00 / 66.67.",
        "- **All**: the plain mean of the three category scores (the paper: 48.78 = mean(35.75, 38.50, 72.08)), "
        "not the mean over all questions.",
        "- **Relative score**: in the same judgement the judge also grades the reference answer (the teacher's, shown "
        "first); the relative score is the model's mean grade as a percentage of the reference's (LLaVA-Bench's "
        "headline figure). 100 means as good as the teacher's answer in this judge's eyes.",
        "- **Improvement** (`vs` column): All(model) / All(baseline) - 1, the paper's 59.11 / 48.78 - 1 = +21.18%.",
        f"- **Intervals**: 95% percentile bootstrap over the questions ({per_category} judged per "
        f"category here; the widest category interval is +/-{widest:.1f} points). They show how much the figures "
        "would move with another draw of images of the same kind; they do not cover the judge's own randomness or "
        "bias. Overlapping category intervals do not prove two models equal; the paired interval of the improvement "
        "is the one to read for 'is this model better than the baseline'.",
        "- **Excluded** questions (the judge's reply could not be read, even after one retry) and **unanswered** "
        "ones are counted below and left out of every mean; they are never scored as 0 or -1.",
    ]
    if baseline is not None:
        lines += ["", f"Against the baseline {baseline}:", ""]
        lines += [_verdict(s, baseline) for s in scored if s.model != baseline]
    offline = [r.judge_label for r in results if r.judge_model == OFFLINE_JUDGE_MODEL]
    if offline:
        lines += [
            "",
            f"**Judge {OFFLINE_JUDGE_MODEL} is not GPT-4o.** It grades an answer by how many of the reference's "
            "words it shares (the reference always gets 10, so score and relative score coincide); it says "
            "nothing about whether an answer is right. These figures only show that the pipeline runs; do not "
            "compare them with the paper's.",
        ]
    else:
        lines += [
            "",
            "Even with GPT-4o as the judge, these figures compare the models of this report with each other. They are "
            "not directly comparable with the paper's numbers: the 30 images, the questions and the reference answers "
            "come from this run's draw and teacher, not the paper's.",
        ]
    return lines + [""]


def render_markdown(
    scored: list[ModelScores], results: list[JudgeResult], baseline: str | None, resamples: int
) -> str:
    judges = sorted({r.judge_label for r in results})
    rubrics = ", ".join(sorted({r.rubric_version for r in results}))
    lines = ["# HPAUB results", "", f"Judge: {'; '.join(judges)}. Rubric version: {rubrics}.", ""]
    lines += report_header(results)  # a benchmark built with --allow-training-overlap says so (bench.decontam)
    if len(judges) > 1:
        lines += ["**Warning: these results were graded by different judges; their scores are not comparable.**", ""]
    if len({r.rubric_version for r in results}) > 1:
        lines += [
            "**Warning: these results were graded with different judge rubrics (prompts/judge/ changed between "
            "them); their scores are not comparable: judge them again with one version.**",
            "",
        ]
    lines += [
        "## Score (mean judge score x 10; layout of the paper's Tables 4 and 5)",
        "",
        *_table(scored, "score", baseline),
        "",
        f"95% bootstrap intervals ({resamples} resamples of the questions within each category; the improvement's "
        "interval resamples the questions both models were judged on):",
        "",
        *_table(scored, "score", baseline, intervals=True),
        "",
        "## Relative score (mean model score / mean reference score x 100)",
        "",
        *_table(scored, "relative"),
        "",
        *_table(scored, "relative", intervals=True),
        "",
        "## Questions judged / excluded (judge reply unreadable after one retry, or none) / unanswered",
        "",
        "| Model | " + " | ".join(CATEGORY_TITLES[c] for c in TASKS) + " |",
        "|" + "---|" * (len(TASKS) + 1),
    ]
    for s in scored:
        cells = [f"{s.counts[c]['judged']} / {s.counts[c]['excluded']} / {s.counts[c]['unanswered']}" for c in TASKS]
        lines.append(f"| {s.model} | " + " | ".join(cells) + " |")
    lines += ["", *_how_to_read(scored, results, baseline)]
    return "\n".join(lines).rstrip("\n") + "\n"


def plot(scored: list[ModelScores], path: Path, title: str) -> None:
    """Grouped bars: one group per category and All, one bar per model, with the 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / len(scored)
    x = np.arange(len(COLUMNS))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(COLUMNS) + 0.6 * len(scored)), 4.2), dpi=120)
    for i, s in enumerate(scored):
        values = np.array([s.score[c] for c in COLUMNS])
        low = values - np.array([s.score_ci[c][0] for c in COLUMNS])
        high = np.array([s.score_ci[c][1] for c in COLUMNS]) - values
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, values, width, label=s.model, yerr=[low, high], capsize=3)
        for px, v in zip(pos, values, strict=True):
            ax.text(px, 1.5, f"{v:.1f}", ha="center", va="bottom", fontsize=7, rotation=90, color="white")
    ax.set_xticks(x, [TITLES[c] for c in COLUMNS])
    ax.set_ylabel("score (mean judge score x 10)")
    ax.set_ylim(0, 105)
    ax.set_title(f"{title}\nerror bars: 95% bootstrap intervals over questions", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(
    results: list[JudgeResult], out: str | Path, *, baseline: str | None = None, resamples: int = 2000, seed: int = 0
) -> list[ModelScores]:
    """Write report.md, report.json, report.png and report.html (with its images/) into ``out``; return the scores."""
    if resamples < 100:
        raise BenchmarkError(f"--resamples {resamples} is too few for a 95% interval (use 1000 or more)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scored = build_report(results, baseline=baseline, resamples=resamples, seed=seed)
    report_md = render_markdown(scored, results, baseline, resamples)
    (out / "report.md").write_text(report_md, encoding="utf-8")
    data = {"baseline": baseline, "resamples": resamples, "seed": seed, "models": [s.__dict__ for s in scored]}
    (out / "report.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    judges = "; ".join(sorted({r.judge_label for r in results}))
    plot(scored, out / "report.png", f"HPAUB - judge: {judges}")
    write_report_html(results, out, report_md, baseline=baseline)
    log.info(
        "wrote %s, %s, %s and %s", out / "report.md", out / "report.json", out / "report.png", out / "report.html"
    )
    return scored
