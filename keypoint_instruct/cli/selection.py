"""The options `generate` and `batch submit` share, and their calls into :mod:`keypoint_instruct.teacher.plan`.

The options choose the requests (``--task``, ``--coco-root``, ``--split``, ``--model``, ``--context``, ``--limit``,
``--shard``), the cache, the endpoint and the claim lease; the functions turn parsed arguments into a
:class:`~keypoint_instruct.teacher.plan.Selection` and pass the rest to the plan, where the rules live.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from keypoint_instruct.cli.argtypes import count, positive_float
from keypoint_instruct.cli.endpoint import TEACHER_BASE_URL_HELP, add_base_url_option
from keypoint_instruct.cli.sampling import add_sampling_options
from keypoint_instruct.errors import UsageError
from keypoint_instruct.vocab import CONTEXT_MODES, DEFAULT_CONTEXT_MODE, TASK_CHOICES, TEACHER_MODEL

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
        default=DEFAULT_CONTEXT_MODE,
        choices=CONTEXT_MODES,
        help="context format: the paper's, or with pose facts (default: %(default)s)",
    )
    parser.add_argument("--limit", type=count(1), default=None, help="use only the first N selected images")
    parser.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="I/N",
        help="take every N-th selected image, starting at I (after --limit: `--limit 100 --shard 0/4` is 25 images)",
    )
    add_sampling_options(parser)


def add_claim_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--claim-lease",
        type=positive_float,
        default=120.0,
        metavar="SECONDS",
        help="how long this run's claim on a request it sends lasts unless renewed; other runs on the cache skip "
        "claimed requests. One cache file per machine: shard across machines, then `cache merge` "
        "(default: %(default)s)",
    )


def add_endpoint_options(parser: argparse.ArgumentParser, help_text: str = TEACHER_BASE_URL_HELP) -> None:
    """--base-url (with ``help_text``) and --request-timeout."""
    add_base_url_option(parser, help_text)
    parser.add_argument(
        "--request-timeout",
        type=positive_float,
        default=600.0,
        help="seconds before one request is abandoned and retried; the provider may still bill it, so keep this "
        "above the longest answer time (default: %(default)s)",
    )


# --------------------------------------------------------------------------- calls into the plan


def teacher_model_of(args: argparse.Namespace, *, offline: bool) -> str:
    """The model a teacher run asks (``generate``, ``bench build``). The offline teacher answers as itself and needs
    no endpoint: with it, a ``--model`` other than its own or a ``--base-url`` is a usage error, before any work."""
    from keypoint_instruct.teacher.plan import teacher_model

    if offline and getattr(args, "base_url", None):
        raise UsageError("--base-url is for --teacher openai; the offline teacher needs no endpoint")
    return teacher_model(args.model, offline=offline)


def selection_of(args: argparse.Namespace, *, offline: bool = False):
    """The :class:`~keypoint_instruct.teacher.plan.Selection` the selection options name."""
    from keypoint_instruct.cli.sampling import generation_settings
    from keypoint_instruct.teacher.plan import Selection, teacher_model

    model = teacher_model(args.model, offline=offline)
    return Selection(
        coco_root=args.coco_root,
        split=args.split,
        task=args.task,
        context_mode=args.context,
        model=model,
        limit=args.limit,
        shard=args.shard,
        settings=generation_settings(args, model),
    )


def select_requests(args: argparse.Namespace, *, offline: bool = False):
    """The requests chosen by the selection options, in image-id order, task by task."""
    from keypoint_instruct.teacher import plan

    return plan.select_requests(selection_of(args, offline=offline))


def open_cache(path: Path, *, create: bool):
    from keypoint_instruct.teacher import plan

    return plan.open_cache(path, create=create)


def record_prompts(args: argparse.Namespace, *, offline: bool = False) -> None:
    """Record what the selection's prompt versions stand for in the cache (created if missing) before sending."""
    from keypoint_instruct.teacher import plan

    with plan.open_cache(args.cache, create=True) as cache:
        plan.record_prompts(cache, selection_of(args, offline=offline))


def not_to_send(cache, requests) -> tuple[set[str], set[str], set[str]]:
    """Keys a run would leave out now (reads only): answered, waiting in a batch, being sent by another run."""
    from keypoint_instruct.teacher import plan

    return plan.left_out(cache, requests)


def check_first_fits(cache, requests, cap_usd: float) -> None:
    """A cap below the worst case of the first request the run would send is a usage error: nothing is sent."""
    from keypoint_instruct.teacher import plan

    plan.check_first_fits(cache, requests, cap_usd)


# --------------------------------------------------------------------------- output


def say_claimed_elsewhere(n: int) -> None:
    if n:
        print(
            f"keypoint-instruct: {n} request{'s are' if n != 1 else ' is'} being sent by another run on this cache; "
            "rerun later for them",
            file=sys.stderr,
        )
