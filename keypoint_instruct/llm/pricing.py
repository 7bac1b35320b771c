"""Money and tokens: the pricing table (``llm/pricing.json``), o200k token counts and cost estimates.

* :func:`completion_cost` prices one answered request from its usage (cached prompt tokens at the cached rate).
* :func:`count_message_tokens` counts a chat message list the way OpenAI bills GPT-4o: o200k tokens of every
  message plus 3 per message (4 with a ``name``) and 3 for the reply's priming. The o200k encoding comes from
  ``quicktok-v1``, which ships it (tiktoken would download it); if it cannot be loaded, a 4-characters-per-token
  estimate is used instead and every estimate says so in its ``method``.
* :func:`estimate_request` / :func:`estimate_requests` are the ``--dry-run`` figures: input tokens, expected output
  tokens, and the cost sync (without and with prompt-cache hits on the static prefix) and through the Batch API.
  The caller says how long a task's answers are expected to be; the estimate caps it at ``max_tokens``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from keypoint_instruct.llm.request import ChatRequest, is_reasoning_model, max_output_tokens

log = logging.getLogger(__name__)

TOKENS_PER_MESSAGE = 3  # <|start|>{role}<|message|> ... <|end|> around every message (GPT-4o chat format)
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3  # <|start|>assistant<|message|>
PROMPT_CACHE_MIN_TOKENS = 1024  # OpenAI caches prompt prefixes from this length, in steps of 128 tokens
PROMPT_CACHE_STEP = 128
DEFAULT_EXPECTED_OUTPUT = 300  # tokens, for tasks without few-shot responses to measure (judge calls)
CHARS_PER_TOKEN = 4

_warned: set[str] = set()


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens of one model, and the Batch API discount (0.5 = half price)."""

    model: str
    input: float
    cached_input: float
    output: float
    batch_discount: float


@cache
def _table() -> dict:
    text = (resources.files(__package__) / "pricing.json").read_text(encoding="utf-8")
    return json.loads(text)


def prices_read_on() -> str:
    """The date the prices of the table were read."""
    return str(_table()["read_on"])


def price_for(model: str) -> Price | None:
    """The price of ``model``: its own entry, else that of its name without a ``-YYYY-MM-DD`` snapshot date."""
    models = _table()["models"]
    name = model if model in models else model[:-11] if model[-11:-10] == "-" and model[-10:-6].isdigit() else None
    if name is None or name not in models:
        return None
    entry = models[name]
    return Price(name, float(entry["input"]), float(entry["cached_input"]), float(entry["output"]),
                 float(entry["batch_discount"]))  # fmt: skip


def completion_cost(
    model: str, *, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0, batch: bool = False
) -> float:
    """USD of one request; ``cached_tokens`` is part of ``prompt_tokens``. Unknown models cost 0 (warned once)."""
    price = price_for(model)
    if price is None:
        if model not in _warned:
            _warned.add(model)
            log.warning("no price for model %r in pricing.json; its cost is counted as 0", model)
        return 0.0
    cached = min(max(cached_tokens, 0), prompt_tokens)
    usd = (
        (prompt_tokens - cached) * price.input + cached * price.cached_input + completion_tokens * price.output
    ) / 1e6
    return usd * (1.0 - price.batch_discount) if batch else usd


# --------------------------------------------------------------------------- tokens


class TokenCounter:
    """Counts o200k tokens of texts (memoised); ``method`` says whether it is exact or an estimate."""

    def __init__(self) -> None:
        self._memo: dict[str, int] = {}
        try:
            import quicktok

            self._encoding = quicktok.get_encoding("o200k_base")
            self._encoding.encode("ok")
            self.method = "o200k (quicktok-v1), exact"
        except Exception as err:  # any failure to load the encoding means: fall back to the estimate
            log.warning("cannot load the o200k encoding (%s); estimating 4 characters per token", err)
            self._encoding = None
            self.method = f"estimate: {CHARS_PER_TOKEN} characters per token (o200k unavailable)"

    @property
    def exact(self) -> bool:
        return self._encoding is not None

    def count(self, text: str) -> int:
        n = self._memo.get(text)
        if n is None:
            if self._encoding is not None:
                n = len(self._encoding.encode(text))
            else:
                n = math.ceil(len(text) / CHARS_PER_TOKEN)
            if len(self._memo) < 1_000_000:
                self._memo[text] = n
        return n


@cache
def token_counter() -> TokenCounter:
    return TokenCounter()


def _content_text(content) -> str:
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict))
    return content or ""


def count_message_tokens(messages: Sequence[dict], *, reply: bool = True) -> int:
    """Prompt tokens of a chat message list, chat overhead included (``reply``: add the reply priming)."""
    counter = token_counter()
    total = REPLY_PRIMING_TOKENS if reply else 0
    for message in messages:
        total += (
            TOKENS_PER_MESSAGE
            + counter.count(message.get("role", ""))
            + counter.count(_content_text(message.get("content")))
        )
        if message.get("name"):
            total += TOKENS_PER_NAME + counter.count(message["name"])
    return total


def cacheable_tokens(prefix_tokens: int) -> int:
    """How much of a repeated prefix a provider's prompt cache serves: 0 below 1024, else down to a step of 128."""
    return 0 if prefix_tokens < PROMPT_CACHE_MIN_TOKENS else prefix_tokens // PROMPT_CACHE_STEP * PROMPT_CACHE_STEP


