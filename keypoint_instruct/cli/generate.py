"""``generate``: ask the teacher for every selected image and task; answers go to the response cache."""

from __future__ import annotations

import argparse
import logging
import sys

from keypoint_instruct.cli.argtypes import count, positive_float
from keypoint_instruct.cli.endpoint import quiet_http_logs
from keypoint_instruct.cli.selection import (
    add_claim_option,
    add_endpoint_options,
    add_selection_options,
    check_first_fits,
    not_to_send,
    open_cache,
    say_claimed_elsewhere,
    select_requests,
)
from keypoint_instruct.errors import UsageError
from keypoint_instruct.vocab import TEACHER_MODEL

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    gen = subparsers.add_parser(
        "generate",
        help="ask the teacher for every selected image and task; answers go to the response cache",
        description="Send one teacher request per selected image and task. Answers already in the cache are never "
        "sent again; each answer is saved the moment it arrives. Several runs may share one cache: a request another "
        "run is sending is skipped (rerun later for it). The key comes from OPENAI_API_KEY. Exit status 1 "
        "when some requests were given up after --max-attempts (run the same command again to retry only those) or "
        "the --max-cost cap was reached part-way (rerun with a higher cap); 2, with one line and nothing sent, when "
        "the endpoint refuses the key or does not know the model, or --max-cost cannot pay for even the first "
        "request to send. Ctrl-C stops cleanly: nothing "
        "new is sent, requests in flight may finish (up to 30 s), the summary is printed, exit status 130.",
    )
    add_selection_options(gen)
    add_endpoint_options(gen)
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
        help="spend cap of this run in dollars: a request is sent only while the money spent so far plus the worst "
        "case of every request in flight (all prompt tokens plus the output limit, at the model's price) stays "
        "within it; a request that does not fit waits for those in flight to end (their real cost replaces their "
        "worst case). When nothing is in flight and the next request still does not fit, nothing more is sent and "
        "the run exits with status 1: rerun with a higher cap (or none) to continue; nothing paid is lost or "
        "sent again. A cap below the worst case of the first request to send, or a model without a price in "
        "pricing.json: one line, nothing sent, exit 2",
    )
    add_claim_option(gen)
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    gen.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    quiet_http_logs(args)
    offline = args.teacher == "offline"
    if offline and args.base_url:
        raise UsageError("--base-url is for --teacher openai; the offline teacher needs no endpoint")
    requests = select_requests(args, offline=offline)
    if args.max_cost is not None:  # before anything is created or sent
        from keypoint_instruct.llm.online.budget import check_enforceable

        check_enforceable(requests, args.max_cost)
    if args.dry_run:
        return _dry_run(args, requests)

    from keypoint_instruct.llm.online.engine import EngineSettings, RunInterrupted, run

    settings = EngineSettings(
        concurrency=args.concurrency,
        rpm=args.rpm,
        tpm=args.tpm,
        max_attempts=args.max_attempts,
        progress=not args.no_progress,
        claim_lease_s=args.claim_lease,
        max_cost_usd=args.max_cost,
    )
    teacher = _make_teacher(args, offline)
    with open_cache(args.cache, create=True) as cache:
        if args.max_cost is not None:
            check_first_fits(cache, requests, args.max_cost)
        try:
            summary = run(teacher, requests, cache, settings)
        except RunInterrupted as stop:
            print(stop.summary.line())
            print(
                f"keypoint-instruct: interrupted; the {stop.summary.answered} answers of this run are saved in "
                f"{args.cache}: run the same command again to send only the rest",
                file=sys.stderr,
            )
            return 130
    if summary.capped and summary.attempts == 0:  # another run took the request checked above: the same error
        from keypoint_instruct.llm.online.budget import below_one_request

        raise below_one_request(args.max_cost, summary.refused_usd)
    print(summary.line())
    say_claimed_elsewhere(summary.claimed_elsewhere)
    if summary.capped:
        abandoned = (
            f" plus up to ${summary.possibly_billed_usd:.4f} for {summary.abandoned} attempt"
            f"{'s' if summary.abandoned != 1 else ''} abandoned without an answer (the provider may bill them),"
            if summary.abandoned
            else ""
        )
        print(
            f"keypoint-instruct: the --max-cost cap of ${args.max_cost:g} was reached: ${summary.cost_usd:.4f} "
            f"spent in this run,{abandoned} {summary.not_sent} requests left; every answer paid for is saved: rerun "
            "with a higher --max-cost (or none) to continue",
            file=sys.stderr,
        )
    return 0 if summary.gave_up == 0 and not summary.capped else 1


def _make_teacher(args: argparse.Namespace, offline: bool):
    if offline:
        from keypoint_instruct.teacher.offline import OfflineTeacher

        return OfflineTeacher()
    from keypoint_instruct.llm.providers.openai import OpenAIChat

    return OpenAIChat(args.model or TEACHER_MODEL, base_url=args.base_url, timeout_s=args.request_timeout)


def _dry_run(args: argparse.Namespace, requests) -> int:
    from keypoint_instruct.llm import pricing

    answered: set[str] = set()
    in_batch: set[str] = set()
    claimed: set[str] = set()
    if args.cache.exists():
        with open_cache(args.cache, create=False) as cache:
            answered, in_batch, claimed = not_to_send(cache, requests)
    skipped = answered | in_batch | claimed
    unique = {r.key: r for r in requests if r.key not in skipped}
    todo = list(unique.values())
    from keypoint_instruct.teacher.templates import expected_output_tokens

    estimate = pricing.estimate_requests(todo, expected_output_tokens)
    print(
        f"requests selected: {len(requests)}; already cached: {len(answered)}; waiting in a batch: {len(in_batch)}; "
        + (f"being sent by another run: {len(claimed)}; " if claimed else "")
        + f"to send: {len(todo)}"
    )
    print(pricing.format_estimate(estimate))
    return 0


# --------------------------------------------------------------------------- batch
