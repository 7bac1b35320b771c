"""Why an engine run waits: every wait of a run goes through :func:`wait`, which is told its reason.

The reasons (:class:`Why`): a 429's Retry-After pause, an exhausted rate limit waiting for its reset, the backoff
before a retry, the RPM or TPM bucket, and room under the spend cap. A wait is either a time (seconds) or an
awaitable that ends it (an attempt in flight settling). Having one place for them keeps a log of why a run waited a
one-line matter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from enum import Enum


class Why(Enum):
    RETRY_AFTER = "a 429's Retry-After"
    RESET = "the endpoint's rate limit reset"
    BACKOFF = "backoff before a retry"
    RPM = "the RPM limit"
    TPM = "the TPM limit"
    SPEND_CAP = "room under the spend cap"


async def wait(why: Why, seconds: float | None = None, *, until: Awaitable[object] | None = None) -> None:
    """Wait ``seconds``, or until ``until`` completes, for reason ``why``."""
    if until is not None:
        await until
    else:
        await asyncio.sleep(seconds or 0.0)
