"""What a response cache holds, for ``cache stats``: answers by task, model and status; tokens; money spent.

Takes the open SQLite connection of a :class:`keypoint_instruct.llm.store.cache.ResponseCache` (its ``stats()``
calls :func:`read_stats`) and gives a :class:`CacheStats`, whose ``str`` is the table ``cache stats`` prints.

Empty answers (no text, finish reason ``stop`` or none) are no answers: the engine records each as a failed attempt
whose reason says what it cost (:func:`empty_answer_reason`), and ``cache stats`` adds that money to what was spent.
One stored by an earlier version shows with status ``empty``, never ``ok``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field

from keypoint_instruct.llm.request import describe_sampling

# SQL condition of an empty answer stored in ``responses`` (request.is_empty_answer, in SQL).
EMPTY_SQL = "(finish_reason IN ('stop', 'unknown') AND trim(text, ' ' || char(9, 10, 11, 12, 13)) = '')"
_EMPTY_PAID = re.compile(r"empty answer \(finish_reason [^;]*; \d+ prompt \+ \d+ completion tokens, \$([0-9.]+) paid")


def empty_answer_reason(finish_reason: str, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> str:
    """The failure reason recorded for a paid empty answer; :func:`read_stats` reads the money back from it."""
    return (
        f"empty answer (finish_reason {finish_reason}; {prompt_tokens} prompt + {completion_tokens} completion "
        f"tokens, ${cost_usd:.6f} paid)"
    )


_ROW_NAMES = (
    "task",
    "model",
    "status",
    "responses",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
)
_HEADER = ("task", "model", "status", "responses", "prompt_tok", "cached_tok", "completion_tok", "usd")


def status_of(finish_reason: str) -> str:
    """A finish reason as ``cache stats`` shows it: ``ok`` for a normal end (``stop``), else the reason (``empty``
    for an empty answer, see :data:`EMPTY_SQL`)."""
    return "ok" if finish_reason == "stop" else finish_reason


@dataclass
class CacheStats:
    """What a cache holds; ``rows`` has one entry per (task, model, status)."""

    rows: list[dict] = field(default_factory=list)
    responses: int = 0
    failed_attempts: int = 0
    unanswered_keys: int = 0  # keys with failed attempts and no response
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0  # answers stored plus empty answers paid for
    empty_answers: int = 0  # paid empty answers recorded as failed attempts (not stored)
    empty_usd: float = 0.0  # what they cost
    # (model, sampling settings as llm.request.describe_sampling says them, answers); "not recorded" for answers
    # stored before the cache kept settings (schema 4)
    settings: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def cached_share(self) -> float:
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0

    def __str__(self) -> str:
        """A table with a row per (task, model, status) and a total, then cached share, failures and money."""
        rows = [
            (r["task"], r["model"], r["status"], r["responses"], r["prompt_tokens"], r["cached_tokens"],
             r["completion_tokens"], f"{r['cost_usd']:.4f}")
            for r in self.rows
        ]  # fmt: skip
        rows.append(
            ("total", "", "", self.responses, self.prompt_tokens, self.cached_tokens, self.completion_tokens,
             f"{self.cost_usd:.4f}")
        )  # fmt: skip
        widths = [max(len(str(row[i])) for row in (_HEADER, *rows)) for i in range(len(_HEADER))]
        lines = [
            "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in (_HEADER, *rows)
        ]
        empty = f"; empty answers paid for: {self.empty_answers} (${self.empty_usd:.4f})" if self.empty_answers else ""
        lines += [
            f"cached-token share of prompt tokens: {self.cached_share:.1%}",
            f"failed attempts: {self.failed_attempts}; keys failed and never answered: {self.unanswered_keys}{empty}",
            f"money spent: ${self.cost_usd:.4f}" + (" (empty answers included)" if empty else ""),
        ]
        if self.settings:
            lines.append("sampling settings of the answers (part of each request, so of its cache key):")
            width = max(len(model) for model, _, _ in self.settings)
            lines += [f"  {model.ljust(width)}  {said}: {n}" for model, said, n in self.settings]
        return "\n".join(lines)


def read_stats(db: sqlite3.Connection, *, with_settings: bool = True) -> CacheStats:
    """The :class:`CacheStats` of the cache open on ``db``; ``with_settings=False`` for a file older than schema 4."""
    stats = CacheStats()
    status = f"CASE WHEN {EMPTY_SQL} THEN 'empty' ELSE finish_reason END"
    query = (
        f"SELECT task, model, {status} AS status, COUNT(*), SUM(prompt_tokens), SUM(completion_tokens), "
        "SUM(cached_tokens), SUM(cost_usd) FROM responses GROUP BY task, model, status "
        "ORDER BY task, model, status"
    )
    for row in db.execute(query):
        stats.rows.append(dict(zip(_ROW_NAMES, (*row[:2], status_of(row[2]), *row[3:]), strict=True)))
        stats.responses += row[3]
        stats.prompt_tokens += row[4]
        stats.completion_tokens += row[5]
        stats.cached_tokens += row[6]
        stats.cost_usd += row[7]
    stats.failed_attempts = db.execute("SELECT COUNT(*) FROM failures").fetchone()[0]
    for (reason,) in db.execute("SELECT reason FROM failures WHERE reason LIKE '%empty answer (%'"):
        if found := _EMPTY_PAID.search(reason):
            stats.empty_answers += 1
            stats.empty_usd += float(found[1])
    stats.cost_usd += stats.empty_usd
    stats.unanswered_keys = db.execute(
        "SELECT COUNT(DISTINCT key) FROM failures WHERE key NOT IN (SELECT key FROM responses)"
    ).fetchone()[0]
    stats.settings = _settings(db) if with_settings else []
    return stats


def _settings(db: sqlite3.Connection) -> list[tuple[str, str, int]]:
    """Answers per (model, sampling settings), the most common first within a model."""
    query = (
        "SELECT r.model, s.settings, COUNT(*) FROM responses r LEFT JOIN response_settings s ON s.key = r.key "
        "GROUP BY r.model, s.settings ORDER BY r.model, COUNT(*) DESC, s.settings"
    )
    rows = []
    for model, settings, n in db.execute(query):
        said = describe_sampling(json.loads(settings)) if settings else "not recorded (answered before schema 4)"
        rows.append((model, said, n))
    return rows
