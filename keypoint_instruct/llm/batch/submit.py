"""``batch submit``: the requests not answered, not pending and not claimed, uploaded as Batch API jobs.

Takes a sync ``openai.OpenAI`` ``client``, :class:`~keypoint_instruct.llm.request.ChatRequest` objects and a
:class:`keypoint_instruct.llm.store.cache.ResponseCache`; gives a :class:`SubmitResult`::

    submit(client, requests, cache, out_dir, *, max_requests=50_000, max_bytes=200_000_000, claim_lease_s=120,
           max_cost_usd=None, base_url=None) -> SubmitResult

``submit`` leaves out requests already answered in the cache, waiting in an uncollected batch or being sent by
another live run on the same cache (:mod:`keypoint_instruct.llm.store.claims`); it claims the rest until their batch
is recorded (the claim goes in the same transaction as the record), writes them as request JSONL files under
``out_dir`` (``custom_id`` = the cache key; a new file every ``max_requests`` requests or before ``max_bytes``),
uploads each (purpose "batch"), records its keys as a provisional batch of that input file, creates a batch for it
(``/v1/chat/completions``, 24h window) and turns the provisional record into the batch's. It records ``base_url``
(the endpoint ``client`` talks to, None for the default; never the key) with each batch.

A submit killed between the two leaves the keys pending, not free: the next ``submit``, ``status`` or ``collect``
asks the provider which batch it made from that input file and records it, or frees the keys if it made none
(:mod:`keypoint_instruct.llm.batch.recover`; each says so in ``notes``). Each batch also carries the sha256 of its
input file in its metadata: a creation whose answer is lost is sent once only (no SDK retry) and then looked up by
that digest.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from keypoint_instruct.errors import CacheError, TeacherError, UsageError
from keypoint_instruct.llm.batch.api import (
    COMPLETION_WINDOW,
    ENDPOINT,
    MAX_BYTES_PER_FILE,
    MAX_REQUESTS_PER_FILE,
    api_error,
    call,
    count_of,
)
from keypoint_instruct.llm.batch.recover import DIGEST_KEY, existing_batches, resolve_submitting
from keypoint_instruct.llm.online.budget import below_one_request, check_enforceable, worst_case_usd
from keypoint_instruct.llm.request import ChatRequest, canonical_json
from keypoint_instruct.llm.store.batches import BatchJobs
from keypoint_instruct.llm.store.claims import DEFAULT_LEASE_S, Claims

if TYPE_CHECKING:
    from keypoint_instruct.llm.store.cache import ResponseCache

log = logging.getLogger(__name__)


@dataclass
class SubmitResult:
    batch_ids: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    submitted: int = 0
    already_answered: int = 0
    already_pending: int = 0
    claimed_elsewhere: int = 0  # being sent by another run on the same cache
    over_cap: int = 0  # left out by max_cost_usd
    worst_case_usd: float | None = None  # with max_cost_usd: worst case of what was submitted, at the Batch price
    adopted: int = 0  # batches found again by their input digest instead of being created twice
    notes: list[str] = field(default_factory=list)  # interrupted earlier submits resolved first (recover.py)

    def __str__(self) -> str:
        elsewhere = f", {self.claimed_elsewhere} being sent by another run" if self.claimed_elsewhere else ""
        if not self.batch_ids:
            return (
                f"nothing to submit: {count_of(self.already_answered, 'request')} already answered, "
                f"{self.already_pending} waiting in earlier batches{elsewhere}"
            )
        found = f" ({self.adopted} found again after an interrupted submit)" if self.adopted else ""
        text = (
            f"submitted {count_of(self.submitted, 'request')} in {count_of(len(self.batch_ids), 'batch', 'batches')}"
            f"{found}: "
            f"{', '.join(self.batch_ids)}; skipped {self.already_answered} already answered, "
            f"{self.already_pending} waiting in earlier batches{elsewhere}; request files in {self.files[0].parent}"
        )
        if self.worst_case_usd is not None:
            text += f"; worst case of what was submitted ${self.worst_case_usd:.4f} at the Batch price"
        if self.over_cap:
            text += f"; {count_of(self.over_cap, 'request')} left out by --max-cost: submit again for them"
        return text


def request_line(request: ChatRequest) -> bytes:
    """One line of an input file: the request's body under its cache key (``custom_id``)."""
    line = {"custom_id": request.key, "method": "POST", "url": ENDPOINT, "body": request.body}
    return (canonical_json(line) + "\n").encode("utf-8")


def split_lines(
    requests: Sequence[ChatRequest], max_requests: int, max_bytes: int
) -> list[tuple[list[ChatRequest], bytes]]:
    """Requests cut into input files of at most ``max_requests`` lines and ``max_bytes`` bytes."""
    chunks: list[tuple[list[ChatRequest], list[bytes]]] = []
    size = 0
    for request in requests:
        line = request_line(request)
        if len(line) > max_bytes:
            raise UsageError(f"request {request.key[:12]} alone is {len(line)} bytes, over the {max_bytes} allowed")
        if not chunks or len(chunks[-1][0]) >= max_requests or size + len(line) > max_bytes:
            chunks.append(([], []))
            size = 0
        chunks[-1][0].append(request)
        chunks[-1][1].append(line)
        size += len(line)
    return [(reqs, b"".join(lines)) for reqs, lines in chunks]


