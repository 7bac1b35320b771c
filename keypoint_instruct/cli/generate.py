"""``generate``: ask the teacher for every selected image and task; answers go to the response cache.

Parses the options, asks :mod:`keypoint_instruct.teacher.plan` what to send and whether the cap allows it, runs the
engine, and prints the summary; the exit statuses are :mod:`keypoint_instruct.cli.exits`.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from keypoint_instruct.cli.argtypes import count, positive_float
from keypoint_instruct.cli.endpoint import quiet_http_logs
from keypoint_instruct.cli.exits import DONE, INTERRUPTED, exit_status
from keypoint_instruct.cli.selection import (
    add_claim_option,
    add_endpoint_options,
    add_selection_options,
    open_cache,
    record_prompts,
    say_claimed_elsewhere,
    select_requests,
    teacher_model_of,
)

if TYPE_CHECKING:
    from keypoint_instruct.teacher.plan import DryRun

DESCRIPTION = (
    "Send one teacher request per selected image and task; each answer is saved in the cache as it arrives and is "
    "never sent again, and a request another run on the cache is sending is skipped. The key comes from "
    "OPENAI_API_KEY. One request goes first; the rest follow once it is answered. Exit status 0: all answered; 1: "
    "some requests given up after --max-attempts (empty answers included; also when the endpoint answered none: "
    "down or still starting), or the --max-cost cap reached part-way (run the same command again to continue); 2, "
    "one line and nothing spent: bad input, a --base-url that cannot be an API root, an endpoint that refuses the "
    "key, the model or a parameter or has no quota left (found by the first request), or a --max-cost below the "
    "first request; 130: Ctrl-C (a clean stop, the summary printed)."
)


def register(subparsers) -> None:
    gen = subparsers.add_parser(
        "generate",
        help="ask the teacher for every selected image and task; answers go to the response cache",
        description=DESCRIPTION,
    )
    add_selection_options(gen)
    add_endpoint_options(gen)
    _add_run_options(gen)
    add_claim_option(gen)
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_generate)


def _add_run_options(gen: argparse.ArgumentParser) -> None:
    gen.add_argument(
        "--teacher",
        default="openai",
        choices=("openai", "offline"),
        help="openai: any OpenAI-compatible endpoint; offline: the deterministic pose-facts teacher (no key)",
    )
    gen.add_argument(
        "--concurrency", type=count(1), default=32, help="requests in flight at once (default: %(default)s)"
    )
    gen.add_argument(
        "--rpm",
        type=positive_float,
        default=None,
        help="requests per minute allowed (default: what the endpoint's x-ratelimit headers say, else none)",
    )
    gen.add_argument(
        "--tpm",
        type=positive_float,
        default=None,
        help="tokens per minute allowed, counting prompt + output limit (default: as for --rpm)",
    )
    gen.add_argument(
        "--max-attempts",
        type=count(1),
        default=5,
        help="attempts per request before giving up (default: %(default)s)",
    )
    gen.add_argument(
        "--dry-run", action="store_true", help="print requests still to send, estimated tokens and cost; send nothing"
    )
    gen.add_argument(
        "--max-cost",
        type=positive_float,
        default=None,
        metavar="USD",
        help="spend cap of this run in dollars: what was spent plus the worst case of the requests in flight stays "
        "within it. Reached part-way: exit 1 (rerun with a higher cap, or none, to continue). A cap below the first "
        "request to send, or a model without a price in pricing.json: one line, nothing sent, exit 2",
    )


def cmd_generate(args: argparse.Namespace) -> int:
    from keypoint_instruct.teacher import plan

    quiet_http_logs(args)
    offline = args.teacher == "offline"
    teacher_model_of(args, offline=offline)  # --model or --base-url with the offline teacher: one line
    requests = select_requests(args, offline=offline)
    if args.max_cost is not None:  # before anything is created or sent
        plan.check_cap(requests, args.max_cost)
    if args.dry_run:
        _print_dry_run(plan.dry_run(requests, args.cache))
        return DONE

    from keypoint_instruct.llm.online.engine import RunInterrupted, run

    teacher = _make_teacher(args, offline)  # no key: one line, before the cache is created
    record_prompts(args, offline=offline)  # what this run's prompt versions stand for, kept in the cache
    with open_cache(args.cache, create=True) as cache:
        if args.max_cost is not None:
            plan.check_first_fits(cache, requests, args.max_cost)
        try:
            summary = run(teacher, requests, cache, _engine_settings(args))
        except RunInterrupted as stop:
            print(stop.summary.line())
            print(
                f"keypoint-instruct: interrupted; the {stop.summary.answered} answers of this run are saved in "
                f"{args.cache}: run the same command again to send only the rest",
                file=sys.stderr,
            )
            return INTERRUPTED
    plan.check_something_fitted(summary, args.max_cost)
    print(summary.line())
    say_claimed_elsewhere(summary.claimed_elsewhere)
    if summary.capped:
        _say_cap_reached(summary, args.max_cost)
    return exit_status(stopped_short=summary.gave_up > 0 or summary.capped)


def _engine_settings(args: argparse.Namespace):
    from keypoint_instruct.llm.online.engine import EngineSettings

    return EngineSettings(
        concurrency=args.concurrency,
        rpm=args.rpm,
        tpm=args.tpm,
        max_attempts=args.max_attempts,
        progress=not args.no_progress,
        claim_lease_s=args.claim_lease,
        max_cost_usd=args.max_cost,
    )


def _make_teacher(args: argparse.Namespace, offline: bool):
    if offline:
        from keypoint_instruct.teacher.offline import OfflineTeacher

        return OfflineTeacher()
    from keypoint_instruct.llm.providers.openai import OpenAIChat
    from keypoint_instruct.teacher.plan import teacher_model

    return OpenAIChat(teacher_model(args.model), base_url=args.base_url, timeout_s=args.request_timeout)


def _say_cap_reached(summary, cap_usd: float) -> None:
    abandoned = (
        f" plus up to ${summary.possibly_billed_usd:.4f} for {summary.abandoned} attempt"
        f"{'s' if summary.abandoned != 1 else ''} abandoned without an answer (the provider may bill them),"
        if summary.abandoned
        else ""
    )
    print(
        f"keypoint-instruct: stopped at the --max-cost cap of ${cap_usd:g}: ${summary.cost_usd:.4f} spent in this "
        f"run,{abandoned} and the next request's worst case (its prompt plus its whole output limit) would not fit "
        f"under the cap; {summary.not_sent} requests left; every answer paid for is saved: rerun with a higher "
        "--max-cost (or none) to continue",
        file=sys.stderr,
    )


def _print_dry_run(dry: DryRun) -> None:
    from keypoint_instruct.llm import pricing

    skipped = dry.left_out
    print(
        f"requests selected: {dry.selected}; already cached: {len(skipped.answered)}; "
        f"waiting in a batch: {len(skipped.in_batch)}; "
        + (f"being sent by another run: {len(skipped.claimed)}; " if skipped.claimed else "")
        + f"to send: {len(dry.todo)}"
    )
    print(pricing.format_estimate(dry.estimate))
