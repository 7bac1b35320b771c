"""The OpenAI Batch API (half price, answers within 24 h) feeding the same response cache as ``generate``.

Functions (the CLI ``keypoint-instruct batch submit|status|collect`` wires them; ``batch cancel|forget`` are in
:mod:`keypoint_instruct.llm.batch.cancel`; ``client`` is a sync ``openai.OpenAI``, ``cache`` a
:class:`keypoint_instruct.llm.store.cache.ResponseCache`)::

    submit(client, requests, cache, out_dir, *, max_requests=50_000, max_bytes=200_000_000, claim_lease_s=120,
           max_cost_usd=None, base_url=None) -> SubmitResult
    status(client, cache, *, client_for=None) -> StatusReport
    collect(client, cache, *, client_for=None) -> CollectResult

``submit`` records ``base_url`` (the endpoint ``client`` talks to, None for the default; never the key) with each
batch; ``status`` and ``collect`` ask about a batch through ``client_for(row)`` (a batch's cache row, its
``base_url`` included) when given, else through ``client``.

``submit`` leaves out requests already answered in the cache, waiting in an uncollected batch or being sent by
another live run on the same cache (:mod:`keypoint_instruct.llm.store.claims`); it claims the rest until their batch is
recorded (the claim goes in the same transaction as the record), writes them as
request JSONL files under ``out_dir`` (``custom_id`` = the cache key; a new file every ``max_requests`` requests or
before ``max_bytes``), uploads each (purpose "batch"), records its keys as a provisional batch of that input file,
creates a batch for it (``/v1/chat/completions``, 24h window) and turns the provisional record into the batch's.
A submit killed between the two leaves the keys pending, not free: the next ``submit``, ``status`` or ``collect``
asks the provider which batch it made from that input file and records it, or frees the keys if it made none
(:mod:`keypoint_instruct.llm.batch.recover`; each says so in ``notes``). Each batch also carries the sha256 of its
input file in its metadata: a creation whose answer is lost is sent once only (no SDK retry) and then looked up by
that digest.

``collect`` downloads the output and error files of every finished, uncollected batch and ingests them exactly once:
answers go in through ``ResponseCache.put`` at the Batch price (a key answered already is left alone), failed lines
through ``record_failure``, and so does every request on no line at all (a failed batch has no files); lines are
matched by ``custom_id`` (the provider's order is not kept) and checked against the batch's own input file, whose
bodies hash back to their keys. The batch is then marked collected, so a second ``collect`` adds nothing, and its
unanswered keys are no longer pending: ``generate`` or a new ``submit`` may send them (expired, cancelled and failed
batches included). A forgotten batch (``batch forget``) is asked for too: should the provider report it ended after
all, the answers it delivered are paid for and are collected like any others (a key answered meanwhile keeps its
answer); one the provider does not know stays forgotten.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from keypoint_instruct.errors import CacheError, TeacherError, UsageError
from keypoint_instruct.llm.batch.ingest import account_for_missing, ingest
from keypoint_instruct.llm.batch.recover import DIGEST_KEY, existing_batches, resolve_submitting
from keypoint_instruct.llm.online.budget import below_one_request, check_enforceable, worst_case_usd
from keypoint_instruct.llm.providers.http_errors import error_message, redact
from keypoint_instruct.llm.request import ChatRequest, canonical_json, request_key
from keypoint_instruct.llm.store.batches import FORGOTTEN, SUBMITTING, BatchJobs, count_of
from keypoint_instruct.llm.store.claims import DEFAULT_LEASE_S, Claims

if TYPE_CHECKING:
    from keypoint_instruct.llm.store.cache import ResponseCache

log = logging.getLogger(__name__)

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
MAX_REQUESTS_PER_FILE = 50_000  # the Batch API's limits per input file
MAX_BYTES_PER_FILE = 200_000_000
TERMINAL = ("completed", "failed", "expired", "cancelled")


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
    notes: list[str] = field(default_factory=list)  # interrupted earlier submits resolved first (batch_recover)

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


@dataclass
class StatusReport:
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # interrupted submits resolved first (batch_recover)

    def __str__(self) -> str:
        if not self.rows:
            return "no batches recorded in this cache"
        lines = []
        for r in self.rows:
            counts = f"{r['completed']}/{r['total']} done, {r['failed']} failed"
            if r["completed"] is None:  # collected before its counts were recorded (cache schema 3)
                counts = f"{count_of(r['total'], 'request')}"
            if r["status"] == FORGOTTEN:
                counts = f"{count_of(r['total'], 'request')}, none pending (the unanswered may be sent again)"
            elif r["status"] == SUBMITTING:
                counts = f"{count_of(r['total'], 'request')} pending: a `batch submit` is creating this batch"
            lines.append(f"{r['batch_id']}  {r['status']:<11} {counts}  {'collected' if r['collected'] else ''}")
        return "\n".join(line.rstrip() for line in lines)


@dataclass
class CollectResult:
    collected_batches: list[str] = field(default_factory=list)
    waiting_batches: list[str] = field(default_factory=list)
    added: int = 0
    already_present: int = 0
    failures: int = 0
    unmatched: int = 0  # lines whose custom_id is not a request of the batch
    cost_usd: float = 0.0
    unfinished: list[str] = field(default_factory=list)  # "<batch id> <status>" of batches that ended early
    notes: list[str] = field(default_factory=list)  # interrupted submits resolved first (batch_recover)

    def __str__(self) -> str:
        text = (
            f"collected {count_of(len(self.collected_batches), 'batch', 'batches')}: "
            f"{count_of(self.added, 'answer')} added "
            f"(${self.cost_usd:.4f} at the Batch price), {self.already_present} already in the cache, "
            f"{count_of(self.failures, 'failed request')} recorded"
        )
        if self.unmatched:
            text += f", {count_of(self.unmatched, 'line')} matching no submitted request ignored"
        if self.unfinished:
            text += (
                f"; ended before finishing: {', '.join(self.unfinished)} (their unanswered requests are free to "
                "send again with `batch submit` or `generate`)"
            )
        if self.waiting_batches:
            text += f"; still running: {', '.join(self.waiting_batches)}"
        return text


def _api_error(what: str, err: Exception) -> TeacherError:
    """One TeacherError line for an API error (the key is never part of it)."""
    import openai

    if isinstance(err, openai.APIStatusError):
        return TeacherError(f"Batch API: {what} was refused with HTTP {err.status_code}: {redact(error_message(err))}")
    message = getattr(err, "message", str(err))
    if isinstance(err, openai.APIConnectionError):  # name the endpoint tried: a recorded one may be long gone
        message = f"{message.rstrip('.')} (tried {_endpoint_of(err)})"
    return TeacherError(f"Batch API: {what} failed: {type(err).__name__}: {redact(message)}")


def _endpoint_of(err: Exception) -> str:
    """The scheme, host and path of the request that failed, without its query."""
    try:
        url = err.request.url  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - no request attached
        return "an unknown URL"
    return str(url.copy_with(query=None))


def _api(what: str, call, *args, **kwargs):
    """Call the API; an error becomes one TeacherError line."""
    import openai

    try:
        return call(*args, **kwargs)
    except openai.APIError as err:
        raise _api_error(what, err) from None


# --------------------------------------------------------------------------- submit


def request_line(request: ChatRequest) -> bytes:
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
        raise _api_error(f"creating the batch of {name}", err) from None


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
                uploaded = _api(f"uploading {path.name}", client.files.create, file=handle, purpose="batch")
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


# --------------------------------------------------------------------------- status


def _refresh(client, cache: ResponseCache, row: dict):
    batch = _api(f"reading batch {row['batch_id']}", client.batches.retrieve, row["batch_id"])
    BatchJobs(cache).update(
        row["batch_id"], status=batch.status, output_file_id=batch.output_file_id, error_file_id=batch.error_file_id
    )
    return batch


def status(client, cache: ResponseCache, *, client_for=None) -> StatusReport:
    """The state of every batch recorded in the cache (uncollected ones are asked from the API and updated).

    A collected batch shows the provider's counts recorded when it was collected (None when not recorded)."""
    report = StatusReport(notes=resolve_submitting(client, cache))
    for row in BatchJobs(cache).rows():
        collected = row["collected_at"] is not None
        counts = {"total": row["n_requests"], "completed": 0, "failed": 0}
        state = row["status"]
        if state in (FORGOTTEN, SUBMITTING):  # the provider does not know it (any more, or yet): nothing to ask
            pass
        elif not collected:
            batch = _refresh(client_for(row) if client_for else client, cache, row)
            state = batch.status
            if batch.request_counts is not None:
                counts = batch.request_counts.model_dump()
        else:
            counts["completed"], counts["failed"] = row["completed"], row["failed"]
        report.rows.append({"batch_id": row["batch_id"], "status": state, "collected": collected, **counts})
    return report


