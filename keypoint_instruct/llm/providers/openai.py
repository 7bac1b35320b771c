"""The OpenAI-compatible provider: sends exactly one chat request with the official async client.

It translates the provider's answer or error into our types (:mod:`keypoint_instruct.llm.request`,
:mod:`keypoint_instruct.llm.providers.http_errors`); it never retries, sleeps or counts money (the engine does).
Also here: the API key, Azure OpenAI's header and query handling, and the reading of one answer's choice, which the
Batch API's output lines share.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from keypoint_instruct.errors import TeacherCallError, TeacherError
from keypoint_instruct.llm.providers.http_errors import (
    API_KEY_ENV,
    rate_limits_from_headers,
    redact,
    status_error,
)
from keypoint_instruct.llm.providers.urls import is_azure, warning
from keypoint_instruct.llm.request import ChatRequest, Completion, RateLimits
from keypoint_instruct.vocab import TEACHER_MODEL

log = logging.getLogger(__name__)

# Sent to local OpenAI-compatible servers (vLLM, transformers serve) that ignore authentication.
LOCAL_DUMMY_KEY = "sk-local-no-key"


def resolve_api_key(base_url: str | None, *, offline_hint: bool = True) -> str:
    """The key from ``OPENAI_API_KEY``; a dummy one for a custom endpoint; an error when neither is given.

    ``offline_hint``: the error also suggests ``--teacher offline`` (only ``generate`` has it).
    """
    key = os.environ.get(API_KEY_ENV, "").strip()
    if key:
        return key
    if base_url:
        return LOCAL_DUMMY_KEY
    raise TeacherError(
        f"no API key: set {API_KEY_ENV} for api.openai.com, or pass --base-url for a local OpenAI-compatible server"
        + (", or use --teacher offline" if offline_hint else "")
    )


def client_options(base_url: str | None, api_key: str) -> dict[str, Any]:
    """``base_url``, ``default_query`` and ``default_headers`` for the OpenAI client from a ``--base-url``.

    The client appends ``/chat/completions`` to the base URL's path as text, query included, so a query
    (Azure's ``?api-version=...``) is taken off the URL and sent with every request instead. Azure OpenAI reads an
    API key from its ``api-key`` header (``Authorization: Bearer`` is for Entra ID tokens, and both at once is a 400):
    for its hosts the key goes in ``api-key``, and :class:`OpenAIChat` drops the Bearer header of each request.
    """

    options: dict[str, Any] = {"base_url": base_url}
    if not base_url:
        return options
    _warn_once(base_url)
    parts = urlsplit(base_url.strip())
    if parts.query:
        options["base_url"] = urlunsplit(parts._replace(query="", fragment=""))
        options["default_query"] = dict(parse_qsl(parts.query, keep_blank_values=True))
    if is_azure(base_url):
        options["default_headers"] = {"api-key": api_key}
    return options


_warned_urls: set[str] = set()


def _warn_once(base_url: str) -> None:
    """One warning line per process for a base URL that may not be an API root (:func:`urls.warning`)."""
    said = warning(base_url)
    if said and base_url not in _warned_urls:
        _warned_urls.add(base_url)
        log.warning("%s", said)


def request_headers(base_url: str | None) -> dict[str, Any] | None:
    """``extra_headers`` for every request to ``base_url``: an Azure host's omit the Bearer header (see above)."""
    if not is_azure(base_url):
        return None
    import openai

    # The SDK accepts a request without its Bearer header only when the request itself omits it.
    return {"Authorization": openai.Omit()}


class OpenAIChat:
    """Sends one chat completion to an OpenAI-compatible endpoint with the official async client.

    The SDK's own retries are off (``max_retries=0``): the engine decides about every retry and counts it.
    """

    def __init__(
        self,
        model: str = TEACHER_MODEL,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 600.0,
        max_connections: int = 256,
    ) -> None:
        import httpx2
        import openai

        self.model = model
        self.base_url = base_url
        key = api_key or resolve_api_key(base_url)
        limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._extra_headers = request_headers(base_url)
        self._client = openai.AsyncOpenAI(
            **client_options(base_url, key),
            api_key=key,
            max_retries=0,
            timeout=timeout_s,
            http_client=openai.DefaultAsyncHttpxClient(limits=limits, timeout=timeout_s),
        )

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIChat(model={self.model!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        await self._client.close()

    async def complete(self, request: ChatRequest) -> Completion:
        import openai

        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                **request.body, extra_headers=self._extra_headers
            )
        except (
            openai.APIStatusError,
            openai.APIConnectionError,
            openai.APIResponseValidationError,
            json.JSONDecodeError,
        ) as err:
            raise call_error(err, str(request.body.get("model", ""))) from None
        limits = rate_limits_from_headers(raw.headers)
        try:
            response = raw.parse()
        except (json.JSONDecodeError, openai.APIResponseValidationError, ValueError):
            raise TeacherCallError("non-JSON body", retryable=True, rate_limits=limits) from None
        return _completion(response, request, limits)


def call_error(err: Exception, model: str) -> TeacherCallError:
    """What an error of the OpenAI SDK (sync or async client) means: retry it, stop the run, or neither.

    The one classification of the teacher, the judge and ``bench answer --backend openai``: an HTTP error by
    :func:`~keypoint_instruct.llm.providers.http_errors.status_error` (a refused key or model says what to check), a
    timeout or a connection that failed is retryable, as is a reply that is not JSON.
    """
    import openai

    if isinstance(err, openai.APIStatusError):
        return status_error(err, model)
    if isinstance(err, openai.APITimeoutError):
        return TeacherCallError("timeout", retryable=True)
    if isinstance(err, openai.APIConnectionError):
        cause = type(err.__cause__).__name__ if err.__cause__ else "connection error"
        return TeacherCallError(f"connection: {cause}", retryable=True)
    if isinstance(err, openai.APIResponseValidationError):
        return TeacherCallError("invalid response body", retryable=True)
    if isinstance(err, ValueError):  # json.JSONDecodeError included
        return TeacherCallError("non-JSON body", retryable=True)
    said = redact(str(err).strip().splitlines()[0][:200]) if str(err).strip() else ""
    return TeacherCallError(f"{type(err).__name__}" + (f": {said}" if said else ""), retryable=False)


_warned_no_usage: set[str] = set()


def _completion(response: Any, request: ChatRequest, limits: RateLimits | None) -> Completion:
    choices = getattr(response, "choices", None)
    if not choices:
        error = getattr(response, "error", None)  # some proxies answer an error with status 200
        said = error.get("message") if isinstance(error, dict) else error
        reason = "response without choices" + (f": {redact(str(said).splitlines()[0][:200])}" if said else "")
        raise TeacherCallError(reason, retryable=True, rate_limits=limits)
    choice = choices[0]
    text, finish_reason = answer_text(
        getattr(choice.message, "content", None), getattr(choice.message, "refusal", None), choice.finish_reason
    )
    model = getattr(response, "model", None) or request.body.get("model", "")
    usage = getattr(response, "usage", None)
    if usage is None:
        prompt_tokens, completion_tokens = count_locally(request, text, model)
    else:
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
    details = getattr(usage, "prompt_tokens_details", None)
    return Completion(
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=int(getattr(details, "cached_tokens", 0) or 0),
        model=model,
        rate_limits=limits,
    )


def answer_text(content: str | None, refusal: str | None, finish_reason: str | None) -> tuple[str, str]:
    """(text, finish reason) of an answer's choice, online or in a Batch API output line.

    OpenAI's refusal comes with content null, the refusal in its own field and finish_reason "stop": it is kept as
    the text with finish_reason ``refusal`` (never an empty complete answer). A null finish reason is ``unknown``.
    """
    text = content or ""
    if not text and refusal:
        return str(refusal), "refusal"
    return text, finish_reason or "unknown"


def count_locally(request: ChatRequest, text: str, model: str) -> tuple[int, int]:
    """Prompt and completion tokens counted here (o200k) for an answer that came without ``usage``.

    Some servers leave ``usage`` out; counting 0 would price a paid answer at $0 and let ``--max-cost`` be passed.
    The first such answer of each model is warned about (online and Batch API answers alike).
    """
    from keypoint_instruct.llm.pricing import count_message_tokens, token_counter

    if model not in _warned_no_usage:
        _warned_no_usage.add(model)
        log.warning("the endpoint's answers for %s carry no token usage; counting tokens here with o200k", model)
    return count_message_tokens(request.body.get("messages", [])), token_counter().count(text)
