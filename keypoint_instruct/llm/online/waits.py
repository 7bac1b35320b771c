"""Why an engine run waits: every wait of a run goes through :func:`wait`, which is told its reason.

The reasons (:class:`Why`): a 429's Retry-After pause, an exhausted rate limit waiting for its reset, the backoff
before a retry, the RPM or TPM bucket, room under the spend cap, and the first answer of the run (one request goes
first: :mod:`keypoint_instruct.llm.online.gate`). A wait is either a time (seconds) or an awaitable that ends it (an
attempt in flight settling). Each wait writes one debug line with its reason and length (``keypoint-instruct -v``),
so a slow run can be explained from its log: retries that wait for the TPM budget say so, not "backoff".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from enum import Enum

log = logging.getLogger(__name__)


class Why(Enum):
    RETRY_AFTER = "a 429's Retry-After"
    RESET = "the endpoint's rate limit reset"
    BACKOFF = "backoff before a retry"
    RPM = "the RPM limit"
    TPM = "the TPM limit"
    SPEND_CAP = "room under the spend cap"
    FIRST_ANSWER = "the run's first request to be answered"


async def wait(why: Why, seconds: float | None = None, *, until: Awaitable[object] | None = None) -> None:
    """Wait ``seconds``, or until ``until`` completes, for reason ``why`` (one debug line says which)."""
    if until is not None:
        log.debug("waiting for %s", why.value)
        await until
    else:
        log.debug("waiting %.2f s for %s", seconds or 0.0, why.value)
        await asyncio.sleep(seconds or 0.0)