def _create(client, cache: ResponseCache, input_file_id: str, digest: str, name: str):
    """Create one batch, sent once (no SDK retry): when its answer is lost, look for it before giving up."""
    import openai

    try:
        return client.with_options(max_retries=0).batches.create(
            input_file_id=input_file_id,
            endpoint=ENDPOINT,
            completion_window=COMPLETION_WINDOW,
            metadata={DIGEST_KEY: digest, "file": name},
        )
    except (openai.APIConnectionError, openai.InternalServerError) as err:
        found = existing_batches(client, BatchJobs(cache).ids()).get(digest)
        if found is not None:
            log.info("the answer to creating %s was lost (%s); found batch %s", name, type(err).__name__, found.id)
            return found
        raise TeacherError(
            f"Batch API: creating the batch of {name} failed ({type(err).__name__}) and no such batch exists; "
            "rerun `batch submit`"
        ) from None
    except openai.APIError as err:
        raise api_error(f"creating the batch of {name}", err) from None


def _create_provisional(client, cache: ResponseCache, provisional: str, input_file_id: str, digest: str, name: str):
    """:func:`_create` for a batch whose keys are recorded as ``provisional``; dropped again when it surely failed."""
    jobs = BatchJobs(cache)
    if jobs.row(provisional) is None:  # our claims lapsed (a pause past the lease) and another run resolved it
        raise CacheError(
            f"the record of {name} was settled by another run while this submit was paused longer than its claim "
            "lease; nothing was created for it: run `batch status`, then `batch submit` again"
        )
    try:
        return _create(client, cache, input_file_id, digest, name)
    except TeacherError:  # refused, or its answer lost and no such batch exists: its keys are free again
        jobs.drop_submitting(provisional)
        raise


def submit(
    client,
    requests: Sequence[ChatRequest],
    cache: ResponseCache,
    out_dir: str | Path,
    *,
    max_requests: int = MAX_REQUESTS_PER_FILE,
    max_bytes: int = MAX_BYTES_PER_FILE,
    claim_lease_s: float = DEFAULT_LEASE_S,
    max_cost_usd: float | None = None,
    base_url: str | None = None,
) -> SubmitResult:
    """Upload the requests not answered, not pending and not claimed as batches; see the module docstring.

    ``max_cost_usd``: take the requests in order while the worst case of those taken (every prompt token plus the
    output limit, at the Batch price) stays within it; the rest are left out (``over_cap``) for a later
    submit. Nothing fits, or a model without a price: :class:`UsageError`.
    """
    result = SubmitResult()
    unique = {r.key: r for r in requests}
    if max_cost_usd is not None:
        check_enforceable(unique.values(), max_cost_usd)
    result.notes = resolve_submitting(client, cache)  # what an interrupted submit left: recorded, or freed
    claims = Claims(cache, lease_s=claim_lease_s)
    with claims.renewing():
        got = claims.claim(unique)
        result.already_answered, result.already_pending = len(got.answered), len(got.in_batch)
        result.claimed_elsewhere = len(got.held)
        if got.taken_over:
            log.info("took over %d claims of runs that ended without releasing them (kill -9)", len(got.taken_over))
        todo = [r for key, r in unique.items() if key in got.claimed]
        if todo and max_cost_usd is not None:
            todo = _within(todo, max_cost_usd, result)
        if todo:
            _submit_claimed(client, todo, cache, out_dir, max_requests, max_bytes, claims.owner, result, base_url)
    return result


def _within(todo: list[ChatRequest], cap_usd: float, result: SubmitResult) -> list[ChatRequest]:
    """The longest prefix of ``todo`` whose worst case at the Batch price stays within ``cap_usd``."""
    total = 0.0
    for count, request in enumerate(todo):
        worst = worst_case_usd(request, batch=True)
        if total + worst > cap_usd:
            if count == 0:
                raise below_one_request(cap_usd, worst, batch=True)
            result.over_cap = len(todo) - count
            break
        total += worst
    result.worst_case_usd = total
    return todo[: len(todo) - result.over_cap]


def _submit_claimed(
    client,
    todo: list[ChatRequest],
    cache: ResponseCache,
    out_dir: str | Path,
    max_requests: int,
    max_bytes: int,
    owner: str,
    result: SubmitResult,
    base_url: str | None,
) -> None:
    """Write, upload and create the batches of the claimed requests; record each with its keys."""
    jobs = BatchJobs(cache)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    existing = existing_batches(client, jobs.ids())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    for number, (chunk, data) in enumerate(split_lines(todo, max_requests, max_bytes), start=1):
        digest = hashlib.sha256(data).hexdigest()
        path = out_dir / f"batch-{stamp}-{number:03d}.jsonl"
        path.write_bytes(data)
        result.files.append(path)
        batch, provisional = existing.get(digest), None
        if batch is not None:
            result.adopted += 1
            log.info("batch %s already holds %s; recording it instead of submitting again", batch.id, path.name)
        else:
            with path.open("rb") as handle:
                uploaded = call(f"uploading {path.name}", client.files.create, file=handle, purpose="batch")
            provisional = jobs.record_submitting(uploaded.id, chunk, base_url=base_url)  # pending from now on
            batch = _create_provisional(client, cache, provisional, uploaded.id, digest, path.name)
        jobs.record(
            batch.id,
            chunk,
            input_file_id=batch.input_file_id,
            status=batch.status,
            claim_owner=owner,
            replaces=provisional,
            base_url=base_url,
        )
        result.batch_ids.append(batch.id)
        result.submitted += len(chunk)
        log.info("batch %s: %d requests (%s, %d bytes)", batch.id, len(chunk), path.name, len(data))
