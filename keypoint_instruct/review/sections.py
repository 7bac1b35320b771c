"""One image's section of a review page: its picture, the context the teacher saw, and every answer decided.

Each answer is shown as the build sees it: a conversation's questions one by one, a detailed description with the
build's instruction, a complex reasoning question; each part kept or dropped with its reason code, the spans a filter
found highlighted (a contradicted pose claim followed by the fact from the keypoints). An answer dropped as a whole
(cut short, unparseable, superseded) is shown as the raw text. The elements that the page's filters hide or show
carry ``class="unit"`` with ``data-task``, ``data-status`` and ``data-reason``.
"""

from __future__ import annotations

from functools import cache

from keypoint_instruct.coco.context import format_context, people
from keypoint_instruct.dataset.quality import REASON_DESCRIPTIONS
from keypoint_instruct.review.collect import Entry
from keypoint_instruct.review.decision import KEPT, UNATTRIBUTED, Decision, Part
from keypoint_instruct.review.html import esc, highlight, inline, located
from keypoint_instruct.review.pictures import Picture
from keypoint_instruct.vocab import CONTEXT_MODES, DEFAULT_CONTEXT_MODE, TASKS

TASK_TITLES = {
    "conversation": "Conversation",
    "detailed_description": "Detailed description",
    "complex_reasoning": "Complex reasoning",
}
REASON_TITLES = {**REASON_DESCRIPTIONS, UNATTRIBUTED: "the build dropped it; the review could not name the reason"}


@cache
def context_mode(task: str, prompt_version: str) -> str | None:
    """The context mode whose prompt has ``prompt_version`` for ``task`` today; None when the prompts changed since."""
    from keypoint_instruct.teacher.templates import load_prompt

    if task not in TASKS:
        return None
    return next((m for m in CONTEXT_MODES if load_prompt(task, m).version == prompt_version), None)


def _badge(status: str, reason: str | None = None) -> str:
    if status == KEPT:
        return '<span class="badge kept">kept</span>'
    title = REASON_TITLES.get(reason, "")
    return f'<span class="badge dropped" title="{esc(title)}">dropped: {esc(reason or "?")}</span>'


def _unit(task: str, status: str, reason: str | None, inner: str, extra: str = "") -> str:
    return (
        f'<div class="unit {status}{extra}" data-task="{esc(task)}" data-status="{esc(status)}" '
        f'data-reason="{esc(reason or "")}">{inner}</div>'
    )


def _why(reason: str | None) -> str:
    text = REASON_TITLES.get(reason or "")
    return f'<p class="why">{inline(text)}</p>' if text else ""


def _unplaced(findings, texts: dict[str, str]) -> str:
    """Findings whose text is not where they say: listed under the part rather than lost."""
    rest = [f for f in findings if not located(texts.get(f.where, ""), f)]
    items = "".join(
        f"<li><q>{esc(f.text)}</q>" + (f' <span class="fact">keypoints: {esc(f.fact)}</span>' if f.fact else "")
        + "</li>"
        for f in rest
    )  # fmt: skip
    return f'<ul class="findings">{items}</ul>' if items else ""


def _part(task: str, part: Part, number: int, total: int) -> str:
    mine = {w: [f for f in part.findings if f.where == w] for w in ("question", "answer")}
    label = "Instruction (the build's)" if part.instruction else f"Q{number}" if total > 1 else "Q"
    question = highlight(part.question, mine["question"], REASON_TITLES)
    answer = highlight(part.answer, mine["answer"], REASON_TITLES)
    inner = (
        f'<div class="qa"><p class="q"><b>{esc(label)}</b> {question}</p>'
        f'<p class="a"><b>A</b> {answer}</p></div>'
        f"{_badge(part.status, part.reason)}"
        + (_why(part.reason) if part.reason else "")
        + _unplaced(part.findings, {"question": part.question, "answer": part.answer})
    )
    return _unit(task, part.status, part.reason, inner)


def _whole(task: str, text: str, decision: Decision, superseded: bool) -> str:
    body = highlight(text, decision.findings, REASON_TITLES) if text.strip() else '<i class="empty">(no text)</i>'
    raw = f'<pre class="raw">{body}</pre>'
    if superseded:  # the answer used is shown above it; this one only on demand
        raw = f"<details><summary>the superseded answer ({len(text):,} characters)</summary>{raw}</details>"
    inner = f"{raw}{_badge(decision.status, decision.reason)}{_why(decision.reason)}" + _unplaced(
        decision.findings, {"response": text}
    )
    return _unit(task, decision.status, decision.reason, inner, " whole")


