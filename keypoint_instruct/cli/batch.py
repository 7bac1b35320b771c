"""``batch submit|status|collect|cancel|forget``: the OpenAI Batch API into the same response cache."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from keypoint_instruct.cli.argtypes import positive_float
from keypoint_instruct.cli.endpoint import quiet_http_logs
from keypoint_instruct.cli.selection import (
    add_claim_option,
    add_endpoint_options,
    add_selection_options,
    open_cache,
    say_claimed_elsewhere,
    select_requests,
)

log = logging.getLogger(__name__)

SUBMIT_BASE_URL_HELP = (
    "OpenAI-compatible endpoint with the Batch API, http(s)://host[:port]/v1; a query string such as "
    "?api-version=... is sent with every request; recorded with each batch (never the key) for `batch status`, "
    "`collect`, `cancel` and `forget`; default api.openai.com"
)
RECORDED_BASE_URL_HELP = (
    "the endpoint to ask about the batches; default: for each batch, the --base-url it was submitted with "
    "(recorded in the cache, never the key; api.openai.com when it had none, and for batches submitted before "
    "the cache recorded it). Given, it is asked for every batch, e.g. when the server has moved"
)


def register(subparsers) -> None:
    batch = subparsers.add_parser("batch", help="the OpenAI Batch API (half price, answers within 24 h)")
    batch_sub = batch.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    submit = batch_sub.add_parser(
        "submit",
        help="upload the requests not yet cached as batch files and create batches",
        description="Write the selected requests that have no cached answer as Batch API JSONL (custom_id = cache "
        "key), upload them and create batches; the batch ids are recorded in the cache. A request's key is recorded "
        "before its batch is created, so a submit killed meanwhile leaves it pending (never sent by `generate`); the "
        "next `batch submit`, `status` or `collect` asks the provider which batch it made and records it, or frees "
        "the requests, with one line on stderr.",
    )
    add_selection_options(submit)
    add_endpoint_options(submit, SUBMIT_BASE_URL_HELP)
    add_claim_option(submit)
    submit.add_argument(
        "--out-dir", type=Path, default=None, help="where to keep the JSONL files (default: beside the cache)"
    )
    submit.add_argument(
        "--max-cost",
        type=positive_float,
        default=None,
        metavar="USD",
        help="the most this submit may commit, in dollars at the Batch price: requests are taken in selection "
        "order while the worst case of those taken (all prompt tokens plus the output limit) stays within it; "
        "the rest are left for a later submit and the exit status is 1. The bill is what the answers really use, "
        "usually well under the worst case. A cap below the worst case of the first request to submit, or a model "
        "without a price in pricing.json: one line, nothing submitted, exit 2",
    )
    submit.set_defaults(func=cmd_batch_submit)
    status = batch_sub.add_parser("status", help="show the state of the batches recorded in a cache")
    status.add_argument("--cache", required=True, type=Path, help="the response cache the batches were submitted from")
    add_endpoint_options(status, RECORDED_BASE_URL_HELP)
    status.set_defaults(func=cmd_batch_status)
    collect = batch_sub.add_parser("collect", help="download finished batches into the cache (exactly once)")
    collect.add_argument(
        "--cache", required=True, type=Path, help="the response cache the batches were submitted from"
    )
    add_endpoint_options(collect, RECORDED_BASE_URL_HELP)
    collect.set_defaults(func=cmd_batch_collect)
    cancel = batch_sub.add_parser(
        "cancel",
        help="ask the provider to stop a batch; `batch collect` then keeps what it finished and frees the rest",
        description="Ask the provider to cancel a batch recorded in the cache. It ends as cancelled with the answers "
        "it finished; run `batch collect` then: they are saved, and the requests it did not answer become free to "
        "send again with `generate` or `batch submit`. A batch id the cache does not record: one line, exit 2.",
    )
    _add_batch_id_options(cancel)
    cancel.set_defaults(func=cmd_batch_cancel)
    forget = batch_sub.add_parser(
        "forget",
        help="give up on a batch the provider no longer knows, so its requests can be sent again",
        description="For a batch the provider has lost (it answers 404): mark it forgotten in the cache, so its "
        "requests without an answer are no longer pending and `generate` or `batch submit` may send them. Answers "
        "already in the cache stay, and `batch status` still lists the batch, as forgotten. Refused (one line, exit "
        "2) while the provider still reports the batch, running or ended: `batch cancel` or `batch collect` it, or "
        "pass --force.",
    )
    _add_batch_id_options(forget)
    forget.add_argument(
        "--force",
        action="store_true",
        help="forget it although the provider still reports it: its requests may be sent again while it still "
        "answers them (paid twice); `batch collect` keeps the answers it delivers once it has ended",
    )
    forget.set_defaults(func=cmd_batch_forget)


def _batch_client(args: argparse.Namespace, base_url: str | None = None):
    """The client of ``base_url`` (default: ``--base-url``)."""
    import openai

    from keypoint_instruct.llm.providers.openai import client_options, resolve_api_key

    url = base_url or args.base_url
    key = resolve_api_key(url, offline_hint=False)
    options = client_options(url, key)
    options.pop("default_headers", None)  # only the query part: Azure's batch key handling is not supported here
    return openai.OpenAI(api_key=key, timeout=args.request_timeout, **options)


class _RecordedEndpoints:
    """The batch commands after submit: ``--base-url`` when given, else each batch's recorded one; a client per URL."""

    def __init__(self, args: argparse.Namespace, cache) -> None:
        from keypoint_instruct.llm.store.batches import BatchJobs

        self.args = args
        self.jobs = BatchJobs(cache)
        self._clients: dict[str | None, object] = {}

    def url(self, row: dict | None) -> str | None:
        if self.args.base_url is not None or row is None:
            return self.args.base_url
        return row["base_url"]

    def client_for(self, row: dict | None):
        url = self.url(row)
        if url not in self._clients:
            self._clients[url] = _batch_client(self.args, url)
        return self._clients[url]

    def default(self):
        """For what concerns no one batch (an interrupted submit's lookups): the newest batch's endpoint."""
        rows = self.jobs.rows()
        return self.client_for(rows[-1] if rows else None)


