"""What the LLM layer sends and gets back: chat requests, completions, generation settings.

Nothing here knows about COCO. A :class:`ChatRequest` is a chat body plus the labels the response store files its
answer under (the task it is for, the item it is about and the collection that item comes from, the prompt
version). Its cache key is the sha256 of its canonical body, so two requests with the same model, messages and
generation settings share one answer. A :class:`ChatModel` answers one request; the providers
(:mod:`keypoint_instruct.llm.providers`) and the offline teacher and judge implement it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from keypoint_instruct.errors import TeacherError
from keypoint_instruct.vocab import TEACHER_MODEL

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
    top_p: float | None = None,
) -> dict:
    """A chat body with the parameter names ``model`` takes (teacher, judge and benchmark answers alike).

    A chat model gets ``temperature`` and ``max_tokens`` (and ``top_p`` when given); a reasoning model
    (:func:`is_reasoning_model`) gets ``max_completion_tokens = reasoning_max_tokens`` and no temperature or top_p:
    it refuses ``max_tokens`` and any sampling value but the default. ``seed`` is sent when given.
    """
    body: dict[str, Any] = {"model": model, "messages": messages}
    if is_reasoning_model(model):
        body["max_completion_tokens"] = reasoning_max_tokens
    else:
        body["temperature"] = temperature
        body["max_tokens"] = max_tokens
        if top_p is not None:
            body["top_p"] = top_p
    if seed is not None:
        body["seed"] = seed
    return body


SAMPLING_NAMES = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "seed")


def sampling_of(body: dict) -> dict:
    """The sampling settings a chat body carries (every key but ``model`` and ``messages``), for the record.

    They are part of the body and so of its key; the response store keeps them with each answer.
    """
    return {name: value for name, value in sorted(body.items()) if name not in ("model", "messages")}


def describe_sampling(settings: dict | None) -> str:
    """``{"max_tokens": 1024, "seed": 42, "temperature": 0.2}`` -> ``temperature 0.2, max_tokens 1024, seed 42``."""
    if settings is None:
        return "not recorded"
    known = [name for name in SAMPLING_NAMES if name in settings]
    known += sorted(name for name in settings if name not in SAMPLING_NAMES)
    return ", ".join(f"{name} {settings[name]}" for name in known) or "none sent (the endpoint's defaults)"


def max_output_tokens(body: dict) -> int:
    """The output-token limit of a chat body, under either name (``max_tokens`` or ``max_completion_tokens``)."""
    return int(body.get("max_completion_tokens") or body.get("max_tokens") or 0)


@dataclass(frozen=True)
class GenerationSettings:
    """Model and sampling settings of every teacher request: the one place their defaults are defined.

    The defaults (temperature 0.2, max_tokens 1024, seed 42, no top_p) are the ones every cache so far was written
    with: they are part of each request body, so of its key, and changing one would make every stored answer
    unreachable (README, "Sampling settings"). ``seed=None`` sends no seed; ``top_p=None`` sends none.

    A reasoning model (:func:`is_reasoning_model`) gets ``max_completion_tokens = reasoning_max_tokens`` and no
    temperature or top_p: it refuses ``max_tokens`` and any sampling value but the default, and its hidden reasoning
    tokens come out of the same limit, so 1024 would leave most answers cut short (finish_reason ``length``).
    """

    model: str = TEACHER_MODEL
    temperature: float = 0.2
    max_tokens: int = 1024
    seed: int | None = 42
    reasoning_max_tokens: int = REASONING_MAX_TOKENS
    top_p: float | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise TeacherError("the teacher model name is empty; pass --model, e.g. --model gpt-4o-2024-08-06")
        if not 0.0 <= self.temperature <= 2.0:
            raise TeacherError(f"temperature {self.temperature} is out of range; expected 0.0 to 2.0")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise TeacherError(f"top_p {self.top_p} is out of range; expected above 0.0 and at most 1.0")
        if self.max_tokens < 1 or self.reasoning_max_tokens < 1:
            raise TeacherError(f"max_tokens {self.max_tokens} and reasoning_max_tokens must be at least 1")

    def body(self, messages: list[dict]) -> dict:
        """The canonical chat body for ``messages``: everything that decides the answer, nothing else.

        It is sent as it is (and written as it is into Batch API files), so it uses the parameter names the model
        takes. With the default settings a chat model's body is ``model, messages, temperature, max_tokens, seed``
        as it always was, so the cache keys of earlier answers stay the same.
        """
        return chat_body(
            self.model,
            messages,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=self.seed,
            reasoning_max_tokens=self.reasoning_max_tokens,
            top_p=self.top_p,
        )

    def sampling(self) -> dict:
        """The sampling settings this model's bodies carry (:func:`sampling_of` of a body)."""
        return sampling_of(self.body([]))


def canonical_json(body: dict) -> str:
    """The byte-stable JSON of a request body (sorted keys, no spaces, UTF-8 kept)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(body: dict) -> str:
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChatRequest:
    """One chat request and the labels its answer is filed under; only ``body`` makes the key.

    ``task`` says what it is for (a teacher task such as ``conversation``, or ``judge/<category>``), ``item_id`` what
    it is about and ``collection`` where that item comes from (for this project an image id and its COCO split: the
    response store keeps them in its ``image_id`` and ``coco_split`` columns). ``payload`` carries what an offline
    model needs to answer (the offline teacher's scene); it is never stored or compared.
    """

    task: str
    item_id: int
    collection: str
    prompt_version: str
    body: dict
    payload: Any = field(default=None, compare=False, repr=False)

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


def is_empty_answer(text: str, finish_reason: str) -> bool:
    """An answer without text (whitespace at most) that says it ended normally (``stop``, or no reason given):
    nothing was answered, though it was paid for. The engine retries it as a failed attempt and never stores it
    as an answer; an empty answer cut by ``length`` or a ``content_filter`` keeps its finish reason."""
    return finish_reason in ("stop", "unknown") and not text.strip()


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


class ChatModel(Protocol):
    """Anything that answers one chat request: an endpoint's provider, the offline teacher, the offline judge."""

    model: str

    async def complete(self, request: ChatRequest) -> Completion: ...
