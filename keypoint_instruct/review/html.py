"""Small HTML helpers shared by the review pages and the HPAUB report page (``bench.report_html``).

Pages are self-contained static files: the style sheet and scripts (data files under ``assets/`` beside this module,
or beside the caller's module) are inlined, pictures are relative paths, nothing is fetched from elsewhere, so a
folder opens from ``file://`` and can be shared as a zip. Every text from a cache, a teacher or a model is escaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["asset", "document", "esc", "highlight", "inline", "markdown", "write_page"]


# Control characters (C0 but tab, newline and carriage return; DEL; C1) and lone surrogates, which a model's answer
# may hold (a NUL byte made `grep` call report.html binary): HTML calls them parse errors, UTF-8 cannot write a
# surrogate. Each becomes U+FFFD, so the page shows that something was there.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def esc(value: Any) -> str:
    """``value`` as text safe in an element and in a quoted attribute (control characters shown as U+FFFD)."""
    return html.escape(_UNPRINTABLE.sub("\ufffd", str(value)), quote=True)


def asset(name: str, package: str = __package__) -> str:
    """The text of ``assets/<name>`` in ``package`` (a style sheet or a script shipped beside the module)."""
    return resources.files(package).joinpath("assets", name).read_text(encoding="utf-8")


def document(
    title: str,
    body: str,
    *,
    styles: Sequence[str] = (),
    scripts: Sequence[str] = (),
    meta: dict[str, str] | None = None,
) -> str:
    """A whole HTML page: the shared style sheet, extra ``styles``, ``body``, then ``scripts`` inlined."""
    css = "\n".join([asset("page.css"), *styles])
    js = "".join(f"<script>\n{script}\n</script>\n" for script in scripts)
    metas = "".join(f'<meta name="{esc(k)}" content="{esc(v)}">\n' for k, v in (meta or {}).items())
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{metas}<title>{esc(title)}</title>\n<style>\n{css}\n</style>\n</head>\n<body>\n{body}\n{js}</body>\n</html>\n"
    )


def write_page(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def highlight(text: str, findings: Iterable[Any], titles: dict[str, str] | None = None) -> str:
    """``text`` escaped, with each finding's span in a ``<mark>`` (class ``fact`` when a fact contradicts it).

    A finding is anything with ``reason``, ``start``, ``end``, ``text`` and optionally ``fact``. Its span is used when
    it still matches the text; else the first occurrence of its ``text``; a finding found nowhere is left out here
    (the caller lists it). Overlapping spans: the first one wins. A contradicted claim is followed by the fact.
    """
    titles = titles or {}
    spans = []
    for f in findings:
        start, end = f.start, f.end
        if not (0 <= start < end <= len(text)) or text[start:end] != f.text:
            start = text.find(f.text) if f.text else -1
            end = start + len(f.text)
        if start >= 0:
            spans.append((start, end, f))
    out, at = [], 0
    for start, end, f in sorted(spans, key=lambda s: (s[0], -s[1])):
        if start < at:
            continue
        fact = getattr(f, "fact", None)
        title = titles.get(f.reason, f.reason)
        out.append(esc(text[at:start]))
        kind = "claim" if fact else "leak"
        out.append(f'<mark class="{kind}" title="{esc(f.reason)}: {esc(title)}">{esc(text[start:end])}</mark>')
        if fact:
            out.append(f'<span class="fact">keypoints: {esc(fact)}</span>')
        at = end
    out.append(esc(text[at:]))
    return "".join(out)


def located(text: str, finding: Any) -> bool:
    """Whether :func:`highlight` can place ``finding`` in ``text``."""
    s, e = finding.start, finding.end
    return (0 <= s < e <= len(text) and text[s:e] == finding.text) or bool(finding.text and finding.text in text)


# --- a small Markdown subset: what bench report writes (headings, tables, bullets, paragraphs, bold, code) --------

_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def inline(text: str) -> str:
    """``text`` escaped, with Markdown's ``**bold**`` and `` `code` `` made HTML."""
    return _CODE.sub(r"<code>\1</code>", _BOLD.sub(r"<strong>\1</strong>", esc(text)))


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table(lines: list[str]) -> str:
    head, body = _cells(lines[0]), [_cells(line) for line in lines[2:]]
    out = ['<table class="scores">', "<thead><tr>", *(f"<th>{inline(c)}</th>" for c in head), "</tr></thead><tbody>"]
    for row in body:
        out += ["<tr>", *(f"<td>{inline(c)}</td>" for c in row), "</tr>"]
    return "".join([*out, "</tbody></table>"])


def markdown(text: str) -> str:
    """HTML for the Markdown that ``bench report`` writes (not a general Markdown converter)."""
    blocks: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 1, 6)  # the page's own title is the h1
            blocks.append(f"<h{level}>{inline(line.lstrip('#').strip())}</h{level}>")
            i += 1
        else:
            kind = "table" if line.startswith("|") else "list" if line.startswith("- ") else "p"
            block = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith("#"):
                here = "table" if lines[i].startswith("|") else "list" if lines[i].startswith("- ") else "p"
                if here != kind and not (kind == "list" and here == "p"):
                    break
                block.append(lines[i])
                i += 1
            if kind == "table":
                blocks.append(_table(block))
            elif kind == "list":
                items = _list_items(block)
                blocks.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in items) + "</ul>")
            else:
                blocks.append(f"<p>{inline(' '.join(block))}</p>")
    return "\n".join(blocks)


def _list_items(block: list[str]) -> list[str]:
    """Bullets; a line that does not start a bullet continues the one before it."""
    items: list[str] = []
    for line in block:
        if line.startswith("- "):
            items.append(line[2:].strip())
        else:
            items[-1] += " " + line.strip()
    return items
