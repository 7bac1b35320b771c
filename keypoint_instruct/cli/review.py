"""``review``: a static HTML folder to look at a pilot run's teacher answers before paying for the whole run."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from keypoint_instruct.cli.argtypes import count
from keypoint_instruct.cli.exits import DONE
from keypoint_instruct.vocab import ALL, TASK_CHOICES, TASKS

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    from keypoint_instruct.dataset.quality import REASONS
    from keypoint_instruct.review.page import DEFAULT_LIMIT, DEFAULT_PER_PAGE

    p = subparsers.add_parser(
        "review",
        help="write HTML pages showing each teacher answer and what `build` does with it (kept, or dropped and why)",
        description="Write a static folder (DIR/index.html + DIR/images/) that opens from file:// without a server "
        "and can be shared as a zip. Per image: the picture with its boxes and skeletons as `show` draws them, the "
        "context the teacher saw, and per task the teacher's answer with what `build` does with it: kept, or "
        "dropped with its reason code, the words that made it so highlighted; teacher model, prompt version, "
        "tokens and cost. The top of every page counts the drops per reason over the whole cache, and filters by "
        "task, kept/dropped and reason run in the page. "
        f"Limits: at most --limit images (default {DEFAULT_LIMIT}; more matching images are sampled per reason so "
        f"that rare reasons stay visible), --per-page images per HTML page (default {DEFAULT_PER_PAGE}; a page of "
        "50 images with GPT-4o-length answers is about 0.5 MB, each picture a separate JPEG of 40-110 KB for a COCO "
        "photograph).",
    )
    p.add_argument(
        "--coco-root", required=True, type=Path, metavar="DIR", help="COCO folder holding annotations/ and the images"
    )
    p.add_argument(
        "--split", required=True, metavar="SPLIT", help="COCO split the answers were generated for, e.g. val2017"
    )
    p.add_argument(
        "--cache", required=True, type=Path, metavar="FILE", help="response cache (SQLite) written by `generate`"
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder to write (new, empty, or an earlier review folder, which is replaced)",
    )
    p.add_argument(
        "--task",
        action="append",
        choices=TASK_CHOICES,
        metavar="TASK",
        help=f"review this task's answers only; repeat it for several ({', '.join(TASK_CHOICES)}; default: {ALL})",
    )
    p.add_argument(
        "--only", choices=("kept", "dropped"), help="show only images with a kept (or a dropped) answer or question"
    )
    p.add_argument(
        "--reason",
        choices=REASONS,
        metavar="CODE",
        help=f"show only images with a drop of this reason code ({', '.join(REASONS)})",
    )
    p.add_argument(
        "--limit",
        type=count(0),
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"show at most N images, sampled per reason when more match (default {DEFAULT_LIMIT}; 0: all of them, "
        "on as many pages as needed)",
    )
    p.add_argument(
        "--per-page",
        type=count(1),
        default=DEFAULT_PER_PAGE,
        metavar="N",
        help=f"images per HTML page (default {DEFAULT_PER_PAGE})",
    )
    p.add_argument(
        "--teacher-model",
        action="append",
        metavar="MODEL",
        help="only this teacher model's answers, as `build --teacher-model` (repeatable)",
    )
    p.add_argument(
        "--prompt-version",
        action="append",
        metavar="VERSION",
        help="only answers of this prompt version, as `build --prompt-version` (repeatable)",
    )
    p.set_defaults(func=run_review)  # fmt: skip


def run_review(args: argparse.Namespace) -> int:
    from keypoint_instruct.review.collect import Filters
    from keypoint_instruct.review.page import write_review

    tasks = TASKS if not args.task or ALL in args.task else tuple(t for t in TASKS if t in args.task)
    filters = Filters(
        tasks=tasks,
        only=args.only,
        reason=args.reason,
        teacher_models=tuple(args.teacher_model) if args.teacher_model else None,
        prompt_versions=tuple(args.prompt_version) if args.prompt_version else None,
    )
    result = write_review(
        args.coco_root,
        args.split,
        args.cache,
        args.out,
        filters=filters,
        limit=args.limit or None,
        per_page=args.per_page,
    )
    summary = result.summary
    dropped = {reason: n for reason, n in summary.by_reason().items() if n}
    print(
        f"read {sum(summary.responses.values()):,} responses about {len(summary.images):,} images; "
        f"rows kept {sum(summary.rows.values()):,}; dropped: "
        + (", ".join(f"{reason} {n:,}" for reason, n in dropped.items()) or "none")
    )
    sampled = f" (sampled per reason from {result.matching:,} matching)" if result.shown < result.matching else ""
    print(f"showing {result.shown:,} images{sampled} on {len(result.pages)} page(s)")
    print(f"wrote {result.pages[0]}")
    return DONE
