"""A spend cap (``--max-cost``): what a run has paid plus the worst case of what it has in flight never passes it.

The worst case of a request is its prompt tokens (o200k, as OpenAI bills GPT-4o) plus its output limit
(``max_tokens``, or ``max_completion_tokens`` for a reasoning model, whose hidden reasoning it also covers), at the
model's synchronous price without prompt-cache discount (:mod:`keypoint_instruct.llm.pricing`). Before a request is
sent, :meth:`Budget.reserve` checks ``spent + reserved + worst case <= cap``; when the answer arrives its
reservation is replaced by what it really cost (the caller adds that to ``spent``). A failed attempt that the
endpoint answered with an HTTP error costs nothing; one abandoned without an answer (timeout, dropped connection,
unreadable body) may still be billed, so its worst case stays counted. Should an endpoint count more prompt tokens
than o200k does, later reservations are scaled up by the largest ratio seen.

A budget for a model the pricing table does not know, or for a request without an output limit, cannot be enforced:
:func:`check_enforceable` refuses it with one line. So is a cap below the worst case of the first request to send:
nothing could be sent under it (:func:`below_one_request`, exit status 2 like any usage error); a cap reached
part-way is not an error (the caller exits 1).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from keypoint_instruct.errors import UsageError
from keypoint_instruct.llm import pricing
from keypoint_instruct.llm.request import ChatRequest, max_output_tokens

log = logging.getLogger(__name__)


def check_enforceable(requests: Iterable[ChatRequest], cap_usd: float, *, option: str = "--max-cost") -> None:
    """Raise a one-line UsageError when the cap cannot be enforced for these requests."""
    if not cap_usd > 0:
        raise UsageError(f"{option} {cap_usd} must be a positive number of dollars")
    models = set()
    for request in requests:
        if not max_output_tokens(request.body):
            raise UsageError(
                f"{option} needs an output limit (max_tokens or max_completion_tokens) in every request; request "
                f"{request.key[:12]} has none"
            )
        models.add(str(request.body.get("model", "")))
    unpriced = sorted(m for m in models if pricing.price_for(m) is None)
    if unpriced:
        raise UsageError(
            f"{option} cannot be enforced: no price for model {', '.join(unpriced)} in pricing.json "
            "(add it there, or run without the cap)"
        )


def below_one_request(cap_usd: float, worst_usd: float, *, batch: bool = False) -> UsageError:
    """The one-line error of a cap that cannot pay for even the first request (``generate`` and ``batch submit``)."""
    verb, done, price = ("submit", "submitted", "the Batch price") if batch else ("send", "sent", "the model's price")
    return UsageError(
        f"--max-cost ${cap_usd:g} is below the worst case of the first request to {verb} (${worst_usd:.4f} at "
        f"{price}: all its prompt tokens plus its output limit); nothing {done}: rerun with a higher --max-cost"
    )


def worst_case_tokens(request: ChatRequest) -> tuple[int, int]:
    """(prompt tokens, max output tokens) of a request; the output limit under either name."""
    body = request.body
    return pricing.count_message_tokens(body.get("messages", [])), max_output_tokens(body)


def worst_case_usd(request: ChatRequest, *, batch: bool = False) -> float:
    """The most a request can cost: every prompt token uncached plus its output limit."""
    prompt, output = worst_case_tokens(request)
    model = str(request.body.get("model", ""))
    return pricing.completion_cost(model, prompt_tokens=prompt, completion_tokens=output, batch=batch)


class Budget:
    """The cap of one run; ``reserved`` is the worst case of the requests in flight."""

    def __init__(self, cap_usd: float) -> None:
        self.cap_usd = float(cap_usd)
        self.reserved = 0.0
        self.possibly_billed = 0.0  # worst cases of attempts abandoned without an answer
        self.abandoned = 0  # how many attempts those are
        self.refused_usd = 0.0  # worst case of the last request that did not fit
        self.prompt_scale = 1.0
        self._held: dict[int, tuple[float, int]] = {}  # attempt id -> (reservation, o200k prompt tokens)

    def reserve(self, attempt: int, request: ChatRequest, spent: float) -> bool:
        """Reserve the worst case of sending ``request`` now; False when that would pass the cap."""
        prompt, output = worst_case_tokens(request)
        model = str(request.body.get("model", ""))
        worst = pricing.completion_cost(
            model, prompt_tokens=round(prompt * self.prompt_scale), completion_tokens=output
        )
        if spent + self.possibly_billed + self.reserved + worst > self.cap_usd:
            self.refused_usd = worst
            return False
        self.reserved += worst
        self._held[attempt] = (worst, prompt)
        return True

    def answered(self, attempt: int, prompt_tokens: int) -> None:
        """The attempt was answered (its real cost is now part of ``spent``)."""
        worst, counted = self._held.pop(attempt)
        self.reserved -= worst
        if counted and prompt_tokens > counted * self.prompt_scale:
            self.prompt_scale = prompt_tokens / counted
            log.warning("the endpoint counted %d prompt tokens where o200k counts %d; reserving more", prompt_tokens,
                        counted)  # fmt: skip

    def failed(self, attempt: int, *, answered_with_error: bool) -> None:
        """The attempt failed; unless the endpoint answered it with an error status it may have been billed."""
        worst, _ = self._held.pop(attempt)
        self.reserved -= worst
        if not answered_with_error:
            self.possibly_billed += worst
            self.abandoned += 1
