"""Ingesting the output and error files of a finished Batch API job into the response cache, exactly once.

``collect`` in :mod:`keypoint_instruct.llm.batch.collect` downloads the files and calls :func:`ingest` (answers at
the Batch price through ``ResponseCache.put``, failed lines through ``record_failure``; a key answered already is
left alone; an empty answer, as online, is recorded as a failure with what it cost and not stored, so ``generate``
or the next submit asks again) and :func:`account_for_missing` (a request on no line at all, as in a failed batch,
is recorded as a failure with the batch's errors); both add what they did to an :class:`IngestCounts`. A failure
reason already recorded for a key is not recorded again, so a collect that was interrupted and is run again adds
nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from keypoint_instruct.llm.pricing import completion_cost
from keypoint_instruct.llm.providers.http_errors import redact
from keypoint_instruct.llm.providers.openai import answer_text, count_locally
from keypoint_instruct.llm.request import ChatRequest, Completion, is_empty_answer
from keypoint_instruct.llm.store.stats import empty_answer_reason

if TYPE_CHECKING:
    from keypoint_instruct.llm.store.cache import ResponseCache


@dataclass
class IngestCounts:
    """What ingesting batch files did, added up over the batches of one collect."""

    added: int = 0
    already_present: int = 0
    failures: int = 0
    unmatched: int = 0  # lines whose custom_id is not a request of the batch
    cost_usd: float = 0.0


def _completion(body: dict, request: ChatRequest) -> Completion:
    """An output line's answer, read as the teacher reads an online one (a refusal, a missing ``usage``)."""
    choice = body["choices"][0]
    message = choice.get("message") or {}
    text, finish_reason = answer_text(message.get("content"), message.get("refusal"), choice.get("finish_reason"))
    model = str(body.get("model") or request.body.get("model", ""))
    usage = body.get("usage")
    if usage is None:
        prompt_tokens, completion_tokens = count_locally(request, text, model)
    else:
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
    details = (usage or {}).get("prompt_tokens_details") or {}
    return Completion(
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cached_tokens=int(details.get("cached_tokens") or 0),
        model=model,
    )


def _failure_reason(batch_id: str, line: dict) -> str:
    response = line.get("response") or {}
    error = line.get("error") or (response.get("body") or {}).get("error") or {}
    code = error.get("code") or error.get("type") or "error"
    status_code = response.get("status_code")
    where = f"HTTP {status_code} " if status_code else ""
    return redact(f"batch {batch_id}: {where}{code}: {error.get('message') or 'no message'}")


def _batch_errors(batch) -> str:
    """Why a batch ended without answers, from its ``errors`` (a failed batch) or its status."""
    data = getattr(getattr(batch, "errors", None), "data", None) or []
    found = [f"{e.code or 'error'}: {e.message or 'no message'}" for e in data[:3]]
    return "; ".join(redact(x) for x in found) or "no answer for this request"


def account_for_missing(cache: ResponseCache, batch, lines: list[dict], requests: dict, counts: IngestCounts) -> None:
    """A request of the batch on no output or error line (e.g. a failed batch) is recorded as a failure."""
    seen = {line.get("custom_id") for line in lines}
    missing = [key for key in requests if key not in seen]
    answered = cache.answered(missing)
    reason = f"batch {batch.id} {batch.status}: {_batch_errors(batch)}"
    for key in missing:
        if key in answered:
            continue
        if not any(f["reason"] == reason for f in cache.failures(key)):
            cache.record_failure(requests[key], reason)
        counts.failures += 1


def ingest(cache: ResponseCache, batch, lines: list[dict], requests: dict, counts: IngestCounts) -> None:
    """Store the answers and failures of ``lines`` (output and error files) for the batch's ``requests`` by key."""
    answered = cache.answered(line.get("custom_id") for line in lines)
    for line in lines:
        request = requests.get(line.get("custom_id"))
        if request is None:
            counts.unmatched += 1
            continue
        if request.key in answered:
            counts.already_present += 1
            continue
        response = line.get("response") or {}
        paid = 0.0  # an empty answer's cost, counted when its failure is first recorded
        if response.get("status_code") == 200 and not line.get("error"):
            try:
                completion = _completion(response["body"], request)
            except (AttributeError, KeyError, IndexError, TypeError, ValueError) as err:
                reason = f"batch {batch.id}: malformed answer ({type(err).__name__}: {err})"
            else:
                cost = completion_cost(
                    str(request.body.get("model", completion.model)),
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    cached_tokens=completion.cached_tokens,
                    batch=True,
                )
                if is_empty_answer(completion.text, completion.finish_reason):  # paid for, but no answer
                    paid = cost
                    reason = f"batch {batch.id}: " + empty_answer_reason(
                        completion.finish_reason, completion.prompt_tokens, completion.completion_tokens, cost
                    )
                else:
                    stored = cache.put(request, completion, 0.0, cost_usd=cost)
                    answered.add(request.key)
                    counts.added += 1
                    counts.cost_usd += stored.cost_usd
                    continue
        else:
            reason = _failure_reason(batch.id, line)
        if not any(f["reason"] == reason for f in cache.failures(request.key)):
            cache.record_failure(request, reason)
            counts.cost_usd += paid
        counts.failures += 1
