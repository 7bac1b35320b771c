"""The Batch API jobs recorded in a response cache file: which batch carries which keys, and what is still pending.

The tables ``batches`` and ``batch_requests`` live in the cache file itself (``schema.sql``), so the
bookkeeping travels with the answers, ``cache merge`` carries it, and :meth:`BatchJobs.pending_keys` is what
``generate`` and ``batch submit`` leave out: a key waiting in a submitted, uncollected batch is never paid twice.
A batch the provider lost (or the user gave up on) is *forgotten* (:meth:`BatchJobs.forget`, status ``forgotten``):
its row stays for ``batch status``, its keys without an answer are no longer pending.

A batch being created has a *provisional* row first (:meth:`BatchJobs.record_submitting`, status ``submitting``,
id ``submitting-<input file id>``), written before the create call: its keys are pending from then on, so a
``batch submit`` killed before it learns the batch id leaves them pending rather than free. :meth:`BatchJobs.record`
with ``replaces`` turns it into the real row; :meth:`BatchJobs.drop_submitting` removes one whose batch was never
made (:func:`keypoint_instruct.llm.batch.recover.resolve_submitting` decides which, asking the provider).

``batch_details`` (cache schema 3) keeps, per batch, the ``--base-url`` it was submitted to (never the key) and the
provider's request counts at collect time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from keypoint_instruct.errors import CacheError
from keypoint_instruct.llm.store.cache import ResponseCache, utc_now

if TYPE_CHECKING:
    from keypoint_instruct.llm.request import ChatRequest


_UPDATABLE = ("status", "output_file_id", "error_file_id", "collected_at")
FORGOTTEN = "forgotten"
SUBMITTING = "submitting"  # a provisional row: the batch of its input file is being created (or its submit died)
_PENDING = (
    "SELECT r.key FROM batch_requests r JOIN batches b ON b.batch_id = r.batch_id "
    f"WHERE b.collected_at IS NULL AND b.status != '{FORGOTTEN}' "
    "AND NOT EXISTS (SELECT 1 FROM responses x WHERE x.key = r.key)"
)


class BatchJobs:
    """The batch records of one open :class:`ResponseCache`."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache
        self._db = cache.db

    def record(
        self,
        batch_id: str,
        requests: Iterable[ChatRequest],
        *,
        input_file_id: str,
        status: str,
        claim_owner: str | None = None,
        replaces: str | None = None,
        base_url: str | None = None,
    ) -> None:
        """Remember a submitted batch and which keys it carries (one transaction).

        ``claim_owner``: release that run's claims on the keys in the same transaction (they are pending from now on).
        ``replaces``: the provisional row of the same input file, removed in the same transaction.
        ``base_url``: the endpoint it was submitted to (None: the default one), asked later when none is given.
        """
        now = utc_now()
        rows = [(r.key, batch_id, r.task, int(r.item_id), r.collection, r.prompt_version) for r in requests]
        with self.cache.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO batches (batch_id, input_file_id, status, n_requests, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?)",
                (batch_id, input_file_id, status, len(rows), now, now),
            )
            self._db.executemany("INSERT OR REPLACE INTO batch_requests VALUES (?,?,?,?,?,?)", rows)
            self._db.execute(
                "INSERT OR REPLACE INTO batch_details (batch_id, base_url) VALUES (?, ?)", (batch_id, base_url)
            )
            if replaces is not None and replaces != batch_id:
                self._db.execute("DELETE FROM batch_requests WHERE batch_id = ?", (replaces,))
                self._db.execute("DELETE FROM batches WHERE batch_id = ?", (replaces,))
                self._db.execute("DELETE FROM batch_details WHERE batch_id = ?", (replaces,))
            if claim_owner is not None:
                self._db.executemany(
                    "DELETE FROM claims WHERE key = ? AND owner = ?", [(row[0], claim_owner) for row in rows]
                )

    def record_submitting(
        self, input_file_id: str, requests: Iterable[ChatRequest], *, base_url: str | None = None
    ) -> str:
        """Record the keys of a batch about to be created from ``input_file_id`` (pending from now on); its row id.

        The caller keeps its claims on the keys until :meth:`record` replaces this row: a live claim tells
        ``llm.batch.recover.resolve_submitting`` that the batch is still being created, not left behind by a killed
        submit.
        """
        batch_id = f"{SUBMITTING}-{input_file_id}"
        self.record(batch_id, requests, input_file_id=input_file_id, status=SUBMITTING, base_url=base_url)
        return batch_id

    def submitting(self) -> list[dict]:
        """The provisional rows (see :meth:`record_submitting`), oldest first, each with its ``keys``."""
        rows = [row for row in self.rows() if row["status"] == SUBMITTING and row["collected_at"] is None]
        for row in rows:
            cursor = self._db.execute("SELECT key FROM batch_requests WHERE batch_id = ?", (row["batch_id"],))
            row["keys"] = [key for (key,) in cursor]
        return rows

    def drop_submitting(self, batch_id: str) -> int:
        """Remove a provisional row whose batch was never made: its keys become sendable. Returns how many.

        The keys' own rows stay (task, image id, split and prompt version of a key, which ``batch collect`` of a
        forgotten batch that also carried it still reads); belonging to no batch, they are not pending.
        """
        with self.cache.transaction():
            count = f"SELECT COUNT(*) FROM ({_PENDING} AND r.batch_id = ?)"
            freed = self._db.execute(count, (batch_id,)).fetchone()[0]
            cursor = self._db.execute("DELETE FROM batches WHERE batch_id = ? AND status = ?", (batch_id, SUBMITTING))
            if cursor.rowcount:
                self._db.execute("DELETE FROM batch_details WHERE batch_id = ?", (batch_id,))
        return freed if cursor.rowcount else 0

    def adopt(self, provisional_id: str, batch_id: str, status: str) -> int:
        """Turn a provisional row into the record of the batch the provider made from its input file (one
        transaction). Returns how many requests it carries; 0 when the row is gone (resolved meanwhile)."""
        now = utc_now()
        with self.cache.transaction():
            row = self._db.execute(
                "SELECT input_file_id, n_requests FROM batches WHERE batch_id = ? AND status = ?",
                (provisional_id, SUBMITTING),
            ).fetchone()
            if row is None:
                return 0
            self._db.execute(
                "INSERT OR REPLACE INTO batches (batch_id, input_file_id, status, n_requests, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?)",
                (batch_id, row[0], status, row[1], now, now),
            )
            self._db.execute("UPDATE batch_requests SET batch_id = ? WHERE batch_id = ?", (batch_id, provisional_id))
            self._db.execute("DELETE FROM batches WHERE batch_id = ?", (provisional_id,))
            self._db.execute(
                "UPDATE OR REPLACE batch_details SET batch_id = ? WHERE batch_id = ?", (batch_id, provisional_id)
            )
        return row[1]

    def update(self, batch_id: str, **fields: str | None) -> None:
        """Set ``status``, ``output_file_id``, ``error_file_id`` or ``collected_at`` of a recorded batch."""
        unknown = set(fields) - set(_UPDATABLE)
        if unknown:
            raise CacheError(f"unknown batch fields {sorted(unknown)}; expected some of {list(_UPDATABLE)}")
        sets = ", ".join(f"{name} = ?" for name in fields)
        self._db.execute(
            f"UPDATE batches SET {sets}, updated_at = ? WHERE batch_id = ?", (*fields.values(), utc_now(), batch_id)
        )

    def record_counts(self, batch_id: str, completed: int | None, failed: int | None) -> None:
        """Keep the provider's request counts of a batch as it is collected (``batch status`` shows them later)."""
        self._db.execute(
            "INSERT INTO batch_details (batch_id, completed, failed) VALUES (?, ?, ?) "
            "ON CONFLICT(batch_id) DO UPDATE SET completed = excluded.completed, failed = excluded.failed",
            (batch_id, completed, failed),
        )

    def rows(self) -> list[dict]:
        """Every recorded batch, oldest first, with its ``base_url`` and collected ``completed``/``failed`` counts
        (None where not recorded: the default endpoint; not collected, or collected before cache schema 3)."""
        details = "d.base_url, d.completed, d.failed"
        joined = "LEFT JOIN batch_details d ON d.batch_id = b.batch_id"
        if self.cache.schema_version < 3:  # a read-only older cache: read as it is
            details, joined = "NULL AS base_url, NULL AS completed, NULL AS failed", ""
        cursor = self._db.execute(f"SELECT b.*, {details} FROM batches b {joined} ORDER BY b.created_at, b.batch_id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def row(self, batch_id: str) -> dict | None:
        """The record of one batch, or None when this cache has none."""
        return next((row for row in self.rows() if row["batch_id"] == batch_id), None)

    def forget(self, batch_id: str) -> int:
        """Mark a batch forgotten: its keys without an answer are free to send again. Returns how many they are."""
        with self.cache.transaction():
            freed = self._db.execute(f"SELECT COUNT(*) FROM ({_PENDING} AND r.batch_id = ?)", (batch_id,)).fetchone()[
                0
            ]
            self._db.execute(
                "UPDATE batches SET status = ?, updated_at = ? WHERE batch_id = ?", (FORGOTTEN, utc_now(), batch_id)
            )
        return freed

    def ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT batch_id FROM batches")}

    def request(self, key: str) -> dict | None:
        """Task, image id, split and prompt version of a key sent in a batch."""
        cursor = self._db.execute("SELECT * FROM batch_requests WHERE key = ?", (key,))
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else None

    def is_pending(self, key: str) -> bool:
        """Whether ``key`` waits in a submitted, uncollected batch (and has no response yet)."""
        return bool(self.pending_among([key]))

    def pending_among(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` waiting in submitted, uncollected batches without a response."""
        keys = list(keys)
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            query = f"{_PENDING} AND r.key IN ({','.join('?' * len(chunk))})"
            found.update(row[0] for row in self._db.execute(query, chunk))
        return found

    def pending_keys(self) -> set[str]:
        """Keys submitted in batches that are not collected yet and have no response."""
        return {row[0] for row in self._db.execute(_PENDING)}
