"""What a failed attempt leads to: the transition table and the delay before a retry."""

from __future__ import annotations

import random

import pytest

from keypoint_instruct.errors import TeacherCallError
from keypoint_instruct.llm.online.failures import Next, after_failure, retry_delay
from keypoint_instruct.llm.online.waits import Why

FATAL = TeacherCallError("HTTP 401 invalid_api_key", retryable=False, fatal=True)
RETRYABLE = TeacherCallError("HTTP 500 server_error", retryable=True)
FINAL = TeacherCallError("HTTP 400 bad request", retryable=False)


@pytest.mark.parametrize(
    ("err", "attempt", "stopping", "answered", "expected"),
    [
        (FATAL, 1, False, True, Next.STOP),
        (FATAL, 1, True, True, Next.QUIET),  # the run stops on one such error already
        (RETRYABLE, 1, False, False, Next.RETRY),
        (RETRYABLE, 1, True, True, Next.RETRY),  # retries are still scheduled; the stop cancels them
        (RETRYABLE, 3, False, True, Next.GIVE_UP),
        (RETRYABLE, 3, False, False, Next.NOTHING_WORKS),
        (RETRYABLE, 3, True, False, Next.QUIET),
        (FINAL, 1, False, False, Next.GIVE_UP),  # not retryable: one request's problem, even before any answer
    ],
)
def test_after_failure(err, attempt, stopping, answered, expected):
    got = after_failure(err, attempt, max_attempts=3, stopping_on_error=stopping, answered_any=answered)
    assert got is expected


def test_retry_after_is_honoured_with_up_to_ten_percent_more():
    err = TeacherCallError("HTTP 429", retryable=True, retry_after_s=2.0)
    for seed in range(20):
        why, delay = retry_delay(1, err, base_s=0.05, max_s=0.2, jitter=random.Random(seed))
        assert why is Why.RETRY_AFTER and 2.0 <= delay <= 2.2


def test_backoff_doubles_up_to_its_maximum_with_jitter():
    jitter = random.Random(0)
    delays = [retry_delay(n, RETRYABLE, base_s=1.0, max_s=6.0, jitter=jitter) for n in (1, 2, 3, 4, 5)]
    assert {why for why, _ in delays} == {Why.BACKOFF}
    for (_, delay), full in zip(delays, (1.0, 2.0, 4.0, 6.0, 6.0), strict=True):
        assert 0.5 * full <= delay <= full
