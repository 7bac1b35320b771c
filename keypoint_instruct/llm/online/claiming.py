"""Which keys of a run's queue the run holds a claim on (:class:`KeyClaims`, over the store's :class:`Claims`).

Takes the keys a run has to send, in order, and the run's summary. The queue is claimed a chunk at a time (as many
keys as requests may be in flight), so a run claims ahead of what it sends but not the whole file at once. Keys that
another live run holds, that were answered meanwhile or that wait in a batch are counted in the summary
(``claimed_elsewhere``, ``already_cached``, ``in_batch``) and not sent. Right before each attempt the claim is
confirmed (its lease renewed); a claim that lapsed and was taken over is never sent under.

Claims left by runs that ended without releasing them (a ``kill -9``) are taken over only as the run reaches their
keys, a chunk at a time (``taken_over`` in the summary counts them); :meth:`KeyClaims.report_stale` says once, at
the start, how many the cache holds and what becomes of each: taken over by this run, removed (their key was
answered since), or left for a run that sends their key (another selection, or waiting in a batch).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager

from keypoint_instruct.llm.online.summary import RunSummary
from keypoint_instruct.llm.store.claims import ClaimResult, Claims

log = logging.getLogger("keypoint_instruct.llm.online.engine")  # the engine's lines keep the engine's logger name


class KeyClaims:
    """The claims of one run on the keys of its queue; ``mine`` are the keys it holds and has not settled."""

    def __init__(self, claims: Claims, keys: list[str], chunk: int, summary: RunSummary) -> None:
        self.claims = claims
        self.keys = keys
        self.chunk = chunk
        self.summary = summary
        self.mine: set[str] = set()  # keys this run holds a claim on
        self.decided: set[str] = set()  # keys whose claim was tried
        self.next = 0  # keys[next:] not tried yet

    @property
    def owner(self) -> str:
        return self.claims.owner

    def renewing(self) -> AbstractContextManager[Claims]:
        """Renew the leases while the run goes; release every claim when it ends."""
        return self.claims.renewing()

    def take(self, key: str) -> bool:
        """Claim the queue in order, a chunk at a time, until ``key`` is tried; True when this run holds it."""
        if key in self.mine:
            return True
        for chunk in self._chunks_through(key):
            got = self.claims.claim(chunk)
            self.decided.update(chunk)
            self.mine.update(got.claimed)
            self.summary.taken_over += len(got.taken_over)
            self._count_elsewhere(got)
            if got.held:
                log.debug("%d keys are being sent by another run; skipped", len(got.held))
        return key in self.mine

    def report_stale(self) -> None:
        """One line on the claims that runs which ended (killed) left in the cache, and what this run does with
        them; claims on keys answered since are removed."""
        stale = self.claims.stale()
        if not stale:
            return
        ours = stale & set(self.keys)
        removed = self.claims.drop_answered(stale - ours)
        others = len(stale) - len(ours) - removed
        parts = [
            f"{len(ours)} on requests of this run, taken over as the run reaches them ({self.chunk} at a time)",
            f"{removed} on requests answered since, removed",
            f"{others} on requests this run does not send (another selection, or waiting in a batch), left for a "
            "run that sends them",
        ]
        log.info(
            "the cache holds %d claims of runs that ended without releasing them (a run killed with kill -9 "
            "leaves its claims): %s",
            len(stale),
            "; ".join(part for part, n in zip(parts, (len(ours), removed, others), strict=True) if n),
        )

    def _chunks_through(self, key: str) -> Iterator[list[str]]:
        while key not in self.decided and self.next < len(self.keys):
            chunk = self.keys[self.next : self.next + self.chunk]
            self.next += len(chunk)
            yield chunk

    def confirm(self, key: str) -> bool:
        """Right before an attempt: True when this run still holds the key's claim (lease renewed), else it is
        counted as answered, in a batch or claimed elsewhere and must not be sent (a claim can lapse while the key
        waits for the rate limiter or a retry, e.g. a suspended laptop, and be taken over by another run)."""
        if self.claims.confirm(key):
            return True
        self.mine.discard(key)
        got = self.claims.claim([key])
        if got.claimed:
            self.mine.add(key)
            self.summary.taken_over += len(got.taken_over)
            return True
        log.warning("the claim on key %s lapsed and another run took it; this run does not send it", key[:12])
        self._count_elsewhere(got)
        return False

    def drop(self, key: str) -> None:
        """The key is settled without an answer of this run (given up, answered or batched elsewhere): release it."""
        self.mine.discard(key)
        self.claims.release([key])

    def stored(self, key: str) -> None:
        """The key's answer is stored (storing it released the claim in the same transaction)."""
        self.mine.discard(key)

    def _count_elsewhere(self, got: ClaimResult) -> None:
        self.summary.claimed_elsewhere += len(got.held)
        self.summary.already_cached += len(got.answered)
        self.summary.in_batch += len(got.in_batch)
