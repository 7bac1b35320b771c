"""Stopping a Batch API job: ``batch cancel`` asks the provider to stop it, ``batch forget`` gives up on one it lost.

Functions (``client_for(row)`` gives the sync ``openai.OpenAI`` of a recorded batch's endpoint, asked for only once
the cache knows the batch; ``cache`` a :class:`keypoint_instruct.llm.store.cache.ResponseCache`)::

    cancel(client_for, cache, batch_id) -> str          # what happened, one line
    forget(client_for, cache, batch_id, *, force=False) -> str

A cancelled batch ends as ``cancelled`` with the answers it finished; the usual ``batch collect`` ingests them and
frees the rest, so ``generate`` or a new ``batch submit`` may send them. A batch the provider no longer knows (404
when it is read) can never be collected: ``forget`` marks it forgotten in the cache, which frees its keys without an
answer at once; answers already in the cache stay, and the row stays so ``batch status`` shows it. ``forget``
refuses a batch the provider still reports (running, or ended but not collected: its answers are paid for) unless
``force``; ``batch collect`` still keeps the answers a forgotten batch delivers if the provider reports it ended, and
``cancel`` still stops one forgotten while it ran (it stays forgotten).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from keypoint_instruct.errors import UsageError
from keypoint_instruct.llm.batch.api import TERMINAL, api_error, call, count_of, endpoint_of
from keypoint_instruct.llm.store.batches import FORGOTTEN, SUBMITTING, BatchJobs

if TYPE_CHECKING:
    from keypoint_instruct.llm.store.cache import ResponseCache


def _recorded(cache: ResponseCache, batch_id: str, action: str) -> dict:
    """The cache's row of a batch that may still be stopped; a one-line UsageError otherwise."""
    row = BatchJobs(cache).row(batch_id)
    if row is None:
        raise UsageError(
            f"batch {batch_id} is not recorded in {cache.path}; `keypoint-instruct batch status --cache "
            f"{cache.path}` lists its batches"
        )
    if row["status"] == SUBMITTING:
        raise UsageError(
            f"{batch_id} is the record of a batch that a `batch submit` is creating, not a batch id: "
            "`batch status` shows the batch's own id once that submit has ended"
        )
    if row["collected_at"] is not None:
        raise UsageError(
            f"batch {batch_id} was collected on {row['collected_at'][:19]}; its requests without an answer are "
            f"free to send already: nothing to {action}"
        )
    return row


def _retrieve(client, batch_id: str):
    """The provider's batch, or None when it answers 404 (it does not know the batch)."""
    import openai

    try:
        return client.batches.retrieve(batch_id)
    except openai.NotFoundError:
        return None
    except openai.APIError as err:
        raise api_error(f"reading batch {batch_id}", err) from None


def cancel(client_for: Callable[[dict], Any], cache: ResponseCache, batch_id: str) -> str:
    """Ask the provider to cancel a recorded, uncollected batch; ``batch collect`` then ingests what it finished.

    ``client_for(row)``: the client of the batch's endpoint, asked for once the cache knows the batch.
    """
    row = _recorded(cache, batch_id, "cancel")
    forgotten = row["status"] == FORGOTTEN  # with --force, maybe still running
    client = client_for(row)
    remote = _retrieve(client, batch_id)
    if remote is None:
        raise UsageError(
            f"the provider at {endpoint_of(client)} does not know batch {batch_id} (HTTP 404): if the batch was "
            f"submitted there, `batch forget {batch_id}` frees its requests; if not, pass the --base-url it was "
            "submitted to"
        )
    if remote.status in TERMINAL:
        if not forgotten:
            BatchJobs(cache).update(batch_id, status=remote.status)
        raise UsageError(f"batch {batch_id} has ended already ({remote.status}); `batch collect` it")
    if remote.status != "cancelling":
        remote = call(f"cancelling batch {batch_id}", client.batches.cancel, batch_id)
    if forgotten:  # the status stays: its requests stay free to send
        return (
            f"batch {batch_id} is {remote.status} at the provider; it stays forgotten here (its requests are free to "
            "send): `batch collect` keeps the answers it finished once it has ended"
        )
    BatchJobs(cache).update(batch_id, status=remote.status)
    return (
        f"batch {batch_id} is {remote.status}; run `batch collect` when it has ended: the answers it finished are "
        "saved and its other requests become free to send again"
    )


def forget(client_for: Callable[[dict], Any], cache: ResponseCache, batch_id: str, *, force: bool = False) -> str:
    """Mark a batch the provider no longer knows as forgotten, freeing its unanswered keys (see the module doc).

    ``client_for(row)``: as for :func:`cancel`.
    """
    row = _recorded(cache, batch_id, "forget")
    if row["status"] == FORGOTTEN:
        return f"batch {batch_id} is forgotten already"
    client = client_for(row)
    remote = _retrieve(client, batch_id)
    if remote is not None and not force:
        if remote.status in TERMINAL:
            raise UsageError(
                f"batch {batch_id} has ended at the provider ({remote.status}): `batch collect` it to keep the "
                "answers it holds (they are paid for), or --force to forget it anyway"
            )
        raise UsageError(
            f"batch {batch_id} is still {remote.status} at the provider: `batch cancel` it and `batch collect` it "
            "once it has ended, or --force to forget it now (its requests may then be sent again while it still "
            "answers them: paid twice)"
        )
    freed = BatchJobs(cache).forget(batch_id)
    why = (
        f"the provider at {endpoint_of(client)} no longer knows it"
        if remote is None
        else f"forced; the provider reports it {remote.status}"
    )
    return (
        f"forgot batch {batch_id} ({why}): {count_of(freed, 'request')} without an answer may be sent again; "
        "answers already in the cache stay"
    )
