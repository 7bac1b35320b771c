"""Finding the batches a ``batch submit`` made but did not record: after a crash, a kill or a lost answer.

Functions (``client`` a sync ``openai.OpenAI``, ``cache`` a :class:`keypoint_instruct.llm.store.cache.ResponseCache`)::

    existing_batches(client, known) -> dict[str, Batch]     # recent unrecorded batches by input digest
    resolve_submitting(client, cache) -> list[str]          # one line per provisional row resolved

``batch submit`` records the keys of a batch before it asks the provider to create it (a provisional row,
:meth:`keypoint_instruct.llm.store.batches.BatchJobs.record_submitting`), so a submit killed before it learns the
batch id leaves them pending, never free for ``generate`` to send while the batch runs and bills.
``resolve_submitting`` (run first by ``batch submit``, ``status`` and ``collect``) settles each provisional row whose
submit has ended, that is whose keys no live run holds a claim on (:mod:`keypoint_instruct.llm.store.claims`): it
lists the provider's batches and looks for the one made from the row's input file; found, the row becomes its
record; not found while the provider knows the input file, it never made that batch, and the row is dropped so its
keys may be sent again.
When the provider cannot be asked, or does not know the input file (another endpoint than the submit's: the batch
may be running there), the row stays (its keys stay pending) and the line says so.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from keypoint_instruct.llm.batch.api import count_of, endpoint_of
from keypoint_instruct.llm.store.batches import BatchJobs
from keypoint_instruct.llm.store.claims import Claims

if TYPE_CHECKING:
    from keypoint_instruct.llm.store.cache import ResponseCache

log = logging.getLogger(__name__)

DIGEST_KEY = "keypoint_instruct_input_sha256"  # metadata of every batch: the sha256 of its input file
CLOCK_SKEW_S = 86_400  # a batch made from a row's input file is no older than the row, give or take this


def existing_batches(client, known: set[str]) -> dict[str, Any]:
    """Recent batches by input digest that the cache does not know (created by an interrupted submit)."""
    found = {}
    try:
        page = client.batches.list(limit=100)
        for batch in page.data:
            digest = (batch.metadata or {}).get(DIGEST_KEY)
            if (
                digest
                and batch.id not in known
                and batch.status not in ("failed", "expired", "cancelled", "cancelling")
            ):
                found.setdefault(digest, batch)
    except Exception as err:  # listing is a safety net; a provider without it must not block a submit
        log.warning("could not list existing batches (%s); an interrupted earlier submit cannot be detected", err)
    return found


def _by_input_file(client, file_ids: set[str], since: float) -> dict[str, Any]:
    """The provider's batches made from ``file_ids``, newest first, read back to ``since`` (Unix time)."""
    found: dict[str, Any] = {}
    for batch in client.batches.list(limit=100):  # every page, newest first
        if batch.input_file_id in file_ids:
            found.setdefault(batch.input_file_id, batch)
        if len(found) == len(file_ids) or batch.created_at < since:
            break
    return found


def resolve_submitting(client, cache: ResponseCache) -> list[str]:
    """Settle the provisional rows of submits that have ended (see the module docstring); one line each."""
    import openai

    jobs = BatchJobs(cache)
    rows = jobs.submitting()
    if not rows:
        return []
    claims = Claims(cache)
    ended = [row for row in rows if not claims.held_elsewhere(row["keys"])]  # live ones are still being created
    if not ended:
        return []
    since = min(datetime.fromisoformat(row["created_at"]).timestamp() for row in ended) - CLOCK_SKEW_S
    try:
        found = _by_input_file(client, {row["input_file_id"] for row in ended}, since)
    except openai.APIError as err:
        n = sum(row["n_requests"] for row in ended)
        return [
            f"could not list the provider's batches ({type(err).__name__}) to find what an interrupted `batch "
            f"submit` created: its {count_of(n, 'request')} stay pending; run `batch status` again"
        ]
    notes = []
    for row in ended:
        file_id, n = row["input_file_id"], count_of(row["n_requests"], "request")
        batch = found.get(file_id)
        if batch is not None:
            if jobs.adopt(row["batch_id"], batch.id, batch.status):
                notes.append(
                    f"found batch {batch.id} of input file {file_id}, created by an interrupted `batch submit` "
                    f"({n}): recorded it ({batch.status})"
                )
            continue
        try:  # a provider that does not know the file is not the one the submit uploaded it to
            client.files.retrieve(file_id)
        except openai.APIError as err:
            where = endpoint_of(client)
            why = "does not know" if isinstance(err, openai.NotFoundError) else "could not be asked about"
            notes.append(
                f"the provider at {where} {why} input file {file_id} of an interrupted `batch submit` "
                f"({type(err).__name__}): its {n} stay pending; pass the --base-url it was submitted to"
            )
            continue
        if freed := jobs.drop_submitting(row["batch_id"]):
            notes.append(
                f"an interrupted `batch submit` left {count_of(freed, 'request')} of input file {file_id} that the "
                "provider made no batch of: they are free to send again"
            )
    return notes
