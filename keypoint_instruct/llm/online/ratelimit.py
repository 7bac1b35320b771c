"""Client-side rate limits of the engine: RPM and TPM token buckets that follow the endpoint's ``x-ratelimit-*``.

A request debits one unit of the request bucket and :func:`estimate_request_tokens` of the token bucket before it is
sent, the way providers debit their own limits; response headers then cap what the buckets may hold, and a limit
the user did not set is adopted from the headers. A 429's Retry-After pauses every sender (:meth:`RateLimiter.pause`).
Every wait names its reason (:mod:`keypoint_instruct.llm.online.waits`): the pause's, or the RPM or TPM bucket.
"""

from __future__ import annotations

import logging
import math
import time

from keypoint_instruct.llm.online.waits import Why, wait
from keypoint_instruct.llm.request import ChatRequest, RateLimits, max_output_tokens

log = logging.getLogger(__name__)


def estimate_request_tokens(request: ChatRequest) -> int:
    """What a request counts against a TPM limit: a character estimate of the prompt plus its output limit.

    Providers debit the limit before answering, from an estimate of this kind; the response headers correct it.
    """
    prompt = 0
    for message in request.body.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text") or "" for part in content if isinstance(part, dict))
        prompt += math.ceil(len(content or "") / 4) + 4
    return prompt + max_output_tokens(request.body)


class _Bucket:
    def __init__(self, per_minute: float, burst_s: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = max(self.rate * burst_s, 1.0)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        need = min(amount, self.capacity) - self.level
        return need / self.rate if need > 0 else 0.0


class RateLimiter:
    """RPM/TPM token buckets plus a global pause after a 429; follows ``x-ratelimit-*`` headers."""

    def __init__(self, rpm: float | None, tpm: float | None, burst_s: float = 1.0) -> None:
        self.burst_s = burst_s
        self.requests = _Bucket(rpm, burst_s) if rpm else None
        self.tokens = _Bucket(tpm, burst_s) if tpm else None
        self.paused_until = 0.0
        self.pause_why = Why.RETRY_AFTER  # what the pause that ends last is for

    async def acquire(self, tokens: int) -> None:
        """Wait until one request of ``tokens`` may be sent (no pause on, room in both buckets), then debit it."""
        while (needed := self._take(tokens)) is not None:
            await wait(*needed)

    def _take(self, tokens: int) -> tuple[Why, float] | None:
        """Debit one request of ``tokens`` and return None; or, without debiting, why and how long to wait first."""
        now = time.monotonic()
        pause = self.paused_until - now
        if pause > 0:
            return self.pause_why, pause
        for bucket in (self.requests, self.tokens):
            if bucket:
                bucket.refill(now)
        for_requests = self.requests.wait_for(1) if self.requests else 0.0
        for_tokens = self.tokens.wait_for(tokens) if self.tokens else 0.0
        if max(for_requests, for_tokens) > 0:
            return (Why.RPM, for_requests) if for_requests >= for_tokens else (Why.TPM, for_tokens)
        if self.requests:
            self.requests.level -= 1
        if self.tokens:
            self.tokens.level -= tokens
        return None

    async def sit_out_pause(self) -> None:
        """Wait until no pause is on (a 429's Retry-After, a limit's reset); takes no allowance."""
        while (pause := self.paused_until - time.monotonic()) > 0:
            await wait(self.pause_why, pause)

    def pause(self, seconds: float, why: Why = Why.RETRY_AFTER) -> None:
        """Send nothing for ``seconds`` from now (a pause that already lasts longer is kept)."""
        until = time.monotonic() + seconds
        if until > self.paused_until:
            self.paused_until, self.pause_why = until, why

    def observe(self, limits: RateLimits | None) -> None:
        """Adopt the endpoint's limits when we had none; never hold more allowance than it says remains."""
        if limits is None:
            return
        now = time.monotonic()
        for name, limit, remaining, reset_s in (
            ("requests", limits.limit_requests, limits.remaining_requests, limits.reset_requests_s),
            ("tokens", limits.limit_tokens, limits.remaining_tokens, limits.reset_tokens_s),
        ):
            bucket = getattr(self, name)
            if bucket is None and limit:
                bucket = _Bucket(limit, self.burst_s)
                setattr(self, name, bucket)
                log.info("following the endpoint's limit of %d %s per minute", limit, name)
            if bucket is not None and remaining is not None:
                bucket.refill(now)
                bucket.level = min(bucket.level, float(remaining))
            if remaining == 0 and reset_s:
                # Nothing left: wait until the endpoint's window gives some back (at most one unit's refill time).
                self.pause(min(reset_s, 60.0 / limit) if limit else reset_s, Why.RESET)