# --------------------------------------------------------------------------- collect


def _jsonl(client, file_id: str | None, what: str) -> list[dict]:
    if not file_id:
        return []
    text = _api(f"downloading {what} {file_id}", client.files.content, file_id).text
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                raise CacheError(f"{what} {file_id} line {number} is not JSON") from None
    return lines


def _requests_of(client, jobs: BatchJobs, batch) -> dict[str, ChatRequest]:
    """The batch's requests by key, rebuilt from its input file and the cache's record of each key."""
    requests = {}
    for item in _jsonl(client, batch.input_file_id, "input file"):
        key, body = item.get("custom_id"), item.get("body")
        meta = jobs.request(key) if isinstance(key, str) else None
        if meta is None or not isinstance(body, dict) or request_key(body) != key:
            log.warning("input line %s of batch %s does not match a recorded request; skipped", key, batch.id)
            continue
        requests[key] = ChatRequest(
            task=meta["task"],
            item_id=meta["image_id"],
            collection=meta["coco_split"],
            prompt_version=meta["prompt_version"],
            body=body,
        )
    return requests


def _forgotten_but_ended(client, batch_id: str):
    """A forgotten batch the provider reports as ended after all (its answers are paid for), else None."""
    import openai

    try:
        batch = client.batches.retrieve(batch_id)
    except openai.APIError as err:  # lost indeed (404), or not this endpoint's: it stays forgotten
        log.info("forgotten batch %s: %s", batch_id, type(err).__name__)
        return None
    return batch if batch.status in TERMINAL else None


