"""Reading an OpenAI-compatible endpoint's answers: rate-limit headers, Retry-After, and error classes.

:func:`status_error` turns an HTTP error into a :class:`~keypoint_instruct.errors.TeacherCallError` that says whether
the engine should retry it and whether it stops the whole run (a refused key, an unknown model, an exhausted quota,
a parameter the endpoint refuses: every request would get the same answer).
"""

from __future__ import annotations

import re
import time
from typing import Any

from keypoint_instruct.errors import TeacherCallError
from keypoint_instruct.llm.request import RateLimits

API_KEY_ENV = "OPENAI_API_KEY"

_KEY_LIKE = re.compile(r"\b(sk|key)-[A-Za-z0-9_*-]{4,}")


def redact(text: str) -> str:
    """``text`` with anything shaped like an API key (providers echo a masked key on a 401) replaced."""
    return _KEY_LIKE.sub("<redacted key>", text)


# Go's duration format, which OpenAI's reset headers use: below a millisecond it writes µs (or us) and ns.
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|\u00b5s|\u03bcs|ns|h|m|s)")


def parse_duration(value: str | None) -> float | None:
    """OpenAI's reset durations ("1s", "6m0s", "20ms", "1h2m3.5s", "850µs") or plain seconds -> seconds."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ns": 1e-9}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _int_header(headers: Any, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def rate_limits_from_headers(headers: Any) -> RateLimits | None:
    if headers is None:
        return None
    limits = RateLimits(
        limit_requests=_int_header(headers, "x-ratelimit-limit-requests"),
        limit_tokens=_int_header(headers, "x-ratelimit-limit-tokens"),
        remaining_requests=_int_header(headers, "x-ratelimit-remaining-requests"),
        remaining_tokens=_int_header(headers, "x-ratelimit-remaining-tokens"),
        reset_requests_s=parse_duration(headers.get("x-ratelimit-reset-requests")),
        reset_tokens_s=parse_duration(headers.get("x-ratelimit-reset-tokens")),
    )
    return limits if limits.any() else None


def retry_after_from_headers(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` (preferred) or ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        import email.utils

        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None
    return None


def error_message(err: Any) -> str:
    """The provider's own message of an API error (the SDK's ``Error code: N - {...}`` wrapping removed)."""
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(err, "message", err))


# An exhausted account, in the words of OpenAI (also relayed by proxies such as LiteLLM), DeepSeek and OpenRouter.
_NO_CREDIT = re.compile(
    r"insufficient[_ ](?:quota|balance|credits?|funds)|exceeded your current quota|credit balance is too low", re.I
)
# A parameter of the body that the model or server does not take (OpenAI's reasoning models, Azure's older API
# versions, LiteLLM without drop_params, Mistral's strict schema): every request would be refused the same way.
_UNSUPPORTED = re.compile(
    r"unsupported (?:parameter|value)|unrecognized request argument|extra inputs are not permitted"
    r"|does not support (?:the )?param",
    re.I,
)


def status_error(err: Any, model: str) -> TeacherCallError:
    status = err.status_code
    headers = err.response.headers if err.response is not None else None
    limits = rate_limits_from_headers(headers)
    code = str(getattr(err, "code", None) or "")
    error_type = str(getattr(err, "type", None) or "")
    message = redact(error_message(err).split("\n")[0][:200])
    reason = f"HTTP {status}" + (f" {code}" if code else "")
    if status == 402 or (status == 429 and ("insufficient_quota" in (code, error_type) or _NO_CREDIT.search(message))):
        # Not a rate limit: no wait brings credit back, so the run stops instead of retrying every request.
        return TeacherCallError(
            f"{reason}: the account has no quota or credit left ({message}); add credit or raise the limit, then "
            "rerun",
            retryable=False,
            fatal=True,
        )
    if (status in (400, 422) or status >= 500) and (
        code in ("unsupported_parameter", "unsupported_value") or _UNSUPPORTED.search(message)
    ):
        param = getattr(err, "param", None)
        return TeacherCallError(
            f"{reason}: the endpoint refuses a setting of the request for model {model!r}"
            + (f" ({param})" if param else "")
            + f": {message}",
            retryable=False,
            fatal=True,
        )
    if status in (401, 403):
        # The provider's message may echo part of the key: it is redacted above.
        return TeacherCallError(
            f"{reason}: the endpoint refused the API key or its access ({message}); check {API_KEY_ENV}",
            retryable=False,
            fatal=True,
        )
    if status == 404:
        # Every request would get the same answer: the model or the endpoint's path does not exist.
        return TeacherCallError(
            f"{reason}: {message} (check --model, now {model!r}, and --base-url, which should end in /v1)",
            retryable=False,
            fatal=True,
        )
    if status in (408, 409, 429) or status >= 500:
        return TeacherCallError(
            reason + (f": {message}" if status >= 500 and message else ""),
            retryable=True,
            retry_after_s=retry_after_from_headers(headers),
            rate_limits=limits,
        )
    return TeacherCallError(f"{reason}: {message}", retryable=False, rate_limits=limits)
