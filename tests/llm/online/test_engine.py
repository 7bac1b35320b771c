"""The engine over real HTTP: faults, retries, Retry-After, rate limits, cached keys never sent."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections import Counter, defaultdict

import pytest

from keypoint_instruct.errors import CacheError, TeacherError, UsageError
from keypoint_instruct.llm.online.engine import EngineSettings, run
from keypoint_instruct.llm.providers.openai import OpenAIChat
from keypoint_instruct.llm.request import Completion, request_key
from keypoint_instruct.llm.store.cache import ResponseCache
from tests.llm.providers.test_openai import chat_request


def settings(**kwargs) -> EngineSettings:
    return EngineSettings(progress=False, backoff_base_s=0.05, backoff_max_s=0.2, **kwargs)


def within(seconds: float, fn, *args):
    """Call ``fn(*args)`` in a daemon thread: a hang fails the test after ``seconds`` instead of stalling the suite."""
    box = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as err:  # handed to the test below
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s: a hang"
    if "error" in box:
        raise box["error"]
    return box["value"]


def test_twenty_percent_faults_complete_with_one_answer_per_key(fake_openai, tmp_path):
    fake_openai.set_faults(rate=0.2, seed=7, stall_s=0.6, retry_after_s=0.05)
    requests = [chat_request(i) for i in range(60)]
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    teacher = OpenAIChat(base_url=fake_openai.base_url, timeout_s=0.3)
    summary = run(teacher, requests, cache, settings(concurrency=8, max_attempts=10))
    time.sleep(0.7)  # the server logs a stalled request when its stall ends, after the client gave up on it

    log = fake_openai.chat_log()
    faults = Counter(e.fault for e in log if e.fault)
    assert set(faults) >= {"429", "500", "drop", "stall", "non_json", "length", "content_filter"}
    assert summary.gave_up == 0 and summary.answered == 60
    stored = {r.key: r for r in cache.iter_responses()}
    assert set(stored) == {r.key for r in requests}
    # cut and filtered answers are kept with their finish reason, not retried and not passed off as good
    assert Counter(r.finish_reason for r in stored.values()) == Counter(
        {
            "stop": 60 - faults["length"] - faults["content_filter"],
            "length": faults["length"],
            "content_filter": faults["content_filter"],
        }
    )
    retried = faults["429"] + faults["500"] + faults["drop"] + faults["stall"] + faults["non_json"]
    assert summary.failed_attempts == retried == cache.stats().failed_attempts
    assert summary.attempts == len(log)
    reasons = {f["reason"].split(": ", 1)[1].split(":")[0] for f in cache.failures()}
    assert reasons == {
        "HTTP 429 rate_limit_exceeded",
        "HTTP 500 server_error",
        "connection",
        "timeout",
        "non-JSON body",
    }


def test_cached_keys_are_never_sent(fake_openai, tmp_path):
    requests = [chat_request(i) for i in range(10)]
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    done = Completion("cached answer", "stop", 1, 1, 0, "gpt-4o-2024-08-06")
    for request in requests[:4]:
        cache.put(request, done, 0.0)
    summary = run(OpenAIChat(base_url=fake_openai.base_url), requests + requests[5:7], cache, settings())
    sent = [request_key(e.body) for e in fake_openai.chat_log()]
    assert sorted(sent) == sorted(r.key for r in requests[4:])  # duplicates in the input are sent once
    assert (summary.requested, summary.already_cached, summary.answered) == (10, 4, 6)
    assert cache.get(requests[0].key).text == "cached answer"
    again = run(OpenAIChat(base_url=fake_openai.base_url), requests, cache, settings())
    assert again.answered == 0 and len(fake_openai.chat_log()) == 6


def test_retry_after_is_honoured(fake_openai, tmp_path):
    fake_openai.set_faults(script=["429"], retry_after_s=0.8)
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    run(OpenAIChat(base_url=fake_openai.base_url), [chat_request(1)], cache, settings())
    first, second = fake_openai.chat_log()
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 0.8  # not the 0.05 s backoff
    assert [f["reason"] for f in cache.failures()] == ["attempt 1: HTTP 429 rate_limit_exceeded"]


def test_bounded_attempts_then_give_up(fake_openai, tmp_path):
    fake_openai.set_faults(rule=lambda body: "500" if "image 1" in body["messages"][-1]["content"] else None)
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    requests = [chat_request(1), chat_request(2)]
    summary = run(OpenAIChat(base_url=fake_openai.base_url), requests, cache, settings(max_attempts=3))
    assert (summary.answered, summary.gave_up, summary.failed_attempts) == (1, 1, 3)
    assert cache.get(requests[0].key) is None
    assert [f["reason"][:9] for f in cache.failures(requests[0].key)] == ["attempt 1", "attempt 2", "attempt 3"]
    assert Counter(request_key(e.body) for e in fake_openai.chat_log())[requests[0].key] == 3


class _Refusing:
    """A teacher whose endpoint refuses the key: the run must stop, not retry everything."""

    model = "x"

    def __init__(self):
        self.calls = 0

    async def complete(self, request):
        from keypoint_instruct.errors import TeacherCallError

        self.calls += 1
        await asyncio.sleep(0.01)
        raise TeacherCallError("HTTP 401 invalid_api_key", retryable=False, fatal=True)


def test_fatal_error_stops_the_run(tmp_path):
    teacher = _Refusing()
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    with pytest.raises(TeacherError, match="stopped: HTTP 401"):
        run(teacher, [chat_request(i) for i in range(50)], cache, settings(concurrency=2))
    assert teacher.calls <= 2


def test_rate_limits_are_kept(fake_openai, tmp_path):
    """Server and engine both at 1200 RPM: 60 requests take ~3 s and draw (almost) no 429."""
    fake_openai.set_limits(rpm=1200)
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    requests = [chat_request(i) for i in range(60)]
    summary = run(OpenAIChat(base_url=fake_openai.base_url), requests, cache, settings(concurrency=16, rpm=1200))
    log = fake_openai.chat_log()
    assert summary.answered == 60
    assert sum(e.status == 429 for e in log) <= 3
    per_second = defaultdict(int)
    for entry in log:
        per_second[int(entry.time - log[0].time)] += entry.status == 200
    assert max(per_second.values()) <= 20 + 20  # bucket of one second plus one second of refill


def test_settings_are_checked():
    with pytest.raises(UsageError, match="concurrency 0"):
        EngineSettings(concurrency=0)
    with pytest.raises(UsageError, match="--rpm"):
        EngineSettings(rpm=-1)


def test_a_cache_that_cannot_be_written_stops_the_run(fake_openai, tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path, create=True)
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock for good
    cache._db.execute("PRAGMA busy_timeout = 100")
    with pytest.raises(CacheError, match="claiming requests in the response cache .* failed: database is locked"):
        run(OpenAIChat(base_url=fake_openai.base_url), [chat_request(i) for i in range(5)], cache, settings())
    blocker.rollback()


class _SubmitsMeanwhile:
    """Answers every request; during the first one, another process submits the last requests in a batch."""

    model = "gpt-4o-2024-08-06"

    def __init__(self, cache, later):
        self.cache, self.later, self.sent = cache, later, []

    async def complete(self, request):
        from keypoint_instruct.llm.store.batches import BatchJobs

        if not self.sent:
            BatchJobs(self.cache).record("batch-meanwhile", self.later, input_file_id="file-1", status="in_progress")
        self.sent.append(request.key)
        return Completion("Question:\nQ?\n===\nAnswer:\nA.", "stop", 10, 5, 0, self.model)


def test_a_key_submitted_in_a_batch_during_the_run_is_not_sent(tmp_path):
    requests = [chat_request(i) for i in range(6)]
    with ResponseCache(tmp_path / "c.sqlite", create=True) as cache:
        teacher = _SubmitsMeanwhile(cache, requests[4:])
        summary = run(teacher, requests, cache, settings(concurrency=1))
    assert teacher.sent == [r.key for r in requests[:4]]
    assert (summary.answered, summary.in_batch, summary.gave_up) == (4, 2, 0)


def test_a_request_waiting_for_the_spend_cap_keeps_a_429_pause(fake_openai, tmp_path):
    """Requests that wait for room under --max-cost are woken when the attempt in flight ends; when it ended with a
    429, they still wait out its Retry-After (every sender pauses) instead of being sent into it."""
    from keypoint_instruct.llm.online.budget import worst_case_usd

    fake_openai.set_faults(script=["429"], retry_after_s=0.8)
    requests = [chat_request(i) for i in range(4)]
    cap = 1.9 * max(worst_case_usd(r) for r in requests)  # one request in flight at a time, room for all
    cache = ResponseCache(tmp_path / "c.sqlite", create=True)
    teacher = OpenAIChat(base_url=fake_openai.base_url)
    summary = within(60, run, teacher, requests, cache, settings(concurrency=4, max_cost_usd=cap))
    log = fake_openai.chat_log()
    assert summary.answered >= 1 and len(log) >= 2 and log[0].status == 429
    assert all(e.time - log[0].time >= 0.8 for e in log[1:]), [round(e.time - log[0].time, 3) for e in log]


class _Slow:
    """Answers every request after a short wait; records each request the moment it is sent."""

    model = "gpt-4o-2024-08-06"

    def __init__(self):
        self.sent = []

    async def complete(self, request):
        self.sent.append(request.key)
        await asyncio.sleep(0.05)
        return Completion("Question:\nQ?\n===\nAnswer:\nA.", "stop", 10, 5, 0, self.model)


def test_a_cache_write_failing_under_the_spend_cap_sends_nothing_more(tmp_path, monkeypatch):
    """The answer whose cache write fails is never counted as spent; the requests waiting for room under
    --max-cost must not take its released reservation: the run stops with nothing more sent."""
    from keypoint_instruct.llm.online.budget import worst_case_usd

    requests = [chat_request(i) for i in range(4)]
    cap = 1.5 * max(worst_case_usd(r) for r in requests)  # one request in flight at a time
    teacher = _Slow()
    with ResponseCache(tmp_path / "c.sqlite", create=True) as cache:

        def broken_put(*args, **kwargs):
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(cache, "put", broken_put)
        with pytest.raises(CacheError, match="disk I/O error"):
            within(60, run, teacher, requests, cache, settings(concurrency=4, max_cost_usd=cap))
    assert len(teacher.sent) == 1
