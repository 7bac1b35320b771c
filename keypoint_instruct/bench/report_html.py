"""``report.html``: the HPAUB report as one page, with every question's answers side by side (the paper's Table 3).

The page holds the tables of ``report.md`` and the chart, then one section per question: the image, the question,
the reference answer, and each model's answer with the judge's two scores (reference, answer) and its explanation.
Sections can be filtered by category and sorted by category or by the score difference between two models chosen
on the page (script in ``assets/report.js``, inlined: the page opens from ``file://``). The benchmark's images are
copied into ``images/`` beside the page so the report folder can be shared alone.

Questions, references and images come from the benchmark folder named in the results (``bench``); answers come
from the results themselves (``bench judge`` keeps the answer it judged). What is missing is said on the page.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from keypoint_instruct.bench.judge import Judgement, JudgeResult
from keypoint_instruct.bench.layout import CATEGORY_TITLES, Bench, load_bench
from keypoint_instruct.errors import KeypointInstructError
from keypoint_instruct.review.html import asset, document, esc, markdown, write_page
from keypoint_instruct.vocab import TASKS

log = logging.getLogger(__name__)

IMAGES = "images"


def _bench(results: list[JudgeResult]) -> tuple[Bench | None, str]:
    """The benchmark folder the results were judged on, or None and why it cannot be read."""
    where = results[0].bench
    try:
        return load_bench(where), ""
    except (KeypointInstructError, OSError) as err:
        log.warning(
            "report.html: benchmark folder %s cannot be read (%s); questions and images are left out", where, err
        )
        return (
            None,
            f"The benchmark folder {where} could not be read ({err}): questions, references and images are not shown.",
        )


def _copy_image(bench: Bench, name: str, out: Path) -> str | None:
    source = bench.root / "images" / name
    if not source.is_file():
        return None
    target = out / IMAGES / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_file() or target.stat().st_size != source.stat().st_size:
        shutil.copyfile(source, target)
    return f"{IMAGES}/{name}"


def _explanation(j: Judgement) -> str:
    """The judge's reply without its first line (the two scores) when it was judged; all of it otherwise."""
    text = j.judge_text or ""
    if j.status == "judged":
        lines = text.strip().splitlines()
        text = "\n".join(lines[1:]).strip()
    return text


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _answer_card(index: int, result: JudgeResult, j: Judgement | None, baseline: str | None) -> str:
    name = esc(result.model) + (" <small>(baseline)</small>" if result.model == baseline else "")
    if j is None:
        return f'<div class="answer"><h4>{name}</h4><p class="why">not in this result</p></div>'
    if j.status == "judged":
        scores = (
            f'<span class="score" title="the judge\'s score of this answer, 1-10">{_score(j.model_score)}</span>'
            f'<span class="meta">/ 10; the reference got {_score(j.reference_score)} in the same judgement</span>'
        )
    else:
        scores = f'<span class="badge dropped">{esc(j.status)}{": " + esc(j.reason) if j.reason else ""}</span>'
    answer = (
        f'<p class="text">{esc(j.answer)}</p>'
        if j.answer
        else '<p class="why">the answer is not in this RESULT.json (written before answers were kept: run '
        "<code>bench judge</code> again, its replies are cached)</p>"
        if j.status != "unanswered"
        else '<p class="why">no answer</p>'
    )
    explanation = _explanation(j)
    judge = f'<p class="judge"><b>Judge:</b> {esc(explanation)}</p>' if explanation else ""
    return f'<div class="answer" data-model="{index}"><h4>{name} {scores}</h4>{answer}{judge}</div>'


