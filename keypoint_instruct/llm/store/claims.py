"""In-flight claims in the response cache: two runs on one cache file never send the same key at the same time.

A run (``generate``, ``batch submit``, the benchmark's teacher and judge calls) claims a key in the cache file, in
one transaction with the check that the key is neither answered nor waiting in a batch, before it sends it. A claim
names its owner (``machine:pid:random``, the machine being the host name and PID namespace) and a lease expiry (Unix
time). While the run is alive a thread renews its leases (every quarter of the lease, on its own SQLite connection);
before each attempt the run confirms it still holds the claim. The claim goes when the answer is stored (same
transaction), when the key is given up, when the batch carrying it is recorded, and when the run ends.

Another run skips a key whose claim is live and says how many it skipped. A claim is live while its lease has not
expired and, when its owner ran on this machine, while that process exists: a run killed outright (``kill -9``,
out of memory) on this machine leaves claims that the next run takes over at once; one killed in a container with
its own process ids (sharing the file through a mounted folder) leaves claims that are taken over when their lease
expires. A run that was merely paused for longer than its lease (a suspended laptop) can lose its claims the same
way; it then sends none of those keys again. A run takes over such claims only on keys it claims itself, when it
reaches them: the engine claims its queue a chunk at a time, so a rerun after a ``kill -9`` takes the dead run's
claims over as it goes, and leaves alone those on keys it does not send (another selection, waiting in a batch);
claims of ended runs on keys answered since bind nothing and are removed (:meth:`Claims.stale`,
:meth:`Claims.drop_answered`). One cache file is for the runs of one host: SQLite's WAL mode does not
work over a network file system, so machines each write their own file (``--shard``) and ``cache merge`` joins them.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from keypoint_instruct.errors import CacheError, UsageError
from keypoint_instruct.llm.store.batches import BatchJobs

if TYPE_CHECKING:
    from keypoint_instruct.llm.store.cache import ResponseCache

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 120.0
_CHUNK = 500  # keys per SQL statement (SQLite's variable limit is far above)


@functools.cache
def this_machine() -> str:
    """Where this process's ids mean something: the host name, and on Linux the PID namespace.

    A container sharing the host's name (``docker run --network host``) has its own process ids; with its PID
    namespace in the name, a claim made there is not judged by a process id that means nothing here.
    """
    name = socket.gethostname()
    try:
        return f"{name}/pidns{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # not Linux, or no /proc: the host name alone
        return name


def new_owner() -> str:
    """A claim owner id: this machine, this process and a random part (one run of one process)."""
    return f"{this_machine()}:{os.getpid()}:{secrets.token_hex(4)}"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # it exists (another user's), or we cannot tell: treat it as alive
        return True
    return True


def is_live(owner: str, expires_at: float, now: float) -> bool:
    """Whether a claim still binds: lease not expired and, for an owner on this machine, its process exists."""
    if expires_at <= now:
        return False
    machine, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if machine == this_machine() and pid.isdigit():
        return _process_exists(int(pid))
    return True


@dataclass
class ClaimResult:
    """What a :meth:`Claims.claim` found for each key it was given."""

    claimed: set[str] = field(default_factory=set)  # now claimed by this run: send them
    held: set[str] = field(default_factory=set)  # claimed by another live run: skip them
    answered: set[str] = field(default_factory=set)  # answered meanwhile
    in_batch: set[str] = field(default_factory=set)  # waiting in an uncollected batch
    taken_over: set[str] = field(default_factory=set)  # of ``claimed``: claims of runs that ended, taken over


class Claims:
    """The claims of one run on one open :class:`ResponseCache`."""

    def __init__(self, cache: ResponseCache, *, lease_s: float = DEFAULT_LEASE_S, owner: str | None = None) -> None:
        if not lease_s > 0:
            raise UsageError(f"claim lease {lease_s} s must be positive")
        if cache.schema_version < 2:  # an older cache that could not be upgraded
            raise CacheError(
                f"{cache.path} is read-only and of cache schema {cache.schema_version}: no request can be sent with "
                "it; make the file writable (it is then upgraded and keeps its data)"
            )
        self.cache = cache
        self.lease_s = float(lease_s)
        self.owner = owner or new_owner()
        self._db = cache.db
        self._claimed_any = False  # nothing to renew or release before the first claim

    def claim(self, keys: Iterable[str]) -> ClaimResult:
        """Claim every key that is not answered, not in a batch and not claimed by another live run (atomically)."""
        result = ClaimResult()
        keys = list(dict.fromkeys(keys))
        jobs = BatchJobs(self.cache)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            try:
                answered, in_batch, held, others, mine = self._claim_chunk(chunk, jobs)
            except sqlite3.Error as err:  # a read-only file, a lock held for longer than the busy timeout
                raise CacheError(f"claiming requests in the response cache {self.cache.path} failed: {err}") from None
            self._claimed_any = self._claimed_any or bool(mine)
            taken = {key for key, _, _ in others} & set(mine)
            if taken:
                log.debug("took over %d claims of runs that ended or stopped renewing", len(taken))
            result.taken_over |= taken
            result.claimed.update(mine)
            result.held |= held
            result.answered |= answered
            result.in_batch |= in_batch
        return result

    def _claim_chunk(self, chunk: list[str], jobs: BatchJobs):
        """One transaction of :meth:`claim`: (answered, in a batch, held elsewhere, others' claim rows, claimed)."""
        marks = ",".join("?" * len(chunk))
        with self.cache.transaction():
            now = time.time()
            answered = self.cache.answered(chunk)
            in_batch = jobs.pending_among(k for k in chunk if k not in answered)
            others = self._db.execute(
                f"SELECT key, owner, expires_at FROM claims WHERE key IN ({marks}) AND owner != ?",
                (*chunk, self.owner),
            ).fetchall()
            held = {key for key, owner, expires in others if is_live(owner, expires, now)}
            mine = [k for k in chunk if k not in answered and k not in in_batch and k not in held]
            self._db.executemany(
                "INSERT INTO claims (key, owner, expires_at) VALUES (?,?,?) ON CONFLICT(key) DO UPDATE SET "
                "owner = excluded.owner, expires_at = excluded.expires_at",
                [(k, self.owner, now + self.lease_s) for k in mine],
            )
        return answered, in_batch, held, others, mine

    def held_elsewhere(self, keys: Iterable[str]) -> set[str]:
        """The subset of ``keys`` claimed by other live runs (reads only)."""
        keys = list(keys)
        now = time.time()
        found: set[str] = set()
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            rows = self._db.execute(
                f"SELECT key, owner, expires_at FROM claims WHERE key IN ({','.join('?' * len(chunk))}) "
                "AND owner != ?",
                (*chunk, self.owner),
            )
            found.update(key for key, owner, expires in rows if is_live(owner, expires, now))
        return found

    def stale(self) -> set[str]:
        """Keys claimed by other runs whose claims no longer bind (ended on this machine, or lease expired)."""
        now = time.time()
        rows = self._db.execute("SELECT key, owner, expires_at FROM claims WHERE owner != ?", (self.owner,))
        return {key for key, owner, expires in rows if not is_live(owner, expires, now)}

    def drop_answered(self, keys: Iterable[str]) -> int:
        """Remove other runs' claims on those of ``keys`` that are answered (no run claims an answered key, so
        such a claim of an ended run would stay forever); how many went. Call it with :meth:`stale` keys only."""
        keys = list(keys)
        dropped = 0
        try:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                dropped += self._db.execute(
                    f"DELETE FROM claims WHERE key IN ({marks}) AND owner != ? AND key IN (SELECT key FROM responses)",
                    (*chunk, self.owner),
                ).rowcount
        except sqlite3.Error as err:  # they bind nothing either way; a later run removes them
            log.debug("could not remove claims of ended runs on answered requests: %s", err)
        return dropped

    def confirm(self, key: str) -> bool:
        """Whether this run still holds its claim on ``key``; if so its lease starts afresh (one atomic statement).

        False when the claim lapsed and was taken over (a run paused for longer than its lease, renewals that kept
        failing) or is gone: the key must not be sent under it.
        """
        renew = "UPDATE claims SET expires_at = ? WHERE key = ? AND owner = ?"
        cursor = self._db.execute(renew, (time.time() + self.lease_s, key, self.owner))
        return cursor.rowcount == 1

    def release(self, keys: Iterable[str]) -> None:
        """Drop this run's claims on ``keys``."""
        self._db.executemany("DELETE FROM claims WHERE key = ? AND owner = ?", [(k, self.owner) for k in keys])

    def release_all(self) -> None:
        """Drop every claim of this run (it is ending)."""
        self._db.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))

    def renew(self, db: sqlite3.Connection | None = None) -> int:
        """Push the lease of every claim of this run forward; returns how many there are."""
        db = db or self._db
        cursor = db.execute(
            "UPDATE claims SET expires_at = ? WHERE owner = ?", (time.time() + self.lease_s, self.owner)
        )
        return cursor.rowcount

    @contextmanager
    def renewing(self) -> Iterator[Claims]:
        """Renew the leases in a background thread while the block runs; release every claim when it ends."""
        stop = threading.Event()
        thread = threading.Thread(target=self._keep_alive, args=(stop,), daemon=True, name="claims-keep-alive")
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(10)
            try:
                if self._claimed_any:
                    self.release_all()
            except sqlite3.Error as err:  # the claims expire with their lease anyway
                log.warning("could not release the claims of this run in %s (%s); they expire", self.cache.path, err)

    def _keep_alive(self, stop: threading.Event) -> None:
        db = sqlite3.connect(self.cache.path, timeout=60.0, isolation_level=None)
        # A longer wait than threading.TIMEOUT_MAX (a lease of 1e12 s) is an OverflowError, not a long wait.
        every_s = min(self.lease_s / 4, threading.TIMEOUT_MAX)
        try:
            while not stop.wait(every_s):
                if not self._claimed_any:
                    continue
                try:
                    self.renew(db)
                except sqlite3.Error as err:  # keep trying: a busy file now and then must not end the renewals
                    log.warning("renewing the claims in %s failed (%s); retrying", self.cache.path, err)
        finally:
            db.close()
