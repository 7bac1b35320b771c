"""What every ``batch`` command shares: the Batch API's constants, its call wrapper and the wording of its messages.

Takes a sync ``openai.OpenAI`` and gives back the provider's objects, or a one-line
:class:`~keypoint_instruct.errors.TeacherError` that never holds the key::

    call(what, method, *args, **kwargs)   # method(*args, **kwargs); an API error becomes one TeacherError line
    api_error(what, err) -> TeacherError  # the same line, for callers that catch some errors themselves
    endpoint_of(client) -> str            # the endpoint asked, as a user gives it to --base-url
    count_of(n, noun[, plural]) -> str    # "1 request", "2 requests"

``what`` names the step in the message (``uploading batch-...jsonl``, ``reading batch batch_abc``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from keypoint_instruct.errors import TeacherError
from keypoint_instruct.llm.providers.http_errors import error_message, redact

ENDPOINT = "/v1/chat/completions"  # what every request line of an input file is sent to
COMPLETION_WINDOW = "24h"
MAX_REQUESTS_PER_FILE = 50_000  # the Batch API's limits per input file
MAX_BYTES_PER_FILE = 200_000_000
TERMINAL = ("completed", "failed", "expired", "cancelled")  # a batch in one of these runs no more

T = TypeVar("T")


def api_error(what: str, err: Exception) -> TeacherError:
    """One TeacherError line for an API error: the HTTP status or the exception, and the URL a connection tried."""
    import openai

    if isinstance(err, openai.APIStatusError):
        return TeacherError(f"Batch API: {what} was refused with HTTP {err.status_code}: {redact(error_message(err))}")
    message = getattr(err, "message", str(err))
    if isinstance(err, openai.APIConnectionError):  # name the endpoint tried: a recorded one may be long gone
        message = f"{message.rstrip('.')} (tried {_url_tried(err)})"
    return TeacherError(f"Batch API: {what} failed: {type(err).__name__}: {redact(message)}")


def _url_tried(err: Exception) -> str:
    """The scheme, host and path of the request that failed, without its query."""
    try:
        url = err.request.url  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - no request attached
        return "an unknown URL"
    return str(url.copy_with(query=None))


def call(what: str, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``method(*args, **kwargs)``; an API error becomes one TeacherError line (see :func:`api_error`)."""
    import openai

    try:
        return method(*args, **kwargs)
    except openai.APIError as err:
        raise api_error(what, err) from None


def endpoint_of(client: Any) -> str:
    """The endpoint ``client`` asks, as the user gives it to --base-url (a 404 from the wrong one must be visible)."""
    return str(client.base_url).rstrip("/")


def count_of(n: int, noun: str, plural: str | None = None) -> str:
    """``1 request``, ``2 requests``: the noun agrees with the number."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
