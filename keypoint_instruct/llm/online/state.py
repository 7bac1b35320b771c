"""One engine run as a state machine: :class:`EngineRun` and its :class:`Status`.

Takes the requests left to send (deduplicated, none answered or in a batch), the teacher, the cache, the settings,
the summary to fill and the spend cap's :class:`Budget` (or None); :meth:`EngineRun.execute` sends them and gives
the summary, or raises the error the run stopped on. Each worker takes a request from the queue and moves it
through these steps, each one method:

- :meth:`~EngineRun.claim`: the key is claimed (a chunk of the queue at a time) and checked not to be answered or
  in a batch meanwhile; otherwise the request is resolved here.
- :meth:`~EngineRun.attempt`: until the run's first attempt settled, one attempt at a time
  (:mod:`keypoint_instruct.llm.online.gate`: a refused key stops the run after one request); the rate limiter, the
  check that the claim is still this run's, room under the spend cap (waiting for attempts in flight to settle),
  then the request is sent.
- :meth:`~EngineRun.settle_answer` / :meth:`~EngineRun.settle_failure`: the answer is stored; or the failure is
  recorded and leads to a retry, a give-up or a stop (:func:`keypoint_instruct.llm.online.failures.after_failure`).
  An empty answer (:func:`~keypoint_instruct.llm.request.is_empty_answer`) is paid for and counted, then settled as
  a failure: it is retried, never stored.
- :meth:`~EngineRun.stop`: the run leaves RUNNING (capped, cancelled, fatal, crashed) and sends nothing more.

Workers share the run's attributes. Between two awaits a worker runs alone, so a step that must not be interleaved
is one synchronous method (``begin_attempt``; ``end_attempt`` with the settle that follows it; ``stop``); each says
why. Every wait of a worker names its reason (:mod:`keypoint_instruct.llm.online.waits`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import sqlite3
import time
from contextlib import ExitStack
from enum import IntEnum

from keypoint_instruct.errors import CacheError, TeacherCallError, TeacherError, TeacherUnansweredError
from keypoint_instruct.llm.online.budget import Budget
from keypoint_instruct.llm.online.claiming import KeyClaims
from keypoint_instruct.llm.online.failures import Next, after_failure, empty_answer, nothing_works, retry_delay
from keypoint_instruct.llm.online.gate import FirstRequestGate, Pulse
from keypoint_instruct.llm.online.progress import Progress
from keypoint_instruct.llm.online.ratelimit import RateLimiter, estimate_request_tokens
from keypoint_instruct.llm.online.settings import EngineSettings
from keypoint_instruct.llm.online.summary import RunSummary
from keypoint_instruct.llm.online.waits import Why, wait
from keypoint_instruct.llm.request import ChatModel, ChatRequest, Completion, is_empty_answer
from keypoint_instruct.llm.store.batches import BatchJobs
from keypoint_instruct.llm.store.cache import ResponseCache, completion_cost
from keypoint_instruct.llm.store.claims import Claims

log = logging.getLogger("keypoint_instruct.llm.online.engine")  # the engine's lines keep the engine's logger name


class Status(IntEnum):
    """Where a run stands. It leaves RUNNING once and only moves up: a graver stop overrides a milder one."""

    RUNNING = 0
    CAPPED = 1  # the next request does not fit under the spend cap with nothing in flight: nothing more is sent
    CANCELLED = 2  # Ctrl-C: nothing new is sent; the attempts in flight may finish (drain_s)
    FATAL = 3  # an error every request would hit, or nothing works: the run raises TeacherError
    CRASHED = 4  # the engine itself failed (the cache cannot be written): the run raises that error


class EngineRun:
    """The state of one run: its status, the attempts in flight, the requests left, the queue and retry timers."""

    def __init__(
        self,
        teacher: ChatModel,
        todo: list[ChatRequest],
        cache: ResponseCache,
        settings: EngineSettings,
        summary: RunSummary,
        *,
        budget: Budget | None = None,
        jobs: BatchJobs | None = None,
        started: float | None = None,
    ) -> None:
        self.teacher, self.cache, self.settings, self.summary, self.budget = teacher, cache, settings, summary, budget
        self.jobs = jobs or BatchJobs(cache)
        self.started = time.monotonic() if started is None else started
        claims = Claims(cache, lease_s=settings.claim_lease_s)
        self.keys = KeyClaims(claims, [r.key for r in todo], settings.concurrency, summary)
        self.limiter = RateLimiter(settings.rpm, settings.tpm, settings.burst_s)
        self.queue: asyncio.Queue[tuple[ChatRequest, int]] = asyncio.Queue()  # (request, attempt number of it)
        for request in todo:
            self.queue.put_nowait((request, 1))
        self.workers = min(settings.concurrency, len(todo))
        self.status = Status.RUNNING
        self.error: Exception | None = None  # what a FATAL or CRASHED run raises
        self.in_flight = 0  # attempts sent and not yet settled
        self.remaining = len(todo)  # requests not yet resolved (answered, given up or skipped)
        self.done = asyncio.Event()  # every request resolved, or the run stopped: the main task wakes
        self.settled = Pulse()  # fires whenever an attempt in flight ends: the budget may have room, a drain may end
        self.gate = FirstRequestGate()  # one attempt goes first; the others follow once it settled
        self.timers: set[asyncio.Task] = set()  # retries waiting out their delay
        self.jitter = random.Random()
        self.progress = Progress(len(todo), settings.progress, summary, settings.progress_label)

    @property
    def sending(self) -> bool:
        return self.status is Status.RUNNING

    # -- the run as a whole ------------------------------------------------------------------------------------

    async def execute(self) -> RunSummary:
        """Send every request; the summary, or the error the run stopped on (cancelled: after the drain)."""
        keep_alive = ExitStack()  # the claims are renewed while the run goes, and released when it ends
        keep_alive.enter_context(self.keys.renewing())
        self.keys.report_stale()
        workers = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        try:
            await self.done.wait()
        except asyncio.CancelledError:
            self.summary.interrupted = True
            self.stop(Status.CANCELLED)
            await self._drain()
            raise
        finally:
            for task in (*workers, *self.timers):
                task.cancel()
            await asyncio.gather(*workers, *self.timers, return_exceptions=True)
            keep_alive.close()
            self.progress.close(clear=self.status >= Status.FATAL)
            self.summary.elapsed_s = time.monotonic() - self.started
        return self._outcome()

    def stop(self, status: Status, error: Exception | None = None) -> None:
        """Send nothing more. Synchronous: every worker sees the new status at its next check. A graver stop
        overrides a milder one (a crash after a fatal error is what the run raises); the first of a kind is kept."""
        if status > self.status:
            self.status = status
            if error is not None:
                self.error = error
        self.done.set()

    async def _drain(self) -> None:
        """Cancelled: let the attempts in flight finish (they are probably billed) for up to ``drain_s``."""
        if not self.in_flight:
            return
        log.warning(
            "interrupted: waiting up to %.0f s for the %d requests in flight (Ctrl-C again to stop now)",
            self.settings.drain_s,
            self.in_flight,
        )
        try:
            await asyncio.wait_for(self._all_settled(), self.settings.drain_s)
        except TimeoutError:
            log.warning("%d requests were still in flight; their answers are lost", self.in_flight)

    async def _all_settled(self) -> None:
        while self.in_flight:
            await self.settled.wait()

    def _outcome(self) -> RunSummary:
        """After the workers ended: raise what the run stopped on, or complete the summary."""
        err = self.error
        if self.status is Status.CRASHED and err is not None:
            if isinstance(err, sqlite3.Error):
                raise CacheError(f"writing the response cache {self.cache.path} failed: {err}") from err
            raise err
        if self.status is Status.FATAL and isinstance(err, TeacherUnansweredError):
            raise err
        if self.status is Status.FATAL and isinstance(err, TeacherCallError):
            saved = f" ({self.summary.answered} answers were saved first)" if self.summary.answered else ""
            raise TeacherError(f"stopped: {err.reason}{saved}")
        if self.status is Status.CAPPED:
            self.summary.not_sent = self.remaining
        if self.budget is not None:
            self.summary.abandoned = self.budget.abandoned
            self.summary.possibly_billed_usd = self.budget.possibly_billed
            self.summary.refused_usd = self.budget.refused_usd
        log.debug("%s", self.summary.line())
        return self.summary

    # -- one worker: claim, attempt, settle ------------------------------------------------------------------------

    async def _worker(self) -> None:
        try:
            await self._work()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # e.g. the cache cannot be written: stop the run instead of hanging
            self.stop(Status.CRASHED, err)

    async def _work(self) -> None:
        while True:
            request, attempt = await self.queue.get()
            if not self.sending:
                return
            if not self.claim(request):
                continue
            if not await self.attempt(request, attempt):
                return

    def claim(self, request: ChatRequest) -> bool:
        """Whether this run may go on to send ``request``: it holds the key's claim and the key is neither answered
        nor in a batch meanwhile. Otherwise the request is counted where it belongs and resolved."""
        key = request.key
        if not self.keys.take(key):  # answered, in a batch, or claimed by another run
            self._resolve()
            return False
        if self.cache.answered([key]):  # answered meanwhile (e.g. a merge into this file)
            self.summary.already_cached += 1
            self.keys.drop(key)
            self._resolve()
            return False
        if self.jobs.is_pending(key):  # submitted in a batch since this run started
            self.summary.in_batch += 1
            self.keys.drop(key)
            self._resolve()
            return False
        return True

    async def attempt(self, request: ChatRequest, attempt: int) -> bool:
        """Send attempt number ``attempt`` of ``request`` when the gate and the limits allow, and settle it; False
        when the run stopped meanwhile (this worker ends)."""
        first = await self.gate.enter()
        sent = False
        try:
            await self.limiter.acquire(estimate_request_tokens(request))
            if not self.sending:
                return False
            if not self.keys.confirm(request.key):  # the claim lapsed and another run took it
                self._resolve()
                return True
            number = await self._room(request)
            if number is None:
                return False
            await self._send(request, attempt, number)
            sent = True
            return True
        finally:
            if first:
                self.gate.leave(settled=sent and self.sending)

    async def _room(self, request: ChatRequest) -> int | None:
        """Wait until ``request`` fits under the spend cap; its attempt number (the attempt is in flight), or None
        when the run stopped meanwhile or the cap is reached."""
        while (number := self.begin_attempt(request)) is None:
            if not self.sending:  # capped
                return None
            await wait(Why.SPEND_CAP, until=self.settled.wait())  # an attempt in flight ends: its real cost counts
            await self.limiter.sit_out_pause()  # it may have been a 429: every sender keeps its pause
            if not self.sending:
                return None
        return number

    def begin_attempt(self, request: ChatRequest) -> int | None:
        """Reserve the request's worst case under the cap, number the attempt and count it in flight; None when it
        does not fit. Synchronous: attempt numbers (the budget's reservation ids) stay unique, and no other worker
        can see nothing in flight while this reservation is held. With nothing in flight to settle, a request that
        does not fit means the cap is reached: the run stops."""
        number = self.summary.attempts + 1
        if self.budget is not None and not self.budget.reserve(number, request, self.summary.cost_usd):
            if self.in_flight == 0:
                self.summary.capped = True
                log.info("spend cap $%.4f reached: sending nothing more", self.settings.max_cost_usd)
                self.stop(Status.CAPPED)
            return None
        self.summary.attempts = number
        self.in_flight += 1
        return number

    async def _send(self, request: ChatRequest, attempt: int, number: int) -> None:
        sent = time.monotonic()
        try:
            completion = await self.teacher.complete(request)
        except TeacherCallError as err:
            self.limiter.observe(err.rate_limits)  # type: ignore[arg-type]
            http_error = err.reason.startswith("HTTP ")  # the endpoint answered: nothing billed
            self.settle_failure(request, attempt, err, number=number, answered_with_error=http_error)
            return
        except Exception as err:  # a teacher bug must not lose the run: record it, do not retry
            log.debug("teacher raised", exc_info=True)
            bug = TeacherCallError(f"{type(err).__name__}: {err}", retryable=False)
            self.settle_failure(request, attempt, bug, number=number, answered_with_error=False)
            return
        finally:
            self.end_attempt()
        self.settle_answer(request, number, completion, time.monotonic() - sent, attempt=attempt)

    def end_attempt(self) -> None:
        """An attempt in flight ended: wake whoever waits for one (room under the cap, the drain). They run only
        after this attempt is settled (its cost counted, its failure recorded, or the run stopped on a crash):
        nothing from here to the end of the settle awaits."""
        self.in_flight -= 1
        self.settled.fire()

    def settle_answer(
        self, request: ChatRequest, number: int, completion: Completion, latency_s: float, *, attempt: int = 1
    ) -> None:
        """Store the answer and count it (its real cost replaces its reservation); an empty one is paid for and
        counted, then settled as failed attempt ``attempt``. Synchronous: see ``end_attempt``."""
        self.limiter.observe(completion.rate_limits)
        if self.budget is not None:
            self.budget.answered(number, completion.prompt_tokens)
        if is_empty_answer(completion.text, completion.finish_reason):
            self._settle_empty(request, attempt, completion)
            return
        stored = self.cache.put(request, completion, latency_s, claim_owner=self.keys.owner)
        self.keys.stored(request.key)
        s = self.summary
        s.answered += 1
        s.finish_reasons[stored.finish_reason] += 1
        s.prompt_tokens += stored.prompt_tokens
        s.completion_tokens += stored.completion_tokens
        s.cached_tokens += stored.cached_tokens
        s.cost_usd += stored.cost_usd
        if stored.finish_reason != "stop":
            log.debug("key %s finished with %s", request.key[:12], stored.finish_reason)
        self._resolve()

    def _settle_empty(self, request: ChatRequest, attempt: int, completion: Completion) -> None:
        """An empty answer: its tokens and money count (it was billed), then it is a failed attempt to retry."""
        cost = completion_cost(str(request.body.get("model", completion.model)), completion)
        s = self.summary
        s.empty_answers += 1
        s.prompt_tokens += completion.prompt_tokens
        s.completion_tokens += completion.completion_tokens
        s.cached_tokens += completion.cached_tokens
        s.cost_usd += cost
        self.settle_failure(request, attempt, empty_answer(completion, cost))

    def settle_failure(
        self,
        request: ChatRequest,
        attempt: int,
        err: TeacherCallError,
        *,
        number: int | None = None,
        answered_with_error: bool = False,
    ) -> None:
        """Record the failed attempt and carry out what it leads to: stop, retry, give up, or nothing. Synchronous
        (see ``end_attempt``). ``number`` is the attempt's reservation under the spend cap, released here."""
        if self.budget is not None and number is not None:
            self.budget.failed(number, answered_with_error=answered_with_error)
        s = self.summary
        s.failed_attempts += 1
        s.failure_reasons[err.reason.split(":")[0].split(" (")[0]] += 1
        self.cache.record_failure(request, f"attempt {attempt}: {err.reason}")
        verdict = after_failure(
            err,
            attempt,
            max_attempts=self.settings.max_attempts,
            stopping_on_error=self.status >= Status.FATAL,
            answered_any=s.answered > 0,
        )
        if verdict is Next.STOP:
            self.stop(Status.FATAL, err)
        elif verdict is Next.RETRY:
            self._retry(request, attempt, err)
        elif verdict in (Next.GIVE_UP, Next.NOTHING_WORKS):
            s.gave_up += 1
            self.keys.drop(request.key)
            if verdict is Next.NOTHING_WORKS:
                self.stop(Status.FATAL, nothing_works(attempt, err))
                return
            log.warning(
                "gave up on %s item %d after %d attempts: %s", request.task, request.item_id, attempt, err.reason
            )
            self._resolve()

    def _retry(self, request: ChatRequest, attempt: int, err: TeacherCallError) -> None:
        """Put the request back in the queue after its delay; a Retry-After pauses every sender meanwhile."""
        why, delay = retry_delay(
            attempt, err, base_s=self.settings.backoff_base_s, max_s=self.settings.backoff_max_s, jitter=self.jitter
        )
        if err.retry_after_s is not None:
            self.limiter.pause(err.retry_after_s)
        log.debug("key %s attempt %d failed (%s); retry in %.2f s", request.key[:12], attempt, err.reason, delay)
        timer = asyncio.create_task(self._requeue(request, attempt + 1, why, delay))
        self.timers.add(timer)
        timer.add_done_callback(self.timers.discard)

    async def _requeue(self, request: ChatRequest, attempt: int, why: Why, delay: float) -> None:
        await wait(why, delay)
        self.queue.put_nowait((request, attempt))

    def _resolve(self) -> None:
        """One request is done with (answered, given up or skipped); the last one ends the run."""
        self.remaining -= 1
        self.progress.update(1)
        if self.remaining == 0:
            self.done.set()
