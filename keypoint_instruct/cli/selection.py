"""What `generate` and `batch submit` share: the options that select requests, the cache, the checks before sending."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

from keypoint_instruct.cli.argtypes import count, positive_float
from keypoint_instruct.cli.endpoint import TEACHER_BASE_URL_HELP, add_base_url_option
from keypoint_instruct.errors import UsageError
from keypoint_instruct.vocab import CONTEXT_MODES, OFFLINE_TEACHER_MODEL, TASK_CHOICES, TASKS, TEACHER_MODEL

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- options


def _shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or int(match[2]) < 1 or int(match[1]) >= int(match[2]):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N (e.g. 0/4), got {text!r}")
    return int(match[1]), int(match[2])


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    """Options that choose which requests a command covers (shared by generate and batch submit)."""
    parser.add_argument("--task", required=True, choices=TASK_CHOICES, help="task to generate, or all three")
    parser.add_argument("--coco-root", required=True, type=Path, help="COCO folder holding annotations/")
    parser.add_argument("--split", required=True, help="COCO split, e.g. train2017 or val2014")
    parser.add_argument("--cache", required=True, type=Path, help="SQLite response cache (created if missing)")
    parser.add_argument("--model", default=None, help=f"teacher model (default: the pinned {TEACHER_MODEL})")
    parser.add_argument(
        "--context",
        default="paper",
        choices=CONTEXT_MODES,
        help="context format: the paper's, or with pose facts (default: %(default)s)",
    )
    parser.add_argument("--limit", type=count(1), default=None, help="use only the first N selected images")
    parser.add_argument(
        "--shard", type=_shard, default=None, metavar="I/N", help="take every N-th selected image, starting at I"
    )


def add_claim_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--claim-lease",
        type=positive_float,
        default=120.0,
        metavar="SECONDS",
        help="how long this run's claim on a request it is sending lasts unless renewed (renewed every quarter of "
        "it while the run is alive); another run on the same cache skips claimed requests. A run killed outright "
        "in a container with its own process ids holds its requests this long; on this machine its claims are "
        "taken over at once. Runs on different machines must not share one cache file (SQLite needs one host): "
        "give each a --shard and its own cache, then `cache merge` (default: %(default)s)",
    )


def add_endpoint_options(parser: argparse.ArgumentParser, help_text: str = TEACHER_BASE_URL_HELP) -> None:
    """--base-url (with ``help_text``) and --request-timeout."""
    add_base_url_option(parser, help_text)
    parser.add_argument(
        "--request-timeout",
        type=positive_float,
        default=600.0,
        help="seconds before one request is abandoned and retried; the provider may still bill an abandoned "
        "request, so keep it well above the longest answer time (default: %(default)s)",
    )


# --------------------------------------------------------------------------- selection


def select_requests(args: argparse.Namespace, *, offline: bool = False):
    """The requests chosen by the selection options, in image-id order, task by task."""
    from keypoint_instruct.coco.annotations import load_scenes
    from keypoint_instruct.coco.context import select_scenes
    from keypoint_instruct.llm.request import GenerationSettings
    from keypoint_instruct.teacher.requests import build_requests

    if offline and args.model and args.model != OFFLINE_TEACHER_MODEL:
        raise UsageError(f"--teacher offline answers as model {OFFLINE_TEACHER_MODEL!r}; drop --model {args.model}")
    model = OFFLINE_TEACHER_MODEL if offline else (args.model or TEACHER_MODEL)
    settings = GenerationSettings(model=model)
    scenes = select_scenes(load_scenes(args.coco_root, args.split).values(), limit=args.limit)
    if args.shard:
        index, count = args.shard
        scenes = scenes[index::count]
    tasks = TASKS if args.task == "all" else (args.task,)
    requests = []
    for task in tasks:
        requests.extend(build_requests(scenes, task, settings, args.context, args.split))
    log.info("%d images selected, %d requests", len(scenes), len(requests))
    return requests


def open_cache(path: Path, *, create: bool):
    from keypoint_instruct.llm.store.cache import ResponseCache

    return ResponseCache(path, create=create)


# --------------------------------------------------------------------------- generate


def say_claimed_elsewhere(n: int) -> None:
    if n:
        print(
            f"keypoint-instruct: {n} request{'s are' if n != 1 else ' is'} being sent by another run on this cache; "
            "rerun later for them",
            file=sys.stderr,
        )


def not_to_send(cache, requests) -> tuple[set[str], set[str], set[str]]:
    """Keys a run would leave out now (reads only): answered, waiting in a batch, being sent by another run."""
    from keypoint_instruct.llm.store.batches import BatchJobs
    from keypoint_instruct.llm.store.claims import Claims

    keys = {r.key for r in requests}
    answered = cache.answered(keys)
    in_batch = BatchJobs(cache).pending_among(keys - answered)
    claimed: set[str] = set()
    if cache.schema_version >= 2:  # an older read-only cache has no claims
        claimed = Claims(cache).held_elsewhere(keys - answered - in_batch)
    return answered, in_batch, claimed


def check_first_fits(cache, requests, cap_usd: float) -> None:
    """A cap below the worst case of the first request the run would send is a usage error: nothing is sent."""
    from keypoint_instruct.llm.online.budget import below_one_request, worst_case_usd

    skipped = set().union(*not_to_send(cache, requests))
    first = next((r for r in requests if r.key not in skipped), None)
    if first is not None and worst_case_usd(first) > cap_usd:
        raise below_one_request(cap_usd, worst_case_usd(first))
