"""The response cache: one SQLite file (WAL) with every teacher answer by request key, exactly once.

A response is committed the moment it arrives, so a crash loses at most the requests in flight. The insert cannot
duplicate (``ON CONFLICT(key) DO NOTHING``): when two shards answer the same key, the first answer stays. Failed
attempts go to their own table with the reason. Several processes may write one file at once (WAL + busy timeout);
:mod:`keypoint_instruct.llm.store.merge` joins the files of shards that wrote separately, and
:mod:`keypoint_instruct.llm.store.stats` says what a file holds. The same file records the Batch API jobs
(:mod:`keypoint_instruct.llm.store.batches`), so every command that sends requests knows what waits in a batch, and
the keys other runs are sending right now (:mod:`keypoint_instruct.llm.store.claims`; never merged).

An empty answer that says it ended normally (:func:`~keypoint_instruct.llm.request.is_empty_answer`) is no answer:
the engine never stores one, and one stored by an earlier version does not count as answered (:meth:`answered`),
so a rerun asks again and :meth:`ResponseCache.put` replaces it.

A cache of an older schema is brought up to date when it is opened (its data kept): the schema file only holds
``IF NOT EXISTS`` statements, so running it again adds what the older schema lacks.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from keypoint_instruct.errors import CacheError, InputNotFoundError
from keypoint_instruct.llm.request import canonical_json, is_empty_answer, sampling_of
from keypoint_instruct.llm.store.stats import EMPTY_SQL, CacheStats, read_stats

if TYPE_CHECKING:
    from keypoint_instruct.llm.request import ChatRequest, Completion

log = logging.getLogger(__name__)

SCHEMA_VERSION = 4  # 2: the claims table (claims.py); 3: batch_details (endpoint, counts); 4: response_settings,
# prompt_versions (prompts.py)
_APPLICATION_ID = 0x4B505449  # "KPTI": marks the file as a keypoint-instruct cache
_BUSY_TIMEOUT_S = 60.0  # how long a statement waits for another process's write lock

# fmt: off
RESPONSE_COLUMNS = ("key", "task", "image_id", "coco_split", "model", "prompt_version", "text", "finish_reason",
                     "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd", "latency_s", "created_at")
# fmt: on
FAILURE_COLUMNS = ("key", "task", "image_id", "coco_split", "model", "prompt_version", "reason", "created_at")


@dataclass(frozen=True)
class CachedResponse:
    key: str
    task: str
    image_id: int
    coco_split: str
    model: str
    prompt_version: str
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    latency_s: float
    created_at: str  # ISO 8601 UTC
    # The request's sampling settings as canonical JSON (llm.request.sampling_of); None for an answer stored before
    # schema 4 (they were not kept then).
    settings: str | None = None

    @property
    def sampling(self) -> dict | None:
        """The sampling settings of the request this answers, or None where they were not recorded."""
        return json.loads(self.settings) if self.settings else None

    @property
    def ok(self) -> bool:
        """True when the teacher finished normally (not cut by length, not filtered) with some text."""
        return self.finish_reason == "stop" and not is_empty_answer(self.text, self.finish_reason)


def _schema() -> str:
    return (resources.files(__package__) / "schema.sql").read_text(encoding="utf-8")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def completion_cost(model: str, completion: Completion, *, batch: bool = False) -> float:
    """Dollars for one completion from the pricing table; 0 for a model the table does not price."""
    from keypoint_instruct.llm import pricing

    return pricing.completion_cost(
        model,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        cached_tokens=completion.cached_tokens,
        batch=batch,
    )


class ResponseCache:
    """SQLite (WAL) cache of teacher responses by request key; failures kept in their own table."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise InputNotFoundError(
                f"response cache {self.path} does not exist; run `keypoint-instruct generate` "
                "first or check the --cache path"
            )
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise CacheError(
                    f"cannot create the folder of the response cache {self.path}: {err.strerror}"
                ) from None
        try:
            self._db = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            self._check_or_init()
        except sqlite3.DatabaseError as err:
            raise CacheError(f"{self.path} is not a readable response cache ({err})") from None

    def _check_or_init(self) -> None:
        app_id, tables = self._identity()
        if app_id == 0 and not tables:  # a new file: create it under the write lock, unless another run just did
            with self.transaction():
                app_id, tables = self._identity()
                if app_id == 0 and not tables:
                    self._apply_schema()
                    self._db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                    app_id = _APPLICATION_ID
        if app_id != _APPLICATION_ID:
            raise CacheError(f"{self.path} is an SQLite file but not a keypoint-instruct response cache")
        self._use_wal()
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CacheError(
                f"{self.path} has cache schema {version}, written by a newer keypoint-instruct; this version "
                f"reads schema {SCHEMA_VERSION} and older"
            )
        if version < SCHEMA_VERSION:
            try:
                with self.transaction():  # another process may have migrated it meanwhile: read again inside
                    version = self._db.execute("PRAGMA user_version").fetchone()[0]
                    if version < SCHEMA_VERSION:
                        self._apply_schema()
                        log.info("%s: cache schema %d brought up to %d", self.path, version, SCHEMA_VERSION)
                        version = SCHEMA_VERSION
            except sqlite3.OperationalError as err:  # a read-only file: it is read as it is (no claims table)
                if "readonly" not in str(err):
                    raise
                log.info("%s: cache schema %d, read-only here: read as it is", self.path, version)
        self.schema_version = version  # the file's schema; below SCHEMA_VERSION only for a read-only older file
        # NORMAL in WAL mode: a commit survives the process being killed (not a power cut) and costs no fsync.
        self._db.execute("PRAGMA synchronous = NORMAL")

    def _identity(self) -> tuple[int, int]:
        """(application id, number of tables), read in one snapshot (another run may be creating the file)."""
        return self._db.execute(
            "SELECT (SELECT application_id FROM pragma_application_id()), "
            "(SELECT COUNT(*) FROM sqlite_master WHERE type = 'table')"
        ).fetchone()

    def _use_wal(self) -> None:
        """Switch the file to WAL. SQLite answers 'locked' at once, without waiting, while another connection
        writes the file in its first (rollback-journal) mode: retry then, within the busy timeout."""
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _apply_schema(self) -> None:
        """Run the schema file (IF NOT EXISTS statements: creates a cache, or adds what an older one lacks)."""
        for statement in _schema().split(";"):
            if statement.strip():
                self._db.execute(statement)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @property
    def db(self) -> sqlite3.Connection:
        """The open SQLite connection (autocommit), for the other modules of :mod:`keypoint_instruct.llm.store`."""
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----------------------------------------------------------------- reading
    def _select(self) -> str:
        """SELECT ... FROM responses r, with each answer's settings (NULL before schema 4 or in an older file)."""
        cols = ", ".join(f"r.{c}" for c in RESPONSE_COLUMNS)
        if self.schema_version < 4:  # a read-only older file has no settings table
            return f"SELECT {cols}, NULL FROM responses r"
        return f"SELECT {cols}, s.settings FROM responses r LEFT JOIN response_settings s ON s.key = r.key"

    def get(self, key: str) -> CachedResponse | None:
        row = self._db.execute(f"{self._select()} WHERE r.key = ?", (key,)).fetchone()
        return CachedResponse(*row) if row else None

    def answered(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` that already has a response (of any finish reason; an empty one stored by an
        earlier version does not count: it is asked again)."""
        keys = list(keys)
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key FROM responses WHERE key IN ({marks}) AND NOT {EMPTY_SQL}"
            found.update(r[0] for r in self._db.execute(query, chunk))
        return found

    def iter_responses(self, task: str | None = None, coco_split: str | None = None) -> Iterator[CachedResponse]:
        """Responses ordered by (task, image_id, key), optionally of one task and split."""
        where, params = [], []
        if task is not None:
            where.append("r.task = ?")
            params.append(task)
        if coco_split is not None:
            where.append("r.coco_split = ?")
            params.append(coco_split)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        query = f"{self._select()}{clause} ORDER BY r.task, r.image_id, r.key"
        for row in self._db.execute(query, params):
            yield CachedResponse(*row)

    def splits(self) -> dict[str, int]:
        """Responses per COCO split, by split name."""
        query = "SELECT coco_split, COUNT(*) FROM responses GROUP BY coco_split ORDER BY coco_split"
        return dict(self._db.execute(query).fetchall())

    def image_ids(self, tasks: Iterable[str]) -> dict[str, set[int]]:
        """The ids of the images answered for ``tasks``, per COCO split (the ``coco_split`` column)."""
        tasks = list(tasks)
        query = f"SELECT DISTINCT coco_split, image_id FROM responses WHERE task IN ({', '.join('?' * len(tasks))})"
        found: dict[str, set[int]] = {}
        for split, image_id in self._db.execute(query, tasks):
            found.setdefault(split, set()).add(int(image_id))
        return found

    def failed_keys(self, coco_split: str) -> int:
        """How many keys of ``coco_split`` have failed attempts recorded (answered or not)."""
        query = "SELECT COUNT(DISTINCT key) FROM failures WHERE coco_split = ?"
        return self._db.execute(query, (coco_split,)).fetchone()[0]

    def answer_sources(self, coco_split: str, tasks: Iterable[str]) -> list[tuple[str, str, int]]:
        """(model, prompt version, responses) of ``coco_split``'s responses to ``tasks``."""
        tasks = list(tasks)
        query = (
            "SELECT model, prompt_version, COUNT(*) FROM responses "
            f"WHERE coco_split = ? AND task IN ({', '.join('?' * len(tasks))}) GROUP BY model, prompt_version"
        )
        return self._db.execute(query, (coco_split, *tasks)).fetchall()

    def failures(self, key: str | None = None) -> list[dict]:
        """Failed attempts (oldest first), of one key or all."""
        cols = ", ".join(FAILURE_COLUMNS)
        query = f"SELECT {cols} FROM failures" + (" WHERE key = ?" if key else "") + " ORDER BY id"
        return [dict(zip(FAILURE_COLUMNS, r, strict=True)) for r in self._db.execute(query, (key,) if key else ())]

    def stats(self) -> CacheStats:
        """Answers by task, model and status, tokens, money and failures (:mod:`keypoint_instruct.llm.store.stats`)."""
        return read_stats(self._db, with_settings=self.schema_version >= 4)

    # ----------------------------------------------------------------- writing
    def put(
        self,
        request: ChatRequest,
        completion: Completion,
        latency_s: float,
        *,
        cost_usd: float | None = None,
        claim_owner: str | None = None,
    ) -> CachedResponse:
        """Store and commit one answer; an answer already stored for the key wins and is returned, unless it is an
        empty one (stored by an earlier version), which this answer replaces.

        ``cost_usd`` defaults to the synchronous price of the completion (``batch collect`` passes the Batch price).
        ``claim_owner``: release that run's claim on the key in the same transaction
        (:mod:`keypoint_instruct.llm.store.claims`). The request's sampling settings are kept with the answer; they
        are written first, so a crash between the two leaves a harmless settings row (the same key always has the
        same settings), never an answer without them.
        """
        model = completion.model or str(request.body.get("model", ""))
        settings = canonical_json(sampling_of(request.body))
        if cost_usd is None:
            cost_usd = completion_cost(str(request.body.get("model", model)), completion)
        values = (
            request.key,
            request.task,
            int(request.item_id),
            request.collection,
            model,
            request.prompt_version,
            completion.text,
            completion.finish_reason,
            int(completion.prompt_tokens),
            int(completion.completion_tokens),
            int(completion.cached_tokens),
            float(cost_usd),
            float(latency_s),
            utc_now(),
        )
        marks = ",".join("?" * len(values))
        updates = ", ".join(f"{c} = excluded.{c}" for c in RESPONSE_COLUMNS if c != "key")
        insert = (
            f"INSERT INTO responses ({', '.join(RESPONSE_COLUMNS)}) VALUES ({marks}) "
            f"ON CONFLICT(key) DO UPDATE SET {updates} WHERE {EMPTY_SQL.replace('text', 'responses.text')}"
        )
        keep_settings = "INSERT OR IGNORE INTO response_settings (key, settings) VALUES (?, ?)"
        if claim_owner is None:
            self._db.execute(keep_settings, (request.key, settings))
            cursor = self._db.execute(insert, values)
        else:
            with self.transaction():
                self._db.execute(keep_settings, (request.key, settings))
                cursor = self._db.execute(insert, values)
                self._db.execute("DELETE FROM claims WHERE key = ? AND owner = ?", (request.key, claim_owner))
        if cursor.rowcount == 1:
            return CachedResponse(*values, settings)
        log.warning("key %s was already answered; kept the stored response", request.key[:12])
        return self.get(request.key)  # type: ignore[return-value]

    def record_failure(self, request: ChatRequest, reason: str) -> None:
        """Keep one failed attempt and why (committed now)."""
        self._db.execute(
            f"INSERT OR IGNORE INTO failures ({', '.join(FAILURE_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?)",
            (
                request.key,
                request.task,
                int(request.item_id),
                request.collection,
                str(request.body.get("model", "")),
                request.prompt_version,
                reason,
                utc_now(),
            ),
        )
