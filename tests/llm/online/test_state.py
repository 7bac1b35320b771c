"""The run's state machine, one transition at a time, with a tiny in-process teacher and a real cache file."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from keypoint_instruct.errors import CacheError, TeacherCallError, TeacherError, TeacherUnansweredError
from keypoint_instruct.llm.online.budget import Budget, worst_case_usd
from keypoint_instruct.llm.online.engine import EngineSettings, RunSummary
from keypoint_instruct.llm.online.state import EngineRun, Status
from keypoint_instruct.llm.online.waits import Why
from keypoint_instruct.llm.request import Completion
from keypoint_instruct.llm.store.cache import ResponseCache
from tests.llm.providers.test_openai import chat_request

MODEL = "gpt-4o-2024-08-06"
ANSWER = Completion("Question:\nQ?\n===\nAnswer:\nA.", "stop", 10, 5, 0, MODEL)


class Scripted:
    """Answers after ``delay_s``, or raises the next error of its script; records each request as it is sent."""

    model = MODEL

    def __init__(self, *script: Exception, delay_s: float = 0.0) -> None:
        self.script = list(script)
        self.delay_s = delay_s
        self.sent: list[str] = []

    async def complete(self, request):
        self.sent.append(request.key)
        await asyncio.sleep(self.delay_s)
        if self.script:
            raise self.script.pop(0)
        return ANSWER


def settings(**kwargs) -> EngineSettings:
    return EngineSettings(progress=False, backoff_base_s=0.05, backoff_max_s=0.2, **kwargs)


@pytest.fixture
def cache(tmp_path):
    with ResponseCache(tmp_path / "c.sqlite", create=True) as cache:
        yield cache


def new_run(cache, n=3, teacher=None, budget=None, **kwargs) -> EngineRun:
    """A run over ``n`` requests; made inside the event loop, as ``run_requests`` makes it."""
    requests = [chat_request(i) for i in range(n)]
    return EngineRun(teacher or Scripted(), requests, cache, settings(**kwargs), RunSummary(), budget=budget)


async def until_in_flight(run: EngineRun, n: int) -> None:
    deadline = time.monotonic() + 10
    while run.in_flight < n and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert run.in_flight == n


def in_loop(fn):
    """Run ``fn()`` (sync or async) inside a fresh event loop."""

    async def main():
        result = fn()
        return await result if asyncio.iscoroutine(result) else result

    return asyncio.run(main())


REFUSED = TeacherCallError("HTTP 401 invalid_api_key", retryable=False, fatal=True)
RATE_LIMITED = TeacherCallError("HTTP 429 rate_limit_exceeded", retryable=True, retry_after_s=0.2)
SERVER_ERROR = TeacherCallError("HTTP 500 server_error", retryable=True)


def test_the_status_only_moves_up_and_keeps_the_graver_error(cache):
    def go():
        run = new_run(cache)
        assert run.status is Status.RUNNING and run.sending and not run.done.is_set()
        run.stop(Status.FATAL, REFUSED)
        assert (run.status, run.error, run.sending, run.done.is_set()) == (Status.FATAL, REFUSED, False, True)
        run.stop(Status.CANCELLED)  # milder: the fatal error is still what the run stops on
        assert (run.status, run.error) == (Status.FATAL, REFUSED)
        crash = OSError("disk full")
        run.stop(Status.CRASHED, crash)  # graver: the crash is what the run raises
        run.stop(Status.FATAL, SERVER_ERROR)
        assert (run.status, run.error) == (Status.CRASHED, crash)

    in_loop(go)


def test_settling_a_fatal_error_stops_the_run_and_records_the_attempt(cache):
    def go():
        run = new_run(cache)
        request, _ = run.queue.get_nowait()
        run.settle_failure(request, 1, REFUSED)
        assert run.status is Status.FATAL and run.error is REFUSED and run.done.is_set()
        assert (run.summary.failed_attempts, run.summary.gave_up) == (1, 0)
        assert [f["reason"] for f in cache.failures()] == ["attempt 1: HTTP 401 invalid_api_key"]
        run.settle_failure(request, 5, SERVER_ERROR)  # stopping on an error already: no give-up, no warning
        assert run.summary.gave_up == 0 and run.remaining == 3

    in_loop(go)


def test_a_fatal_error_stops_every_further_send(cache):
    teacher = Scripted(REFUSED, delay_s=0.01)

    async def go():
        run = new_run(cache, n=20, teacher=teacher, concurrency=1)
        with pytest.raises(TeacherError, match="^stopped: HTTP 401 invalid_api_key$"):
            await run.execute()
        return run

    run = in_loop(go)
    assert run.status is Status.FATAL and len(teacher.sent) == 1


def test_a_retryable_failure_comes_back_after_its_retry_after_and_pauses_every_sender(cache):
    async def go():
        run = new_run(cache, n=1)
        request, _ = run.queue.get_nowait()
        run.settle_failure(request, 1, RATE_LIMITED)
        assert run.status is Status.RUNNING and len(run.timers) == 1 and run.queue.empty()
        assert 0.15 < run.limiter.paused_until - time.monotonic() <= 0.2
        assert run.limiter.pause_why is Why.RETRY_AFTER
        started = time.monotonic()
        again = await asyncio.wait_for(run.queue.get(), 5)
        assert again == (request, 2) and time.monotonic() - started >= 0.19  # not the 0.05 s backoff
        assert run.remaining == 1 and run.summary.failed_attempts == 1

    in_loop(go)


def test_the_last_attempt_gives_up_and_releases_the_claim(cache):
    def go():
        run = new_run(cache, n=2, max_attempts=2)
        request, _ = run.queue.get_nowait()
        assert run.claim(request) and request.key in run.keys.mine
        run.summary.answered = 1  # the endpoint works: a give-up is one request's problem
        run.settle_failure(request, 2, SERVER_ERROR)
        assert run.status is Status.RUNNING and not run.timers
        assert (run.summary.gave_up, run.remaining) == (1, 1)
        assert request.key not in run.keys.mine
        held = cache.db.execute("SELECT COUNT(*) FROM claims WHERE key = ?", (request.key,)).fetchone()[0]
        assert held == 0

    in_loop(go)


def test_giving_up_before_the_endpoint_answered_anything_stops_the_run(cache):
    def go():
        run = new_run(cache, max_attempts=3)
        request, _ = run.queue.get_nowait()
        run.settle_failure(request, 3, SERVER_ERROR)
        assert run.status is Status.FATAL and run.summary.gave_up == 1
        assert isinstance(run.error, TeacherUnansweredError) and run.error.exit_code == 1
        assert str(run.error).startswith("stopped: no request has been answered yet and one just failed 3 times")

    in_loop(go)


def test_the_cap_waits_while_an_attempt_is_in_flight_and_stops_only_when_none_is(cache):
    first, second = chat_request(0), chat_request(1)

    def go(answered: bool):
        budget = Budget(1.5 * max(worst_case_usd(first), worst_case_usd(second)))  # one worst case at a time
        run = new_run(cache, n=2, budget=budget)
        assert run.begin_attempt(first) == 1 and run.in_flight == 1
        assert run.begin_attempt(second) is None  # does not fit beside the one in flight: wait, do not stop
        assert run.status is Status.RUNNING and not run.summary.capped
        run.end_attempt()
        if answered:  # its real cost replaces its worst case: room again
            run.settle_answer(first, 1, ANSWER, 0.01)
            assert run.begin_attempt(second) == 2 and run.status is Status.RUNNING
        else:  # abandoned without an answer: its worst case may be billed and stays counted
            run.settle_failure(first, 1, TeacherCallError("timeout", retryable=True), number=1)
            assert run.begin_attempt(second) is None
            assert run.status is Status.CAPPED and run.summary.capped and run.done.is_set()
        return run

    assert in_loop(lambda: go(answered=True)).summary.answered == 1
    in_loop(lambda: go(answered=False))


def test_a_key_answered_meanwhile_is_resolved_without_being_sent(cache):
    def go():
        run = new_run(cache, n=2)
        request, _ = run.queue.get_nowait()
        cache.put(request, ANSWER, 0.0)  # e.g. a merge into this file
        assert not run.claim(request)
        assert (run.summary.already_cached, run.remaining) == (1, 1)

    in_loop(go)


def test_a_crashed_worker_stops_the_run_with_one_cache_error(cache, monkeypatch):
    import sqlite3

    def broken_put(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(cache, "put", broken_put)
    teacher = Scripted(delay_s=0.01)

    async def go():
        run = new_run(cache, n=10, teacher=teacher, concurrency=1)
        with pytest.raises(CacheError, match="writing the response cache .* failed: disk I/O error"):
            await run.execute()
        return run

    run = in_loop(go)
    assert run.status is Status.CRASHED and len(teacher.sent) == 1


def test_cancelled_the_run_lets_the_attempts_in_flight_finish(cache):
    teacher = Scripted(delay_s=0.5)

    async def go():
        run = new_run(cache, n=6, teacher=teacher, concurrency=2)
        run.gate.open = True  # as after the first answer: both slots in flight at once
        task = asyncio.create_task(run.execute())
        await until_in_flight(run, 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return run

    run = in_loop(go)
    assert run.status is Status.CANCELLED and run.summary.interrupted
    assert len(teacher.sent) == run.summary.answered == 2 and cache.stats().responses == 2


def test_a_drain_that_outlasts_drain_s_says_what_was_lost(cache, caplog):
    async def go():
        run = new_run(cache, n=2, teacher=Scripted(delay_s=5), concurrency=2, drain_s=0.05)
        run.gate.open = True  # as after the first answer: both slots in flight at once
        task = asyncio.create_task(run.execute())
        await until_in_flight(run, 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    with caplog.at_level(logging.WARNING):
        in_loop(go)
    assert {r.name for r in caplog.records} == {"keypoint_instruct.llm.online.engine"}  # the CLI prints the name
    assert [r.getMessage() for r in caplog.records] == [
        "interrupted: waiting up to 0 s for the 2 requests in flight (Ctrl-C again to stop now)",
        "2 requests were still in flight; their answers are lost",
    ]
