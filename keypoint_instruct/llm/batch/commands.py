"""The ``batch`` commands, one function each: open the cache, choose the endpoint, run the step, give what to print.

Each takes what the command line gives: the cache file, ``base_url`` (``--base-url``; None: api.openai.com for
``submit``, each batch's recorded endpoint for the others, :mod:`keypoint_instruct.llm.batch.endpoints`) and the
request ``timeout`` in seconds::

    run_submit(requests, cache_path, *, base_url, timeout, out_dir=None, claim_lease_s=120, max_cost_usd=None)
        -> SubmitResult                         # out_dir None: <cache stem>_batches beside the cache
    run_status(cache_path, *, base_url, timeout) -> StatusReport
    run_collect(cache_path, *, base_url, timeout) -> CollectResult
    run_cancel(cache_path, batch_id, *, base_url, timeout) -> str
    run_forget(cache_path, batch_id, *, base_url, timeout, force=False) -> str

``run_submit`` creates a missing cache; the others want the cache ``batch submit`` wrote (a missing one is an
:class:`~keypoint_instruct.errors.InputNotFoundError` that names that command).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from keypoint_instruct.errors import InputNotFoundError
from keypoint_instruct.llm.batch import cancel, collect, submit
from keypoint_instruct.llm.batch.endpoints import RecordedEndpoints, batch_client
from keypoint_instruct.llm.online.budget import check_enforceable
from keypoint_instruct.llm.request import ChatRequest
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.llm.store.claims import DEFAULT_LEASE_S


def run_submit(
    requests: Sequence[ChatRequest],
    cache_path: Path,
    *,
    base_url: str | None,
    timeout: float,
    out_dir: Path | None = None,
    claim_lease_s: float = DEFAULT_LEASE_S,
    max_cost_usd: float | None = None,
) -> submit.SubmitResult:
    """``batch submit``: :func:`keypoint_instruct.llm.batch.submit.submit` into ``cache_path`` (created if missing)."""
    if max_cost_usd is not None:  # before the cache is created
        check_enforceable(requests, max_cost_usd)
    with ResponseCache(cache_path, create=True) as cache:
        return submit.submit(
            batch_client(base_url, timeout),
            requests,
            cache,
            out_dir or cache_path.parent / f"{cache_path.stem}_batches",
            claim_lease_s=claim_lease_s,
            max_cost_usd=max_cost_usd,
            base_url=base_url,
        )


def open_recorded(cache_path: Path) -> ResponseCache:
    """The cache ``batch submit`` recorded its batches in; a missing one says which command writes it."""
    if not cache_path.is_file():
        raise InputNotFoundError(
            f"response cache {cache_path} does not exist; run `keypoint-instruct batch submit` first "
            "or check the --cache path"
        )
    return ResponseCache(cache_path, create=False)


def run_status(cache_path: Path, *, base_url: str | None, timeout: float) -> collect.StatusReport:
    """``batch status``: every recorded batch, the uncollected ones asked at their endpoint."""
    with open_recorded(cache_path) as cache:
        endpoints = RecordedEndpoints(cache, base_url, timeout)
        return collect.status(endpoints.default(), cache, client_for=endpoints.client_for)


def run_collect(cache_path: Path, *, base_url: str | None, timeout: float) -> collect.CollectResult:
    """``batch collect``: every finished, uncollected batch into the cache, exactly once."""
    with open_recorded(cache_path) as cache:
        endpoints = RecordedEndpoints(cache, base_url, timeout)
        return collect.collect(endpoints.default(), cache, client_for=endpoints.client_for)


def run_cancel(cache_path: Path, batch_id: str, *, base_url: str | None, timeout: float) -> str:
    """``batch cancel``: one line saying what happened."""
    with open_recorded(cache_path) as cache:
        return cancel.cancel(RecordedEndpoints(cache, base_url, timeout).client_for, cache, batch_id)


def run_forget(cache_path: Path, batch_id: str, *, base_url: str | None, timeout: float, force: bool = False) -> str:
    """``batch forget``: one line saying what happened."""
    with open_recorded(cache_path) as cache:
        return cancel.forget(RecordedEndpoints(cache, base_url, timeout).client_for, cache, batch_id, force=force)
