"""``cache merge``: the response caches of shards joined into one file.

Takes cache files (:class:`keypoint_instruct.llm.store.cache.ResponseCache`) and gives what happened::

    merge(cache, other_paths) -> dict[str, float]     # copy other files into an open cache; the counts below
    merge_into(out, inputs) -> MergeReport            # the command: checks, creates ``out`` if missing, merges
    check_merge_inputs(out, inputs)                   # the first problem of the inputs, before anything is written

Responses (with their sampling settings), failures, batch records and the prompt catalogue are copied; claims are
not: they belong to runs on the other file, which cannot renew or release them here. A key answered in both keeps
this file's answer, unless only the other one finished normally (``stop``): a complete paid answer is never thrown
away for a cut one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from keypoint_instruct.errors import CacheError, InputNotFoundError
from keypoint_instruct.llm.store.cache import FAILURE_COLUMNS, RESPONSE_COLUMNS, ResponseCache

log = logging.getLogger(__name__)

_COUNTS = ("added", "already_present", "conflicts", "upgraded", "failures_added")


def merge(cache: ResponseCache, other_paths: Iterable[str | Path]) -> dict[str, float]:
    """Copy responses, failures and batch records of other cache files into ``cache``; returns what happened.

    Counts: ``added``, ``already_present``, ``conflicts`` (present with a different text), ``upgraded`` (a cut
    answer replaced by a complete one), ``failures_added``, and ``paid_twice_usd``: what the duplicate answers (same
    key, answered separately) cost. Each file is copied in one transaction; every file is checked before the first.
    """
    counts: dict[str, float] = dict.fromkeys(_COUNTS, 0)
    counts["paid_twice_usd"] = 0.0
    other_paths = [Path(p) for p in other_paths]
    check_merge_inputs(cache.path, other_paths)
    for other in other_paths:
        before = counts["added"]
        cache.db.execute("ATTACH DATABASE ? AS other", (str(other),))
        try:
            with cache.transaction():
                _copy_attached(cache, counts)
        finally:
            cache.db.execute("DETACH DATABASE other")
        log.info("merged %s: %d responses added", other, counts["added"] - before)
    return counts


def _copy_attached(cache: ResponseCache, counts: dict[str, float]) -> None:
    """Copy the database attached as ``other`` into ``main``, adding to ``counts`` (inside a transaction)."""
    db = cache.db
    cols = ", ".join(RESPONSE_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in RESPONSE_COLUMNS if c != "key")
    both = "FROM other.responses o JOIN main.responses m ON m.key = o.key"
    conflicts, upgraded, paid_twice = db.execute(
        "SELECT COALESCE(SUM(m.text != o.text), 0), "
        "COALESCE(SUM(m.finish_reason != 'stop' AND o.finish_reason = 'stop'), 0), "
        f"COALESCE(SUM(CASE WHEN m.created_at != o.created_at THEN o.cost_usd END), 0) {both}"
    ).fetchone()
    changed = db.execute(
        f"INSERT INTO main.responses ({cols}) SELECT {cols} FROM other.responses WHERE true "
        f"ON CONFLICT(key) DO UPDATE SET {updates} "
        "WHERE main.responses.finish_reason != 'stop' AND excluded.finish_reason = 'stop'"
    ).rowcount
    total = db.execute("SELECT COUNT(*) FROM other.responses").fetchone()[0]
    added = changed - upgraded
    counts["added"] += added
    counts["already_present"] += total - added
    counts["conflicts"] += conflicts
    counts["upgraded"] += upgraded
    counts["paid_twice_usd"] += paid_twice
    fcols = ", ".join(FAILURE_COLUMNS)
    counts["failures_added"] += db.execute(
        f"INSERT OR IGNORE INTO main.failures ({fcols}) SELECT {fcols} FROM other.failures"
    ).rowcount
    db.execute("INSERT OR IGNORE INTO main.batches SELECT * FROM other.batches")
    db.execute("INSERT OR IGNORE INTO main.batch_requests SELECT * FROM other.batch_requests")
    if db.execute(  # a read-only older input has none
        "SELECT 1 FROM other.sqlite_master WHERE type = 'table' AND name = 'batch_details'"
    ).fetchone():
        db.execute(
            "INSERT OR IGNORE INTO main.batch_details (batch_id, base_url, completed, failed) "
            "SELECT batch_id, base_url, completed, failed FROM other.batch_details"
        )
    for table, cols in (("response_settings", "key, settings"), ("prompt_versions", "prompt_version, task, details")):
        if db.execute(  # schema 4: a key has one body, so one settings row, whichever file answered it
            "SELECT 1 FROM other.sqlite_master WHERE type = 'table' AND name = ?", (table,)
        ).fetchone():
            db.execute(f"INSERT OR IGNORE INTO main.{table} ({cols}) SELECT {cols} FROM other.{table}")


def check_merge_inputs(out: str | Path, inputs: Iterable[str | Path]) -> None:
    """Raise the first problem of the caches to merge into ``out``, before anything is created or written.

    Each input must exist, be a keypoint-instruct cache of this schema, and not be ``out`` itself.
    """
    out = Path(out)
    missing = [str(p) for p in inputs if not Path(p).is_file()]
    if missing:
        raise InputNotFoundError(f"cache to merge not found: {', '.join(missing)}")
    for other in map(Path, inputs):
        if other.resolve() == out.resolve():
            raise CacheError(f"cannot merge {other} into itself")
        ResponseCache(other).close()  # validates the file and its schema


@dataclass
class MergeReport:
    """What ``cache merge`` did: ``counts`` as :func:`merge` gives them; ``str`` is what the command prints."""

    out: Path
    inputs: int
    counts: dict[str, float]

    def __str__(self) -> str:
        c = self.counts
        text = (
            f"merged {self.inputs} caches into {self.out}: {c['added']} responses added, "
            f"{c['already_present']} already present ({c['conflicts']} with a different text: kept the "
            f"existing, except {c['upgraded']} cut or filtered answers replaced by complete ones), "
            f"{c['failures_added']} failure records added"
        )
        if c["paid_twice_usd"] > 0:
            text += (
                f"\nnote: some keys were answered separately in more than one cache; ${c['paid_twice_usd']:.4f} "
                "was paid twice (did shards overlap?)"
            )
        return text


def merge_into(out: Path, inputs: list[Path]) -> MergeReport:
    """Merge ``inputs`` into ``out``, created if missing; a bad input fails before ``out`` is created.

    A merge that fails leaves no new file behind (the cache and its ``-wal``/``-shm`` files); a cache that was there
    before stays.
    """
    check_merge_inputs(out, inputs)
    created = not out.exists()
    try:
        with ResponseCache(out, create=True) as cache:
            counts = merge(cache, inputs)
    except BaseException:
        if created:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{out}{suffix}").unlink(missing_ok=True)
        raise
    return MergeReport(out, len(inputs), counts)
