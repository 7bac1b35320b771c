"""The engine: drives a teacher over many requests with bounded concurrency, rate limits, retries and a cache.

The teacher adapter sends one request; everything around it lives here. Keys already in the cache are never sent.
Every answer is committed as it arrives (answers cut by ``length`` or ``content_filter`` are stored with that finish
reason so the dataset build can drop them), every failed attempt is recorded with its reason, and a run ends with
a :class:`RunSummary`. Rate limits are token buckets (RPM and TPM) that follow the ``x-ratelimit-*`` headers when
the endpoint sends them (:mod:`keypoint_instruct.llm.online.ratelimit`); a 429 pauses all sending until its Retry-After
has passed. Before a request is sent its key is claimed in the cache file (:mod:`keypoint_instruct.llm.store.claims`, a chunk
of the queue at a time): keys another live run on the same file is sending are skipped and counted
(``RunSummary.claimed_elsewhere``), so two runs never pay for one key. With a spend cap
(``EngineSettings.max_cost_usd``, :mod:`keypoint_instruct.llm.online.budget`) a request is sent only when the money spent so
far plus the worst case of everything in flight, itself included, stays within the cap; a request that does not fit
waits for the requests in flight (their real cost, usually far below the worst case, replaces it) and tries again.
Only when nothing is in flight and the next request still does not fit is nothing more sent: the summary says
``capped``.

A run stops early, with one :class:`TeacherError` line, on an error that every request would hit (a refused key, an
unknown model, an exhausted quota) and when the first request to exhaust its attempts does so before the endpoint
has answered anything (unreachable or broken endpoint). Cancelled (Ctrl-C), it sends nothing new, lets the requests
already in flight finish for up to ``EngineSettings.drain_s`` (they are probably billed), and :func:`run` raises
:class:`RunInterrupted` carrying the summary.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field

from keypoint_instruct.errors import CacheError, TeacherCallError, TeacherError, UsageError
from keypoint_instruct.llm.online.budget import Budget, check_enforceable
from keypoint_instruct.llm.online.ratelimit import RateLimiter, estimate_request_tokens
from keypoint_instruct.llm.request import ChatModel, ChatRequest
from keypoint_instruct.llm.store.batches import BatchJobs
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.llm.store.claims import DEFAULT_LEASE_S, Claims

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSettings:
    concurrency: int = 32
    rpm: float | None = None  # requests per minute; None: unlimited, or what the endpoint's headers say
    tpm: float | None = None  # tokens per minute (prompt estimate + max_tokens per request)
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    burst_s: float = 1.0  # seconds of allowance a rate bucket may hold
    drain_s: float = 30.0  # after Ctrl-C: how long requests already in flight may still finish
    progress: bool = True
    progress_label: str = "teacher"  # what the progress bar calls the endpoint (e.g. "judge")
    claim_lease_s: float = DEFAULT_LEASE_S  # how long a claim on a key lasts unless renewed (claims.py)
    max_cost_usd: float | None = None  # spend cap of the run (budget.py); None: no cap

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError(f"concurrency {self.concurrency} must be at least 1")
        if self.max_attempts < 1:
            raise UsageError(f"max attempts {self.max_attempts} must be at least 1")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UsageError(f"--{name} {value} must be positive")
        if not self.claim_lease_s > 0:
            raise UsageError(f"--claim-lease {self.claim_lease_s} must be positive")
        if self.max_cost_usd is not None and not self.max_cost_usd > 0:
            raise UsageError(f"--max-cost {self.max_cost_usd} must be positive")


@dataclass
class RunSummary:
    requested: int = 0  # distinct keys asked for
    already_cached: int = 0  # answered before (never sent)
    in_batch: int = 0  # waiting in a submitted, uncollected Batch API job (never sent twice)
    claimed_elsewhere: int = 0  # being sent by another live run on the same cache file (skipped)
    answered: int = 0  # answered in this run
    finish_reasons: Counter = field(default_factory=Counter)
    gave_up: int = 0  # keys without an answer after their last attempt
    attempts: int = 0
    failed_attempts: int = 0
    failure_reasons: Counter = field(default_factory=Counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    interrupted: bool = False  # cancelled (Ctrl-C) before every request was resolved
    capped: bool = False  # stopped sending at the spend cap (max_cost_usd)
    not_sent: int = 0  # keys left unsent at the cap
    abandoned: int = 0  # with a cap: attempts abandoned without an answer (timeout, dropped connection, bad body)
    possibly_billed_usd: float = 0.0  # their worst case: the provider may bill them though nothing came back
    refused_usd: float = 0.0  # at the cap: the worst case of the request that did not fit

    @property
    def requests_per_s(self) -> float:
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.finish_reasons.items())) or "none"
        return (
            ("interrupted: " if self.interrupted else "")
            + (f"stopped at the cost cap with {self.not_sent} requests left: " if self.capped else "")
            + f"{self.requested} requests: {self.already_cached} already cached, {self.in_batch} waiting in a batch, "
            + (f"{self.claimed_elsewhere} being sent by another run, " if self.claimed_elsewhere else "")
            + f"{self.answered} answered "
            f"({reasons}), {self.gave_up} gave up; {self.attempts} attempts, {self.failed_attempts} failed; "
            f"{self.prompt_tokens} prompt tokens ({self.cached_tokens} cached), {self.completion_tokens} completion "
            f"tokens; ${self.cost_usd:.4f}; {self.elapsed_s:.1f} s, {self.requests_per_s:.2f} req/s"
        )


class RunInterrupted(KeyboardInterrupt):
    """The run was cancelled (Ctrl-C); ``summary`` says what was answered and saved before it stopped."""

    def __init__(self, summary: RunSummary) -> None:
        super().__init__("interrupted")
        self.summary = summary


class _Progress:
    def __init__(self, total: int, enabled: bool, summary: RunSummary, label: str = "teacher") -> None:
        self.summary = summary
        self.bar = None
        if enabled and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="req", desc=label, dynamic_ncols=True, mininterval=0.5)

    def update(self, done: int = 0) -> None:
        if self.bar is None:
            return
        s = self.summary
        self.bar.set_postfix_str(
            f"tok={s.prompt_tokens + s.completion_tokens} ${s.cost_usd:.4f} fail={s.failed_attempts} "
            f"gave_up={s.gave_up}",
            refresh=False,
        )
        self.bar.update(done)

    def close(self, *, clear: bool = False) -> None:
        """Close the bar; ``clear`` erases it (a run stopped by an error leaves only the error line)."""
        if self.bar is not None:
            if clear:
                self.bar.leave = False
            self.bar.close()


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

    claims = Claims(cache, lease_s=settings.claim_lease_s)
    mine: set[str] = set()  # keys this run holds a claim on
    decided: set[str] = set()  # keys whose claim was tried
    claim_next = 0  # todo[claim_next:] not tried yet
    limiter = RateLimiter(settings.rpm, settings.tpm, settings.burst_s)
    queue: asyncio.Queue[tuple[ChatRequest, int]] = asyncio.Queue()
    for request in todo:
        queue.put_nowait((request, 1))
    remaining = len(todo)
    all_done = asyncio.Event()
    fatal: list[TeacherCallError] = []
    crashed: list[Exception] = []
    stopping = False  # set on cancellation: take nothing new from the queue
    capped = False  # set at the spend cap: send nothing more, let the requests in flight finish
    in_flight = 0
    drained = asyncio.Event()
    settled = asyncio.Event()  # set (and replaced) whenever an attempt in flight ends: the budget may have room
    timers: set[asyncio.Task] = set()
    jitter = random.Random()
    progress = _Progress(len(todo), settings.progress, summary, settings.progress_label)

    def claim_through(key: str) -> bool:
        """Claim the queue in order, a chunk at a time, until ``key`` is tried; True when this run holds it."""
        nonlocal claim_next
        while key not in decided and claim_next < len(todo):
            chunk = [r.key for r in todo[claim_next : claim_next + settings.concurrency]]
            claim_next += len(chunk)
            got = claims.claim(chunk)
            decided.update(chunk)
            mine.update(got.claimed)
            summary.claimed_elsewhere += len(got.held)
            summary.already_cached += len(got.answered)
            summary.in_batch += len(got.in_batch)
            if got.held:
                log.debug("%d keys are being sent by another run; skipped", len(got.held))
        return key in mine

    def still_mine(key: str) -> bool:
        """Right before an attempt: True when this run still holds the key's claim (lease renewed), else it is
        counted as answered, in a batch or claimed elsewhere and must not be sent (a claim can lapse while the key
        waits for the rate limiter or a retry, e.g. a suspended laptop, and be taken over by another run)."""
        if claims.confirm(key):
            return True
        mine.discard(key)
        got = claims.claim([key])
        if got.claimed:
            mine.add(key)
            return True
        log.warning("the claim on key %s lapsed and another run took it; this run does not send it", key[:12])
        summary.claimed_elsewhere += len(got.held)
        summary.already_cached += len(got.answered)
        summary.in_batch += len(got.in_batch)
        return False

    def drop(key: str) -> None:
        mine.discard(key)
        claims.release([key])

    def wake_budget_waiters() -> None:
        nonlocal settled
        settled.set()
        settled = asyncio.Event()

    def resolve() -> None:
        nonlocal remaining
        remaining -= 1
        progress.update(1)
        if remaining == 0:
            all_done.set()

    async def requeue(item: tuple[ChatRequest, int], delay: float) -> None:
        await asyncio.sleep(delay)
        queue.put_nowait(item)

    def retry_delay(attempt: int, err: TeacherCallError) -> float:
        if err.retry_after_s is not None:
            return err.retry_after_s * (1.0 + 0.1 * jitter.random())
        backoff = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** (attempt - 1))
        return backoff * (0.5 + 0.5 * jitter.random())

    async def worker() -> None:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # e.g. the cache cannot be written: stop the run instead of hanging
            crashed.append(err)
            all_done.set()

    async def work() -> None:
        nonlocal in_flight, capped
        while True:
            request, attempt = await queue.get()
            if fatal or crashed or stopping or capped:
                return
            if request.key not in mine and not claim_through(request.key):  # answered, in a batch, or claimed
                resolve()
                continue
            if cache.get(request.key) is not None:  # answered meanwhile (e.g. a merge into this file)
                summary.already_cached += 1
                drop(request.key)
                resolve()
                continue
            if jobs.is_pending(request.key):  # submitted in a batch since this run started
                summary.in_batch += 1
                drop(request.key)
                resolve()
                continue
            await limiter.acquire(estimate_request_tokens(request))
            if fatal or crashed or stopping or capped:
                return
            if not still_mine(request.key):
                resolve()
                continue
            number = summary.attempts + 1
            while budget is not None and not budget.reserve(number, request, summary.cost_usd):
                if in_flight == 0:  # nothing left to settle: the cap is reached
                    capped = summary.capped = True
                    log.info("spend cap $%.4f reached: sending nothing more", settings.max_cost_usd)
                    all_done.set()
                    return
                await settled.wait()  # an attempt in flight ends: its real cost replaces its worst case
                while (pause := limiter.paused_until - time.monotonic()) > 0:  # it may have been a 429: wait it out
                    await asyncio.sleep(pause)
                if fatal or crashed or stopping or capped:
                    return
                number = summary.attempts + 1
            summary.attempts = number  # no await between reserve and here: attempt numbers stay unique
            sent = time.monotonic()
            in_flight += 1
            try:
                completion = await teacher.complete(request)
            except TeacherCallError as err:
                limiter.observe(err.rate_limits)  # type: ignore[arg-type]
                if budget is not None:
                    budget.failed(number, answered_with_error=err.reason.startswith("HTTP "))
                failure(request, attempt, err)
                continue
            except Exception as err:  # a teacher bug must not lose the run: record it, do not retry
                log.debug("teacher raised", exc_info=True)
                if budget is not None:
                    budget.failed(number, answered_with_error=False)
                failure(request, attempt, TeacherCallError(f"{type(err).__name__}: {err}", retryable=False))
                continue
            finally:
                in_flight -= 1
                if stopping and in_flight == 0:
                    drained.set()
                wake_budget_waiters()  # they run after this attempt's cost is recorded (no await until then)
            latency = time.monotonic() - sent
            limiter.observe(completion.rate_limits)
            if budget is not None:
                budget.answered(number, completion.prompt_tokens)
            stored = cache.put(request, completion, latency, claim_owner=claims.owner)
            mine.discard(request.key)
            summary.answered += 1
            summary.finish_reasons[stored.finish_reason] += 1
            summary.prompt_tokens += stored.prompt_tokens
            summary.completion_tokens += stored.completion_tokens
            summary.cached_tokens += stored.cached_tokens
            summary.cost_usd += stored.cost_usd
            if stored.finish_reason != "stop":
                log.debug("key %s finished with %s", request.key[:12], stored.finish_reason)
            resolve()

    def failure(request: ChatRequest, attempt: int, err: TeacherCallError) -> None:
        summary.failed_attempts += 1
        summary.failure_reasons[err.reason.split(":")[0]] += 1
        cache.record_failure(request, f"attempt {attempt}: {err.reason}")
        if err.fatal and not fatal:
            fatal.append(err)
            all_done.set()
            return
        if err.retryable and attempt < settings.max_attempts:
            delay = retry_delay(attempt, err)
            if err.retry_after_s is not None:
                limiter.pause(err.retry_after_s)
            log.debug("key %s attempt %d failed (%s); retry in %.2f s", request.key[:12], attempt, err.reason, delay)
            timer = asyncio.create_task(requeue((request, attempt + 1), delay))
            timers.add(timer)
            timer.add_done_callback(timers.discard)
        elif fatal:  # the run is stopping already: no more messages
            return
        else:
            summary.gave_up += 1
            drop(request.key)
            if err.retryable and summary.answered == 0:  # nothing works: do not repeat this for every request
                fatal.append(
                    TeacherCallError(
                        f"the endpoint has answered no request yet and one just failed {attempt} times "
                        f"(last: {err.reason}); check --base-url and that the server is up",
                        retryable=False,
                        fatal=True,
                    )
                )
                all_done.set()
                return
            log.warning(
                "gave up on %s item %d after %d attempts: %s", request.task, request.item_id, attempt, err.reason
            )
            resolve()

    keep_alive = ExitStack()  # the claims are renewed while the run goes, and released when it ends
    keep_alive.enter_context(claims.renewing())
    workers = [asyncio.create_task(worker()) for _ in range(min(settings.concurrency, len(todo)))]
    try:
        await all_done.wait()
    except asyncio.CancelledError:
        summary.interrupted = True
        stopping = True
        if in_flight:
            log.warning(
                "interrupted: waiting up to %.0f s for the %d requests in flight (Ctrl-C again to stop now)",
                settings.drain_s,
                in_flight,
            )
            try:
                await asyncio.wait_for(drained.wait(), settings.drain_s)
            except TimeoutError:
                log.warning("%d requests were still in flight; their answers are lost", in_flight)
        raise
    finally:
        for task in (*workers, *timers):
            task.cancel()
        await asyncio.gather(*workers, *timers, return_exceptions=True)
        keep_alive.close()
        progress.close(clear=bool(fatal or crashed))
        summary.elapsed_s = time.monotonic() - started
    if crashed:
        err = crashed[0]
        if isinstance(err, sqlite3.Error):
            raise CacheError(f"writing the response cache {cache.path} failed: {err}") from err
        raise err
    if fatal:
        saved = f" ({summary.answered} answers were saved first)" if summary.answered else ""
        raise TeacherError(f"stopped: {fatal[0].reason}{saved}")
    if capped:
        summary.not_sent = remaining
    if budget is not None:
        summary.abandoned, summary.possibly_billed_usd = budget.abandoned, budget.possibly_billed
        summary.refused_usd = budget.refused_usd
    log.debug("%s", summary.line())
    return summary


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
