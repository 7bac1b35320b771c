"""The teacher: request and completion types, generation settings, and the OpenAI-compatible adapter.

The adapter sends exactly one chat request and translates the provider's answer or error into our types; it never
retries, sleeps or counts money (the engine does). A request's cache key is the sha256 of its canonical body, so
two requests with the same model, messages and generation settings share one cached answer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from keypoint_instruct.errors import TeacherCallError, TeacherError

if TYPE_CHECKING:
    from keypoint_instruct.coco import Scene

log = logging.getLogger(__name__)

DEFAULT_MODEL = "gpt-4o-2024-08-06"
API_KEY_ENV = "OPENAI_API_KEY"
# Sent to local OpenAI-compatible servers (vLLM, transformers serve) that ignore authentication.
LOCAL_DUMMY_KEY = "sk-local-no-key"

# OpenAI's reasoning models (o1, o3, o4-mini, gpt-5 and its snapshots, also behind a "provider/" prefix; not the
# gpt-5 chat models): they refuse max_tokens and any temperature but the default.
_REASONING_MODEL = re.compile(r"^(?:[\w.-]+/)*(?:o\d+(?:-[\w.-]+)?|gpt-5(?![\w.-]*-chat)[\w.-]*)$")


def is_reasoning_model(model: str) -> bool:
    """True for OpenAI reasoning models, which take ``max_completion_tokens`` and no ``temperature``."""
    return bool(_REASONING_MODEL.match(model.strip().lower()))


REASONING_MAX_TOKENS = 16384  # a reasoning model's output limit: its hidden reasoning comes out of it too


def chat_body(
    model: str,
    messages: list[dict],
    *,
    temperature: float,
    max_tokens: int,
    seed: int | None = None,
    reasoning_max_tokens: int = REASONING_MAX_TOKENS,
) -> dict:
    """A chat body with the parameter names ``model`` takes (teacher, judge and benchmark answers alike).

    A chat model gets ``temperature`` and ``max_tokens``; a reasoning model (:func:`is_reasoning_model`) gets
    ``max_completion_tokens = reasoning_max_tokens`` and no temperature: it refuses both ``max_tokens`` and a
    temperature other than 1. ``seed`` is sent when given.
    """
    body: dict[str, Any] = {"model": model, "messages": messages}
    if is_reasoning_model(model):
        body["max_completion_tokens"] = reasoning_max_tokens
    else:
        body["temperature"] = temperature
        body["max_tokens"] = max_tokens
    if seed is not None:
        body["seed"] = seed
    return body


def max_output_tokens(body: dict) -> int:
    """The output-token limit of a chat body, under either name (``max_tokens`` or ``max_completion_tokens``)."""
    return int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)


@dataclass(frozen=True)
class GenerationSettings:
    """Model and sampling settings of every teacher request: the one place they are defined.

    A reasoning model (:func:`is_reasoning_model`) gets ``max_completion_tokens = reasoning_max_tokens`` and no
    temperature: it refuses both ``max_tokens`` and a temperature other than 1, and its hidden reasoning tokens come
    out of the same limit, so 1024 would leave most answers cut short (finish_reason ``length``) with no text.
    """

    model: str = DEFAULT_MODEL
    temperature: float = 0.2
    max_tokens: int = 1024
    seed: int = 42
    reasoning_max_tokens: int = REASONING_MAX_TOKENS

    def __post_init__(self) -> None:
        if not self.model:
            raise TeacherError("the teacher model name is empty; pass --model, e.g. --model gpt-4o-2024-08-06")
        if not 0.0 <= self.temperature <= 2.0:
            raise TeacherError(f"temperature {self.temperature} is out of range; expected 0.0 to 2.0")
        if self.max_tokens < 1 or self.reasoning_max_tokens < 1:
            raise TeacherError(f"max_tokens {self.max_tokens} and reasoning_max_tokens must be at least 1")

    def body(self, messages: list[dict]) -> dict:
        """The canonical chat body for ``messages``: everything that decides the answer, nothing else.

        It is sent as it is (and written as it is into Batch API files), so it uses the parameter names the model
        takes. For the chat models it is unchanged (``model, messages, temperature, max_tokens, seed``), so the
        cache keys of their answers stay the same.
        """
        return chat_body(
            self.model,
            messages,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=self.seed,
            reasoning_max_tokens=self.reasoning_max_tokens,
        )


def canonical_json(body: dict) -> str:
    """The byte-stable JSON of a request body (sorted keys, no spaces, UTF-8 kept)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(body: dict) -> str:
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TeacherRequest:
    """One chat request to the teacher about one image and task; ``scene`` is never part of the key."""

    task: str
    image_id: int
    coco_split: str
    prompt_version: str
    body: dict
    scene: Scene | None = field(default=None, compare=False, repr=False)

    @cached_property
    def key(self) -> str:
        """sha256 of the canonical JSON of ``body`` (model, messages, temperature, max_tokens, seed)."""
        return request_key(self.body)