def cmd_batch_submit(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct.llm.batch import client as batch

    requests = select_requests(args)
    if args.max_cost is not None:  # before the cache is created
        from keypoint_instruct.llm.online.budget import check_enforceable

        check_enforceable(requests, args.max_cost)
    with open_cache(args.cache, create=True) as cache:
        out_dir = args.out_dir or args.cache.parent / f"{args.cache.stem}_batches"
        result = batch.submit(
            _batch_client(args),
            requests,
            cache,
            out_dir,
            claim_lease_s=args.claim_lease,
            max_cost_usd=args.max_cost,
            base_url=args.base_url,
        )
    _say_notes(result.notes)
    print(result)
    say_claimed_elsewhere(result.claimed_elsewhere)
    return 1 if result.over_cap else 0


def _say_notes(notes: list[str]) -> None:
    """One stderr line per interrupted earlier submit that a batch command resolved (recorded or freed)."""
    for note in notes:
        print(f"keypoint-instruct: {note}", file=sys.stderr)


def _add_batch_id_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("batch_id", metavar="BATCH_ID", help="the batch, as `batch status` lists it")
    parser.add_argument("--cache", required=True, type=Path, help="the response cache the batch was submitted from")
    add_endpoint_options(parser, RECORDED_BASE_URL_HELP)


def _open_batch_cache(path: Path):
    """The cache ``batch submit`` recorded its batches in; a missing one says which command writes it."""
    if not path.is_file():
        from keypoint_instruct.errors import InputNotFoundError

        raise InputNotFoundError(
            f"response cache {path} does not exist; run `keypoint-instruct batch submit` first "
            "or check the --cache path"
        )
    return open_cache(path, create=False)


def cmd_batch_status(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct.llm.batch import client as batch

    with _open_batch_cache(args.cache) as cache:
        endpoints = _RecordedEndpoints(args, cache)
        report = batch.status(endpoints.default(), cache, client_for=endpoints.client_for)
    _say_notes(report.notes)
    print(report)
    return 0


def cmd_batch_collect(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct.llm.batch import client as batch

    with _open_batch_cache(args.cache) as cache:
        endpoints = _RecordedEndpoints(args, cache)
        result = batch.collect(endpoints.default(), cache, client_for=endpoints.client_for)
    _say_notes(result.notes)
    print(result)
    return 0


def cmd_batch_cancel(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct.llm.batch import cancel as batch_cancel

    with _open_batch_cache(args.cache) as cache:
        print(batch_cancel.cancel(_RecordedEndpoints(args, cache).client_for, cache, args.batch_id))
    return 0


def cmd_batch_forget(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct.llm.batch import cancel as batch_cancel

    with _open_batch_cache(args.cache) as cache:
        client_for = _RecordedEndpoints(args, cache).client_for
        print(batch_cancel.forget(client_for, cache, args.batch_id, force=args.force))
    return 0


# --------------------------------------------------------------------------- cache