@dataclass(frozen=True)
class RequestEstimate:
    input_tokens: int  # chat overhead included
    prefix_tokens: int  # of which in the messages before the last one (the static prefix)
    output_tokens: int  # expected
    max_output_tokens: int
    method: str  # how the input tokens were counted


def estimate_request(
    messages: Sequence[dict], max_tokens: int, expected_output_tokens: int | None = None
) -> RequestEstimate:
    """Token figures of one request; expected output defaults to min(max_tokens, 300)."""
    expected = DEFAULT_EXPECTED_OUTPUT if expected_output_tokens is None else expected_output_tokens
    return RequestEstimate(
        input_tokens=count_message_tokens(messages),
        prefix_tokens=count_message_tokens(messages[:-1], reply=False),
        output_tokens=max(0, min(int(expected), int(max_tokens))),
        max_output_tokens=int(max_tokens),
        method=token_counter().method,
    )


# --------------------------------------------------------------------------- a run's estimate


@dataclass
class CostEstimate:
    """What sending a set of requests would cost."""

    requests: int = 0
    input_tokens: int = 0
    cacheable_input_tokens: int = 0  # served by the prompt cache when every repeated static prefix hits it
    output_tokens: int = 0  # expected
    max_output_tokens: int = 0
    sync_usd: float = 0.0  # no prompt-cache hits
    sync_cached_usd: float = 0.0  # every repeated static prefix served from the prompt cache
    batch_usd: float = 0.0  # Batch API, no prompt-cache hits
    token_method: str = ""
    models: list[str] = field(default_factory=list)
    unpriced_models: list[str] = field(default_factory=list)
    reasoning_models: list[str] = field(default_factory=list)  # bill hidden reasoning tokens as output


def estimate_requests(
    requests: Iterable[ChatRequest], expected_output: Callable[[str], int] | None = None
) -> CostEstimate:
    """The ``--dry-run`` estimate of sending ``requests`` (already-cached ones should be left out by the caller).

    ``expected_output(task)`` is a task's expected answer length in tokens (the teacher's few-shot answers:
    :func:`keypoint_instruct.teacher.templates.expected_output_tokens`); default 300.
    """
    estimate = CostEstimate(token_method=token_counter().method)
    seen_prefixes: set[tuple] = set()
    for request in requests:
        body = request.body
        model = str(body.get("model", ""))
        messages = body.get("messages", [])
        expected = expected_output(request.task) if expected_output else None
        one = estimate_request(messages, max_output_tokens(body), expected)
        prefix = (model, tuple((m.get("role"), str(m.get("content"))) for m in messages[:-1]))
        cached = cacheable_tokens(one.prefix_tokens) if prefix in seen_prefixes else 0
        seen_prefixes.add(prefix)
        estimate.requests += 1
        estimate.input_tokens += one.input_tokens
        estimate.cacheable_input_tokens += cached
        estimate.output_tokens += one.output_tokens
        estimate.max_output_tokens += one.max_output_tokens
        usage = {"prompt_tokens": one.input_tokens, "completion_tokens": one.output_tokens}
        estimate.sync_usd += completion_cost(model, **usage)
        estimate.sync_cached_usd += completion_cost(model, **usage, cached_tokens=cached)
        estimate.batch_usd += completion_cost(model, **usage, batch=True)
        if model not in estimate.models:
            estimate.models.append(model)
            if price_for(model) is None:
                estimate.unpriced_models.append(model)
            if is_reasoning_model(model):
                estimate.reasoning_models.append(model)
    return estimate


def format_estimate(estimate: CostEstimate) -> str:
    """The dry-run report, a few lines for a terminal."""
    lines = [
        f"estimated input tokens: {estimate.input_tokens:,} (counted with {estimate.token_method}; "
        f"{estimate.cacheable_input_tokens:,} of them in repeated static prefixes a prompt cache can serve)",
        f"estimated output tokens: {estimate.output_tokens:,} (mean length of the task's few-shot answers; "
        f"at most {estimate.max_output_tokens:,} with the output limit: max_tokens, or max_completion_tokens for a "
        "reasoning model)",
    ]
    for model in estimate.models:
        price = price_for(model)
        if price is not None:
            lines.append(
                f"prices of {model} as of {prices_read_on()} per 1M tokens: input ${price.input:.2f}, "
                f"cached input ${price.cached_input:.3g}, output ${price.output:.2f}, "
                f"Batch API {price.batch_discount:.0%} off"
            )
    if estimate.unpriced_models:
        lines.append(f"no price known for {', '.join(estimate.unpriced_models)}: counted as $0")
    if estimate.reasoning_models:
        verb = "bills" if len(estimate.reasoning_models) == 1 else "bill"
        lines.append(
            f"{', '.join(estimate.reasoning_models)} also {verb} hidden reasoning tokens as output, not counted in "
            "the expected output above: the cost can be several times higher, up to max_completion_tokens per request"
        )
    lines.append(
        f"estimated cost sync: ${estimate.sync_usd:,.2f} without prompt-cache hits, "
        f"${estimate.sync_cached_usd:,.2f} if every repeated prefix hits the cache"
    )
    lines.append(f"estimated cost Batch API: ${estimate.batch_usd:,.2f} (no prompt-cache discount assumed)")
    return "\n".join(lines)
