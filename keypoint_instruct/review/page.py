"""The review folder: ``index.html`` (and ``page-N.html`` when there are more images than fit a page) + pictures.

:func:`write_review` reads the cache and the COCO split, decides every response as the build would
(:mod:`keypoint_instruct.review.decision`), picks the images to show (:mod:`keypoint_instruct.review.collect`), draws
their pictures and writes the pages. Every page opens with the counts per reason over everything read, and has
filters by task, by kept/dropped and by reason that run in the page itself (no server, no external script).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from keypoint_instruct.coco.render import LEGEND_ROWS
from keypoint_instruct.errors import UsageError
from keypoint_instruct.review.collect import DROPPED, KEPT, Filters, Summary, gather, sample, survey
from keypoint_instruct.review.html import asset, document, esc, inline, write_page
from keypoint_instruct.review.pictures import FOLDER, write_picture
from keypoint_instruct.review.sections import REASON_TITLES, TASK_TITLES, image_section

logger = logging.getLogger(__name__)

DEFAULT_LIMIT = 200  # images on the pages unless --limit says otherwise
DEFAULT_PER_PAGE = 50  # images per HTML page


@dataclass(frozen=True)
class ReviewResult:
    """What was written: the pages, the images shown out of those matching, and the counts."""

    pages: list[Path]
    shown: int
    matching: int
    summary: Summary
    missing_pictures: int


def page_name(number: int) -> str:
    return "index.html" if number == 1 else f"page-{number}.html"


def _rgb(colour) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in colour)


def legend() -> str:
    """What the picture's colours and marks mean, from the same table ``show`` draws its legend from."""
    marks = {"line": "bar", "dot": "dot", "ring": "ring", "tag": "tag"}
    items = []
    for colour, mark, text in LEGEND_ROWS:
        style = f"border-color:{_rgb(colour)}" if mark == "ring" else f"background:{_rgb(colour)}"
        items.append(f'<span class="{marks[mark]}" style="{style}"></span> {esc(text)}')
    return (
        '<p class="legend">As <code>keypoint-instruct show</code> draws them: '
        + ", ".join(items)
        + "; unlabelled keypoints are not drawn.</p>"
    )


def _counts_table(summary: Summary, shown: Counter) -> str:
    rows, none = [], []
    for reason, n in summary.by_reason().items():
        if not n:
            none.append(f"<code>{esc(reason)}</code>")
            continue
        button = f'<button type="button" data-set-reason="{esc(reason)}">show</button>' if shown.get(reason) else ""
        rows.append(
            f"<tr><td><code>{esc(reason)}</code></td><td class='n'>{n:,}</td>"
            f"<td class='n'>{shown.get(reason, 0):,}</td>"
            f"<td>{inline(REASON_TITLES.get(reason, ''))}</td><td>{button}</td></tr>"
        )
    caption = "Dropped, by reason (responses or pairs, as <code>build</code> counts them)"
    if not rows:
        return '<div class="counts"><p><b>Nothing dropped</b>: every answer read becomes dataset rows.</p></div>'
    return (
        f'<table class="counts"><caption>{caption}</caption><thead><tr><th>reason</th><th>dropped</th>'
        "<th>images shown</th><th>what it means</th><th></th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        + (f'<p class="meta">No drops for: {", ".join(none)}.</p>' if none else "")
    )