def collect(client, cache: ResponseCache, *, client_for=None) -> CollectResult:
    """Ingest every finished, uncollected batch into the cache, exactly once; see the module docstring."""
    result = CollectResult(notes=resolve_submitting(client, cache))
    jobs = BatchJobs(cache)
    default = client
    for row in [row for row in jobs.rows() if row["collected_at"] is None]:
        if row["status"] == SUBMITTING:  # a live submit is creating it: nothing to collect yet
            continue
        client = client_for(row) if client_for else default
        if row["status"] == FORGOTTEN:  # its keys stay free; answers it delivered anyway are kept all the same
            batch = _forgotten_but_ended(client, row["batch_id"])
            if batch is None:
                continue
        else:
            batch = _refresh(client, cache, row)
        if batch.status not in TERMINAL:
            result.waiting_batches.append(batch.id)
            continue
        requests = _requests_of(client, jobs, batch)
        lines = _jsonl(client, batch.output_file_id, "output file") + _jsonl(client, batch.error_file_id, "error file")
        ingest(cache, batch, lines, requests, result)
        account_for_missing(cache, batch, lines, requests, result)
        if batch.status != "completed":
            result.unfinished.append(f"{batch.id} {batch.status}")
        counts = batch.request_counts
        jobs.record_counts(batch.id, counts.completed if counts else None, counts.failed if counts else None)
        jobs.update(batch.id, collected_at=datetime.now(UTC).isoformat(timespec="microseconds"))
        result.collected_batches.append(batch.id)
        log.info("collected batch %s (%s): %d lines", batch.id, batch.status, len(lines))
    return result
