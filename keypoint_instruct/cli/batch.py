"""``batch submit|status|collect|cancel|forget``: the OpenAI Batch API into the same response cache."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keypoint_instruct.cli.argtypes import positive_float
from keypoint_instruct.cli.endpoint import quiet_http_logs
from keypoint_instruct.cli.exits import DONE, exit_status
from keypoint_instruct.cli.selection import (
    add_claim_option,
    add_endpoint_options,
    add_selection_options,
    record_prompts,
    say_claimed_elsewhere,
    select_requests,
)

SUBMIT_BASE_URL_HELP = (
    "Batch API endpoint, http(s)://host[:port]/v1 (a query string such as ?api-version=... is sent with every "
    "request); recorded with each batch, never the key; default api.openai.com"
)
RECORDED_BASE_URL_HELP = (
    "endpoint to ask about every batch, e.g. after the server moved; default: for each batch, the --base-url it was "
    "submitted with (api.openai.com when none was recorded)"
)
CACHE_HELP = "the response cache the batches were submitted from"


def register(subparsers) -> None:
    batch = subparsers.add_parser("batch", help="the OpenAI Batch API (half price, answers within 24 h)")
    batch_sub = batch.add_subparsers(dest="batch_command", metavar="ACTION", required=True)
    submit = batch_sub.add_parser(
        "submit",
        help="upload the requests not yet cached as batch files and create batches",
        description="Upload the selected requests without a cached answer as Batch API files and create batches, "
        "recorded in the cache. A submit killed meanwhile is settled by the next `batch submit`, `status` or "
        "`collect`, with one line on stderr (README.md, section Teacher).",
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
        help="cap in dollars on the worst case (prompt + output limit) at the Batch price: requests past it are left "
        "for a later submit, exit 1; a cap below the first request or a model without a price: exit 2, nothing sent",
    )
    submit.set_defaults(func=cmd_batch_submit)
    status = batch_sub.add_parser("status", help="show the state of the batches recorded in a cache")
    status.add_argument("--cache", required=True, type=Path, help=CACHE_HELP)
    add_endpoint_options(status, RECORDED_BASE_URL_HELP)
    status.set_defaults(func=cmd_batch_status)
    collect = batch_sub.add_parser("collect", help="download finished batches into the cache (exactly once)")
    collect.add_argument("--cache", required=True, type=Path, help=CACHE_HELP)
    add_endpoint_options(collect, RECORDED_BASE_URL_HELP)
    collect.set_defaults(func=cmd_batch_collect)
    cancel = batch_sub.add_parser(
        "cancel",
        help="ask the provider to stop a batch; `batch collect` then keeps what it finished and frees the rest",
        description="Ask the provider to cancel a batch recorded in the cache, then `batch collect` it. A batch id "
        "the cache does not record: one line, exit 2.",
    )
    _add_batch_id_options(cancel)
    cancel.set_defaults(func=cmd_batch_cancel)
    forget = batch_sub.add_parser(
        "forget",
        help="give up on a batch the provider no longer knows, so its requests can be sent again",
        description="Mark a batch the provider lost (404) forgotten: its requests without an answer may be sent "
        "again; answers in the cache stay. Refused while the provider still reports it (one line, exit 2) unless "
        "--force.",
    )
    _add_batch_id_options(forget)
    forget.add_argument(
        "--force",
        action="store_true",
        help="forget it although the provider still reports it (its requests may then be paid twice)",
    )
    forget.set_defaults(func=cmd_batch_forget)


def cmd_batch_submit(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct.llm.batch.commands import run_submit

    result = run_submit(
        select_requests(args),
        args.cache,
        base_url=args.base_url,
        timeout=args.request_timeout,
        out_dir=args.out_dir,
        claim_lease_s=args.claim_lease,
        max_cost_usd=args.max_cost,
    )
    record_prompts(args)  # what the submitted prompt versions stand for, kept in the cache
    _say_notes(result.notes)
    print(result)
    say_claimed_elsewhere(result.claimed_elsewhere)
    return exit_status(stopped_short=result.over_cap)


def _say_notes(notes: list[str]) -> None:
    """One stderr line per interrupted earlier submit that a batch command resolved (recorded or freed)."""
    for note in notes:
        print(f"keypoint-instruct: {note}", file=sys.stderr)


def _add_batch_id_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("batch_id", metavar="BATCH_ID", help="the batch, as `batch status` lists it")
    parser.add_argument("--cache", required=True, type=Path, help="the response cache the batch was submitted from")
    add_endpoint_options(parser, RECORDED_BASE_URL_HELP)


def cmd_batch_status(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct.llm.batch.commands import run_status

    report = run_status(args.cache, base_url=args.base_url, timeout=args.request_timeout)
    _say_notes(report.notes)
    print(report)
    return DONE


def cmd_batch_collect(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct.llm.batch.commands import run_collect

    result = run_collect(args.cache, base_url=args.base_url, timeout=args.request_timeout)
    _say_notes(result.notes)
    print(result)
    return DONE


def cmd_batch_cancel(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct.llm.batch.commands import run_cancel

    print(run_cancel(args.cache, args.batch_id, base_url=args.base_url, timeout=args.request_timeout))
    return DONE


def cmd_batch_forget(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    from keypoint_instruct.llm.batch.commands import run_forget

    endpoint = {"base_url": args.base_url, "timeout": args.request_timeout}
    print(run_forget(args.cache, args.batch_id, force=args.force, **endpoint))
    return DONE