def _question_section(order: int, qid: str, bench: Bench | None, out: Path, results, by_model, baseline) -> str:
    question = bench.by_id.get(qid) if bench else None
    judgements = [by_model[r.model].get(qid) for r in results]
    category = question.category if question else next(j.category for j in judgements if j)
    attrs = f'data-order="{order}" data-category="{esc(category)}"'
    for i, j in enumerate(judgements):
        if j is not None and j.status == "judged":
            attrs += f' data-score-{i}="{j.model_score:g}"'
    picture, text, reference = "", f'<p class="why">question {esc(qid)}: not in the benchmark folder</p>', ""
    if question is not None:
        src = _copy_image(bench, question.image, out)
        alt = f"image {question.image_id} of question {qid}"
        picture = (
            f'<div class="pic"><a href="{esc(src)}"><img src="{esc(src)}" alt="{esc(alt)}"></a></div>'
            if src
            else f'<div class="pic missing"><p>image {esc(question.image)} missing</p></div>'
        )
        ref = bench.references[qid]
        text = f'<p class="question"><b>Question</b> {esc(question.text)}</p>'
        reference = (
            f'<div class="answer reference"><h4>Reference <small>({esc(ref.teacher_model)})</small></h4>'
            f'<p class="text">{esc(ref.text)}</p></div>'
        )
    cards = "".join(_answer_card(i, r, j, baseline) for i, (r, j) in enumerate(zip(results, judgements, strict=True)))
    title = CATEGORY_TITLES.get(category, category)
    return (
        f'<section class="question" id="{esc(qid)}" {attrs}>{picture}<div class="text">'
        f'<h3>{esc(title)} <small>{esc(qid)}</small> <span class="diff"></span></h3>'
        f"{text}{reference}{cards}</div></section>"
    )


def _controls(results: list[JudgeResult], baseline: str | None) -> str:
    names = [r.model for r in results]
    b = names.index(baseline) if baseline in names else (1 if len(names) > 1 else 0)
    a = next((i for i in range(len(names)) if i != b), 0)

    def pick(name: str, chosen: int) -> str:
        options = "".join(
            f'<option value="{i}"{" selected" if i == chosen else ""}>{esc(n)}</option>' for i, n in enumerate(names)
        )
        return f'<select name="{name}">{options}</select>'

    categories = "".join(f'<option value="{c}">{esc(CATEGORY_TITLES[c])}</option>' for c in TASKS)
    return (
        '<form id="controls" class="filters" onsubmit="return false">'
        f'<label>category <select name="category"><option value="">all</option>{categories}</select></label> '
        '<label>sort by <select name="sort"><option value="order">benchmark order</option>'
        '<option value="category">category</option><option value="diff">score difference A - B</option>'
        "</select></label> "
        f'<label>A {pick("a", a)}</label> <label>B {pick("b", b)}</label> <output id="shown"></output></form>'
    )


def _with_chart(report: str, chart: str) -> str:
    """The chart at the end of the first section (the scores and their intervals), before the relative scores."""
    first = report.find("<h3")  # the report's "## " sections
    at = report.find("<h3", first + 1) if first >= 0 else -1
    return report + chart if at < 0 else report[:at] + chart + report[at:]


def write_report_html(
    results: list[JudgeResult], out: str | Path, report_md: str, *, baseline: str | None = None
) -> Path:
    """Write ``out/report.html`` (and ``out/images/``) from the results and the text of ``report.md``."""
    out = Path(out)
    bench, problem = _bench(results)
    by_model = {r.model: {j.question_id: j for j in r.judgements} for r in results}
    order = [q.question_id for q in bench.questions] if bench else list(dict.fromkeys(by_model[results[0].model]))
    sections = [_question_section(i, qid, bench, out, results, by_model, baseline) for i, qid in enumerate(order)]
    body_md = report_md.split("\n", 1)[1] if report_md.startswith("# ") else report_md
    chart = (
        '<p><img class="chart" src="report.png" alt="HPAUB scores per category and model, with 95% intervals"></p>'
        '<p><a href="#questions">Every question with every answer: below the tables.</a></p>'
    )
    note = f'<p class="why">{esc(problem)}</p>' if problem else ""
    body = (
        f'<header class="top"><h1>HPAUB results</h1>{note}</header>'
        f'<div class="section report">{_with_chart(markdown(body_md), chart)}</div>'
        f'<div class="section"><h2 id="questions">Every question, every answer</h2><p class="lede">The paper\'s '
        "Table 3 for each of the benchmark's questions: the image, the question, the teacher's reference answer and "
        "each model's answer with the judge's score of it (1-10; beside it, the judge's score of the reference in the "
        "same judgement) and the judge's explanation. Sort by the score difference between two models to find where "
        "they differ most.</p></div>"
        f'{_controls(results, baseline)}<main id="questions-list">{"".join(sections)}</main><footer></footer>'
    )
    page = document(
        "HPAUB results", body, styles=[asset("report.css", __package__)], scripts=[asset("report.js", __package__)]
    )
    return write_page(out / "report.html", page)
