"""The engine's client-side rate limits: buckets that follow the endpoint's headers."""

from __future__ import annotations

import asyncio
import time

from keypoint_instruct.llm.online.ratelimit import RateLimiter, estimate_request_tokens
from keypoint_instruct.llm.request import RateLimits
from tests.llm.providers.test_openai import chat_request


def test_limiter_follows_headers():
    limiter = RateLimiter(rpm=None, tpm=None)
    limiter.observe(RateLimits(limit_requests=600, remaining_requests=2, limit_tokens=60_000, remaining_tokens=50))
    assert limiter.requests.rate == 10 and limiter.requests.level <= 2
    assert limiter.tokens.level <= 50
    assert estimate_request_tokens(chat_request(1)) > 1024 + 1000  # prompt estimate + max_tokens
    limiter.observe(RateLimits(limit_requests=600, remaining_requests=0, reset_requests_s=5.0))
    assert 0.05 < limiter.paused_until - time.monotonic() <= 0.1  # 60 s / 600 until one request comes back
    limiter.observe(RateLimits(remaining_requests=0, reset_requests_s=0.5))
    assert limiter.paused_until - time.monotonic() > 0.4  # no limit given: the whole reset time


def test_a_spent_bucket_makes_the_next_request_wait():
    async def acquire_all(limiter: RateLimiter, n: int) -> None:
        for _ in range(n):
            await limiter.acquire(10)

    # 600 RPM = 10 per second with one second of burst: ten go at once, the eleventh must wait ~0.1 s
    limiter = RateLimiter(rpm=600, tpm=None, burst_s=1.0)
    asyncio.run(acquire_all(limiter, 10))
    limiter.requests.refill(time.monotonic())
    assert limiter.requests.level < 1 and limiter.requests.wait_for(1) > 0.05


def test_every_wait_names_its_reason():
    from keypoint_instruct.llm.online.waits import Why

    limiter = RateLimiter(rpm=60, tpm=None, burst_s=1.0)  # one request of allowance
    assert limiter._take(10) is None  # taken
    why, seconds = limiter._take(10)
    assert why is Why.RPM and 0.9 < seconds <= 1.0
    limiter = RateLimiter(rpm=None, tpm=600, burst_s=1.0)  # ten tokens of allowance
    assert limiter._take(10) is None
    assert limiter._take(10)[0] is Why.TPM
    limiter.pause(0.5)
    why, seconds = limiter._take(10)
    assert why is Why.RETRY_AFTER and 0.4 < seconds <= 0.5
    limiter.observe(RateLimits(remaining_requests=0, reset_requests_s=2.0))  # ends later: its reason wins
    assert limiter._take(10)[0] is Why.RESET
    limiter.pause(0.1)  # ends sooner: the longer pause and its reason stay
    assert limiter._take(10)[0] is Why.RESET and limiter.paused_until - time.monotonic() > 1.5