def _meta(entry: Entry) -> str:
    r = entry.response
    mode = context_mode(r.task, r.prompt_version)
    version = f"prompt {esc(r.prompt_version)}" + (f" ({esc(mode)})" if mode else " (not today's prompts)")
    tokens = f"{r.prompt_tokens:,} prompt tokens"
    if r.cached_tokens:
        tokens += f" ({r.cached_tokens:,} cached)"
    tokens += f" + {r.completion_tokens:,} completion"
    parts = [
        f"teacher <b>{esc(r.model)}</b>",
        version,
        tokens,
        f"${float(r.cost_usd or 0):.4f}",
        f"finish {esc(r.finish_reason)}",
        esc((r.created_at or "")[:19].replace("T", " ")),
    ]
    return '<p class="meta">' + " · ".join(parts) + "</p>"


def _summary_badges(decision: Decision) -> str:
    if decision.reason:
        return _badge(decision.status, decision.reason)
    kept = sum(1 for p in decision.parts if p.status == KEPT)
    dropped = len(decision.parts) - kept
    out = f'<span class="badge kept">{kept} kept</span>' if kept else ""
    if dropped:
        out += f' <span class="badge dropped">{dropped} dropped</span>'
    return out


def entry_html(entry: Entry) -> str:
    """One response: title, badges, provenance line, then its parts (or its raw text when dropped whole)."""
    r, decision = entry.response, entry.decision
    title = TASK_TITLES.get(r.task, r.task)
    if decision.reason or not decision.parts:
        units = _whole(r.task, r.text or "", decision, entry.superseded)
    else:
        units = "".join(_part(r.task, p, i, len(decision.parts)) for i, p in enumerate(decision.parts, 1))
    superseded = " superseded" if entry.superseded else ""
    return (
        f'<article class="entry{superseded}" data-task="{esc(r.task)}">'
        f"<h3>{esc(title)} {_summary_badges(decision)}</h3>{_meta(entry)}{units}</article>"
    )


def _contexts(scene, entries: list[Entry]) -> str:
    """The context once per mode the used answers were asked in (prompt versions this code no longer writes: noted)."""
    used = [e for e in entries if not e.superseded] or entries
    modes: dict[str, list[str]] = {}
    unknown: dict[str, list[str]] = {}
    for entry in used:
        task = TASK_TITLES.get(entry.response.task, entry.response.task)
        mode = context_mode(entry.response.task, entry.response.prompt_version)
        modes.setdefault(mode or DEFAULT_CONTEXT_MODE, []).append(task)
        if mode is None:
            unknown.setdefault(mode or DEFAULT_CONTEXT_MODE, []).append(task)
    out = []
    for mode, tasks in modes.items():
        which = "" if len(modes) == 1 else f" for {', '.join(dict.fromkeys(tasks))}"
        note = ""
        if unknown.get(mode):
            note = (
                f"; the prompt version of {', '.join(dict.fromkeys(unknown[mode]))} is not one this code writes (the "
                "prompts changed since), so this is rebuilt and may differ from what the teacher saw"
            )
        out.append(
            f'<details class="context" open><summary>Context the teacher saw{esc(which)} '
            f"<small>(mode {esc(mode)}{esc(note)})</small></summary>"
            f"{_context_blocks(format_context(scene, mode))}</details>"
        )
    return "".join(out)


def _context_blocks(context: str) -> str:
    """The context's blocks (captions, the objects with their numbers, the pose notes) in one box each.

    The numbers can run long; they scroll in their own box so that the pose notes after them stay in view.
    """
    blocks = context.split("\n\n")  # format_context joins its blocks so; captions and lines never hold a blank line
    kinds = ["captions", "objects", "notes"][: len(blocks)] if len(blocks) <= 3 else ["text"] * len(blocks)
    return "".join(f'<pre class="{kind}">{esc(block)}</pre>' for kind, block in zip(kinds, blocks, strict=True))


def _picture(scene, picture: Picture, legend: str) -> str:
    if picture.src is None:
        return f'<div class="pic missing"><p>No picture: {esc(picture.missing)}</p></div>'
    alt = f"image {scene.image_id} with its boxes and skeletons"
    return (
        f'<div class="pic"><a href="{esc(picture.src)}"><img src="{esc(picture.src)}" width="{picture.width}" '
        f'height="{picture.height}" alt="{esc(alt)}"></a>{legend}</div>'
    )


def image_section(scene, entries: list[Entry], picture: Picture, legend: str) -> str:
    """The section of one image: picture on the left, context and answers (in task order) on the right."""
    ordered = sorted(entries, key=lambda e: (TASKS.index(e.response.task), e.superseded))
    n_people = people(scene)
    heading = (
        f"<h2>Image {scene.image_id} <small>{esc(scene.file_name)} · {scene.width} x {scene.height} · "
        f"{n_people} {'person' if n_people == 1 else 'people'}</small></h2>"
    )
    return (
        f'<section class="image" id="image-{scene.image_id}">{_picture(scene, picture, legend)}'
        f'<div class="text">{heading}{_contexts(scene, ordered)}{"".join(entry_html(e) for e in ordered)}</div>'
        "</section>"
    )