def _tasks_table(summary: Summary, tasks: tuple[str, ...]) -> str:
    rows = []
    for task in tasks:
        dropped = sum(n for (t, _), n in summary.dropped.items() if t == task)
        rows.append(
            f"<tr><td>{esc(TASK_TITLES.get(task, task))}</td><td class='n'>{summary.responses[task]:,}</td>"
            f"<td class='n'>{summary.rows[task]:,}</td><td class='n'>{dropped:,}</td></tr>"
        )
    return (
        '<table class="counts"><caption>Per task</caption><thead><tr><th>task</th><th>responses</th>'
        f"<th>rows kept</th><th>dropped</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _provenance(summary: Summary, filters: Filters) -> str:
    models = ", ".join(f"<b>{esc(m)}</b> ({n:,})" for m, n in summary.models.most_common()) or "none"
    versions = ", ".join(
        f"{esc(TASK_TITLES.get(t, t))} <code>{esc(v)}</code> ({n:,})"
        for (t, v), n in sorted(summary.prompt_versions.items())
    )
    tokens = summary.tokens
    return (
        f'<p class="meta">Teacher models (responses): {models}. Prompt versions: {versions or "none"}. '
        f"Tokens: {tokens['prompt']:,} prompt ({tokens['cached']:,} cached) + {tokens['completion']:,} completion; "
        f"spend ${summary.cost_usd:,.4f}.</p>" + _mixed_models(summary, filters)
    )


def _mixed_models(summary: Summary, filters: Filters) -> str:
    """Several teachers' answers: `build` refuses them unless told which; say what these pages assume."""
    if len(summary.models) < 2 or filters.teacher_models:
        return ""
    return (
        f'<p class="why">This cache holds answers of {len(summary.models)} teacher models. <code>build</code> refuses '
        "it unless <code>--teacher-model</code> names the one(s) to use; these pages show what a build with all of "
        "them does (the newest answer per image and task is used). Review with <code>--teacher-model</code> to see "
        "one teacher's answers alone.</p>"
    )


def _filters(filters: Filters, summary: Summary) -> str:
    def options(values, chosen, labels):
        out = '<option value="">all</option>'
        for value in values:
            sel = " selected" if value == chosen else ""
            out += f'<option value="{esc(value)}"{sel}>{esc(labels.get(value, value))}</option>'
        return out

    reasons = [r for r, n in summary.by_reason().items() if n]
    return (
        '<form id="filters" class="filters" onsubmit="return false">'
        f'<label>task <select name="task">{options(filters.tasks, None, TASK_TITLES)}</select></label> '
        f'<label>status <select name="status">{options((KEPT, DROPPED), filters.only, {})}</select></label> '
        f'<label>reason <select name="reason">{options(reasons, filters.reason, {})}</select></label> '
        '<button type="button" id="reset">show all</button> <output id="shown"></output></form>'
    )


def _nav(number: int, total: int) -> str:
    if total == 1:
        return ""
    links = []
    for n in range(1, total + 1):
        name = page_name(n)
        links.append(f"<b>{n}</b>" if n == number else f'<a class="page" href="{name}">{n}</a>')
    return '<nav class="pages">Pages: ' + " ".join(links) + "</nav>"


def _page(title: str, lede: str, head: str, bar: str, sections: list[str], number: int, total: int) -> str:
    nav = _nav(number, total)
    body = (
        f'<header class="top"><h1>{esc(title)}</h1><p class="lede">{lede}</p>{head}{nav}</header>{bar}'
        f'<main id="images">{"".join(sections)}</main>'
        f'<p class="none" id="nothing" hidden>No image on this page matches the filters'
        f"{' (other pages may have some)' if total > 1 else ''}.</p><footer>{nav}</footer>"
    )
    return document(title, body, scripts=[asset("review.js")], meta={"generator": GENERATOR})


GENERATOR = "keypoint-instruct review"


def _check_out(out: Path) -> None:
    """``out`` must be absent, empty, or a folder this command wrote (its pages and pictures are replaced)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for the review pages")
    if not out.is_dir() or not any(out.iterdir()):
        return
    index = out / "index.html"
    if not (index.is_file() and f'content="{GENERATOR}"' in index.read_text(encoding="utf-8", errors="replace")):
        held = ", ".join(sorted(p.name for p in out.iterdir())[:5])
        raise UsageError(f"--out {out} holds other files ({held}); give a new or empty folder, or a review folder")
    for old in [*out.glob("page-*.html"), index, *(out / FOLDER).glob("*.jpg")]:
        old.unlink()


def _lede(cache_path: Path, split: str, summary: Summary, chosen: int, matching: int, first: int, last: int) -> str:
    what = (
        "What <code>keypoint-instruct build</code> does with each teacher answer in "
        f"<code>{esc(cache_path.name)}</code> for split <code>{esc(split)}</code>. The counts cover all "
        f"{len(summary.images):,} images with answers "
        f"({sum(summary.responses.values()):,} responses)"
    )
    if chosen < matching:
        what += f"; {matching:,} images match the filters, {chosen:,} are shown, sampled per reason"
    elif chosen < len(summary.images):
        what += f"; {chosen:,} images match the filters"
    if chosen:
        what += f". This page: images {first:,} to {last:,} of {chosen:,}."
    else:
        what += ". No image matches the filters."
    return what


def write_review(
    coco_root: str | Path,
    split: str,
    cache_path: str | Path,
    out: str | Path,
    *,
    filters: Filters | None = None,
    limit: int | None = DEFAULT_LIMIT,
    per_page: int = DEFAULT_PER_PAGE,
) -> ReviewResult:
    """Write the review folder ``out`` for the answers in ``cache_path`` about ``split`` of ``coco_root``."""
    from keypoint_instruct.coco.annotations import load_scenes
    from keypoint_instruct.llm.store.cache import ResponseCache
    from keypoint_instruct.teacher.catalogue import known_prompts

    filters = filters or Filters()
    if per_page < 1:
        raise UsageError(f"--per-page must be at least 1, not {per_page}")
    cache_path, out = Path(cache_path), Path(out)
    _check_out(out)
    scenes = load_scenes(coco_root, split)
    with ResponseCache(cache_path) as cache:
        summary, tags = survey(cache, scenes, split, filters, cache_path, known_prompts(cache).instruction)
        if not summary.responses:
            held = ", ".join(f"{s} ({n:,})" for s, n in cache.splits().items()) or "nothing"
            raise UsageError(
                f"the cache {cache_path} has no responses for split {split!r} and task(s) "
                f"{', '.join(filters.tasks)} (it holds: {held})"
            )
        wanted = {i: t for i, t in tags.items() if filters.wants(t)}
        chosen, shown = sample(wanted, limit)
        entries = gather(cache, scenes, split, filters, cache_path, chosen, known_prompts(cache).instruction)
    out.mkdir(parents=True, exist_ok=True)
    pages, missing, total = [], 0, max(1, math.ceil(len(chosen) / per_page))
    title = f"Review: teacher answers in {cache_path.name} ({split})"
    for number in range(1, total + 1):
        ids = chosen[(number - 1) * per_page : number * per_page]
        sections = []
        for image_id in ids:
            picture = write_picture(coco_root, scenes[image_id], out)
            missing += picture.src is None
            sections.append(image_section(scenes[image_id], entries[image_id], picture, legend()))
        first = (number - 1) * per_page + 1
        lede = _lede(cache_path, split, summary, len(chosen), len(wanted), first, first + len(ids) - 1)
        head = (
            f'<div class="summary"><div>{_counts_table(summary, shown)}</div>'
            f"{_tasks_table(summary, filters.tasks)}</div>"
            f"{_provenance(summary, filters)}"
        )
        page = _page(title, lede, head, _filters(filters, summary), sections, number, total)
        pages.append(write_page(out / page_name(number), page))
    if missing:
        logger.warning(
            "%d of %d images have no picture (their image files are missing under %s)", missing, len(chosen), coco_root
        )
    return ReviewResult(pages, len(chosen), len(wanted), summary, missing)
