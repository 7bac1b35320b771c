"""The engine: drives a teacher over many requests with bounded concurrency, rate limits, retries and a cache.

The teacher adapter sends one request; everything around it lives here. Keys already in the cache are never sent.
Every answer is committed as it arrives (answers cut by ``length`` or ``content_filter`` are stored with that finish
reason so the dataset build can drop them), every failed attempt is recorded with its reason, and a run ends with
a :class:`RunSummary`. Rate limits are token buckets (RPM and TPM) that follow the ``x-ratelimit-*`` headers when
the endpoint sends them (:mod:`keypoint_instruct.llm.online.ratelimit`); a 429 pauses all sending until its
Retry-After has passed. Before a request is sent its key is claimed in the cache file
(:mod:`keypoint_instruct.llm.store.claims`, a chunk of the queue at a time): keys another live run on the same file
is sending are skipped and counted (``RunSummary.claimed_elsewhere``), so two runs never pay for one key. With a
spend cap (``EngineSettings.max_cost_usd``, :mod:`keypoint_instruct.llm.online.budget`) a request is sent only when
the money spent so far plus the worst case of everything in flight, itself included, stays within the cap; a request
that does not fit waits for the requests in flight (their real cost, usually far below the worst case, replaces it)
and tries again. Only when nothing is in flight and the next request still does not fit is nothing more sent: the
summary says ``capped``.

A run stops early, with one :class:`TeacherError` line, on an error that every request would hit (a refused key, an
unknown model, an exhausted quota) and when the first request to exhaust its attempts does so before the endpoint
has answered anything (unreachable or broken endpoint). Cancelled (Ctrl-C), it sends nothing new, lets the requests
already in flight finish for up to ``EngineSettings.drain_s`` (they are probably billed), and :func:`run` raises
:class:`RunInterrupted` carrying the summary.

Here the requests are deduplicated and sorted into cached, in a batch and to send. The run itself is a state
machine (:mod:`keypoint_instruct.llm.online.state`); its settings and summary live in :mod:`.settings` and
:mod:`.summary` (both importable from here), its progress bar in :mod:`.progress`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from keypoint_instruct.llm.online.budget import Budget, check_enforceable
from keypoint_instruct.llm.online.settings import EngineSettings
from keypoint_instruct.llm.online.state import EngineRun, Status
from keypoint_instruct.llm.online.summary import RunInterrupted, RunSummary
from keypoint_instruct.llm.request import ChatModel, ChatRequest
from keypoint_instruct.llm.store.batches import BatchJobs
from keypoint_instruct.llm.store.cache import ResponseCache

__all__ = ["EngineRun", "EngineSettings", "RunInterrupted", "RunSummary", "Status", "run", "run_requests"]

log = logging.getLogger(__name__)


async def run_requests(
    teacher: ChatModel,
    requests: Iterable[ChatRequest],
    cache: ResponseCache,
    settings: EngineSettings | None = None,
    *,
    summary: RunSummary | None = None,
) -> RunSummary:
    """Send every request whose key has no cached answer; return what happened (filled into ``summary`` if given).

    Cancelled, it lets the requests in flight finish (see the module docstring), sets ``summary.interrupted`` and
    raises :class:`asyncio.CancelledError` again.
    """
    settings = settings or EngineSettings()
    started = time.monotonic()
    unique: dict[str, ChatRequest] = {}
    for request in requests:
        unique.setdefault(request.key, request)
    summary = summary if summary is not None else RunSummary()
    summary.requested = len(unique)
    answered_before = cache.answered(unique)
    summary.already_cached = len(answered_before)
    jobs = BatchJobs(cache)
    in_batch = jobs.pending_keys() & set(unique)
    summary.in_batch = len(in_batch)
    if in_batch:
        log.warning("%d requests wait in a submitted batch: `batch collect` them; not sent again", len(in_batch))
    todo = [r for key, r in unique.items() if key not in answered_before and key not in in_batch]
    log.info("%d requests, %d already cached, %d to send", len(unique), len(answered_before), len(todo))
    if not todo:
        return summary
    budget = None
    if settings.max_cost_usd is not None:
        check_enforceable(todo, settings.max_cost_usd)
        budget = Budget(settings.max_cost_usd)
    engine_run = EngineRun(teacher, todo, cache, settings, summary, budget=budget, jobs=jobs, started=started)
    return await engine_run.execute()


def run(
    teacher: ChatModel,
    requests: Iterable[ChatRequest],
    cache: ResponseCache,
    settings: EngineSettings | None = None,
) -> RunSummary:
    """Synchronous entry point: run the engine in a fresh event loop and close the teacher's client after.

    Ctrl-C stops the run cleanly (see the module docstring) and raises :class:`RunInterrupted` with the summary.
    """
    summary = RunSummary()

    async def _main() -> RunSummary:
        try:
            return await run_requests(teacher, requests, cache, settings, summary=summary)
        finally:
            close = getattr(teacher, "aclose", None)
            if close is not None:
                await close()

    try:
        return asyncio.run(_main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        summary.interrupted = True
        raise RunInterrupted(summary) from None