@dataclass(frozen=True)
class RateLimits:
    """What an ``x-ratelimit-*`` header set said; ``None`` where a header was absent."""

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None

    def any(self) -> bool:
        return any(value is not None for value in vars(self).values())


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    model: str
    # Rate-limit headers of the response, for the engine's limiter; never stored.
    rate_limits: RateLimits | None = field(default=None, compare=False, repr=False)


class Teacher(Protocol):
    model: str

    async def complete(self, request: TeacherRequest) -> Completion: ...


def build_requests(
    scenes: Iterable[Scene],
    task: str,
    settings: GenerationSettings,
    context_mode: str = "paper",
    coco_split: str | None = None,
) -> list[TeacherRequest]:
    """One request per scene for ``task``: the template's static prefix first, then the scene's context."""
    from keypoint_instruct.context import format_context
    from keypoint_instruct.prompts import load_prompt

    template = load_prompt(task, context_mode)
    requests = []
    for scene in scenes:
        messages = template.messages(format_context(scene, context_mode))
        requests.append(
            TeacherRequest(
                task=task,
                image_id=scene.image_id,
                coco_split=coco_split or scene.coco_split,
                prompt_version=template.version,
                body=settings.body(messages),
                scene=scene,
            )
        )
    return requests


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


_AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")


def is_azure(base_url: str | None) -> bool:
    """True for an Azure OpenAI host, which takes the key in its ``api-key`` header only."""
    return bool(base_url) and (urlsplit(base_url.strip()).hostname or "").endswith(_AZURE_HOSTS)


def client_options(base_url: str | None, api_key: str) -> dict[str, Any]:
    """``base_url``, ``default_query`` and ``default_headers`` for the OpenAI client from a ``--base-url``.

    The client appends ``/chat/completions`` to the base URL's path as text, query included, so a query
    (Azure's ``?api-version=...``) is taken off the URL and sent with every request instead. Azure OpenAI reads an
    API key from its ``api-key`` header (``Authorization: Bearer`` is for Entra ID tokens, and both at once is a 400):
    for its hosts the key goes in ``api-key``, and :class:`OpenAITeacher` drops the Bearer header of each request.
    """

    options: dict[str, Any] = {"base_url": base_url}
    if not base_url:
        return options
    parts = urlsplit(base_url.strip())
    if parts.query:
        options["base_url"] = urlunsplit(parts._replace(query="", fragment=""))
        options["default_query"] = dict(parse_qsl(parts.query, keep_blank_values=True))
    if is_azure(base_url):
        options["default_headers"] = {"api-key": api_key}
    return options


def request_headers(base_url: str | None) -> dict[str, Any] | None:
    """``extra_headers`` for every request to ``base_url``: an Azure host's omit the Bearer header (see above)."""
    if not is_azure(base_url):
        return None
    import openai

    # The SDK accepts a request without its Bearer header only when the request itself omits it.
    return {"Authorization": openai.Omit()}


class OpenAITeacher:
    """Sends one chat completion to an OpenAI-compatible endpoint with the official async client.

    The SDK's own retries are off (``max_retries=0``): the engine decides about every retry and counts it.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
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
        return f"OpenAITeacher(model={self.model!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        await self._client.close()

    async def complete(self, request: TeacherRequest) -> Completion:
        import openai

        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                **request.body, extra_headers=self._extra_headers
            )
        except openai.APIStatusError as err:
            raise _status_error(err, str(request.body.get("model", ""))) from None
        except openai.APITimeoutError:
            raise TeacherCallError("timeout", retryable=True) from None
        except openai.APIConnectionError as err:
            cause = type(err.__cause__).__name__ if err.__cause__ else "connection error"
            raise TeacherCallError(f"connection: {cause}", retryable=True) from None
        except openai.APIResponseValidationError:
            raise TeacherCallError("invalid response body", retryable=True) from None
        except json.JSONDecodeError:
            raise TeacherCallError("non-JSON body", retryable=True) from None
        limits = rate_limits_from_headers(raw.headers)
        try:
            response = raw.parse()
        except (json.JSONDecodeError, openai.APIResponseValidationError, ValueError):
            raise TeacherCallError("non-JSON body", retryable=True, rate_limits=limits) from None
        return _completion(response, request, limits)


_warned_no_usage: set[str] = set()


def _completion(response: Any, request: TeacherRequest, limits: RateLimits | None) -> Completion:
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


def count_locally(request: TeacherRequest, text: str, model: str) -> tuple[int, int]:
    """Prompt and completion tokens counted here (o200k) for an answer that came without ``usage``.

    Some servers leave ``usage`` out; counting 0 would price a paid answer at $0 and let ``--max-cost`` be passed.
    The first such answer of each model is warned about (online and Batch API answers alike).
    """
    from keypoint_instruct.pricing import count_message_tokens, token_counter

    if model not in _warned_no_usage:
        _warned_no_usage.add(model)
        log.warning("the endpoint's answers for %s carry no token usage; counting tokens here with o200k", model)
    return count_message_tokens(request.body.get("messages", [])), token_counter().count(text)


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


def _status_error(err: Any, model: str) -> TeacherCallError:
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
