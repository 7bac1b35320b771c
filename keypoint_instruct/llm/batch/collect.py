"""``batch status`` and ``batch collect``: follow the recorded batches, and ingest the finished ones exactly once.

Takes a sync ``openai.OpenAI`` ``client`` and a :class:`keypoint_instruct.llm.store.cache.ResponseCache`; gives a
:class:`StatusReport` or a :class:`CollectResult`::

    status(client, cache, *, client_for=None) -> StatusReport
    collect(client, cache, *, client_for=None) -> CollectResult

Both ask about a batch through ``client_for(row)`` (a batch's cache row, its recorded ``base_url`` included) when
given, else through ``client``, and first settle what interrupted submits left (through ``client``:
:mod:`keypoint_instruct.llm.batch.recover`, one line each in ``notes``).

``collect`` downloads the output and error files of every finished, uncollected batch and ingests them exactly once:
answers go in through ``ResponseCache.put`` at the Batch price (a key answered already is left alone), failed lines
through ``record_failure``, and so does every request on no line at all (a failed batch has no files); lines are
matched by ``custom_id`` (the provider's order is not kept) and checked against the batch's own input file, whose
bodies hash back to their keys (:mod:`keypoint_instruct.llm.batch.ingest`). The batch is then marked collected, so a
second ``collect`` adds nothing, and its unanswered keys are no longer pending: ``generate`` or a new ``submit`` may
send them (expired, cancelled and failed batches included). A forgotten batch (``batch forget``) is asked for too:
should the provider report it ended after all, the answers it delivered are paid for and are collected like any
others (a key answered meanwhile keeps its answer); one the provider does not know stays forgotten.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from keypoint_instruct.errors import CacheError
from keypoint_instruct.llm.batch.api import TERMINAL, call, count_of
from keypoint_instruct.llm.batch.ingest import IngestCounts, account_for_missing, ingest
from keypoint_instruct.llm.batch.recover import resolve_submitting
from keypoint_instruct.llm.request import ChatRequest, request_key
from keypoint_instruct.llm.store.batches import FORGOTTEN, SUBMITTING, BatchJobs

if TYPE_CHECKING:
    from keypoint_instruct.llm.store.cache import ResponseCache

log = logging.getLogger(__name__)


@dataclass
class StatusReport:
    rows: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # interrupted submits resolved first (recover.py)

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
class CollectResult(IngestCounts):
    """The counts of every batch ingested (:class:`IngestCounts`), and which batches were collected or waited."""

    collected_batches: list[str] = field(default_factory=list)
    waiting_batches: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # "<batch id> <status>" of batches that ended early
    notes: list[str] = field(default_factory=list)  # interrupted submits resolved first (recover.py)

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


ClientFor = Callable[[dict], Any]  # a batch's cache row -> the client of its endpoint


def _refresh(client: Any, cache: ResponseCache, row: dict) -> Any:
    """The provider's batch of ``row``, its status and files recorded in the cache."""
    batch = call(f"reading batch {row['batch_id']}", client.batches.retrieve, row["batch_id"])
    BatchJobs(cache).update(
        row["batch_id"], status=batch.status, output_file_id=batch.output_file_id, error_file_id=batch.error_file_id
    )
    return batch


def status(client: Any, cache: ResponseCache, *, client_for: ClientFor | None = None) -> StatusReport:
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


def _jsonl(client: Any, file_id: str | None, what: str) -> list[dict]:
    """The lines of a batch file (none without a file id); a line that is not JSON is a CacheError."""
    if not file_id:
        return []
    text = call(f"downloading {what} {file_id}", client.files.content, file_id).text
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


def collect(client: Any, cache: ResponseCache, *, client_for: ClientFor | None = None) -> CollectResult:
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
