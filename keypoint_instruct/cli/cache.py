"""``cache stats|merge``: what a response cache holds; joining the caches of shards."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from keypoint_instruct.cli.selection import (
    open_cache,
)

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    cache = subparsers.add_parser("cache", help="inspect or merge response caches")
    cache_sub = cache.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    stats = cache_sub.add_parser("stats", help="counts by task, model and status; tokens; money spent")
    stats.add_argument("--cache", required=True, type=Path, help="the response cache to describe")
    stats.set_defaults(func=cmd_cache_stats)
    merge = cache_sub.add_parser("merge", help="join the caches of shards into one file")
    merge.add_argument("out", type=Path, help="cache to merge into (created if missing)")
    merge.add_argument("inputs", type=Path, nargs="+", help="caches to copy from")
    merge.set_defaults(func=cmd_cache_merge)


def cmd_cache_stats(args: argparse.Namespace) -> int:
    with open_cache(args.cache, create=False) as cache:
        stats = cache.stats()
    header = ("task", "model", "status", "responses", "prompt_tok", "cached_tok", "completion_tok", "usd")
    rows = [
        (
            r["task"],
            r["model"],
            r["status"],
            r["responses"],
            r["prompt_tokens"],
            r["cached_tokens"],
            r["completion_tokens"],
            f"{r['cost_usd']:.4f}",
        )
        for r in stats.rows
    ]
    rows.append(
        (
            "total",
            "",
            "",
            stats.responses,
            stats.prompt_tokens,
            stats.cached_tokens,
            stats.completion_tokens,
            f"{stats.cost_usd:.4f}",
        )
    )
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(len(header))]
    out = sys.stdout
    for row in (header, *rows):
        out.write("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")
    out.write(
        f"cached-token share of prompt tokens: {stats.cached_share:.1%}\n"
        f"failed attempts: {stats.failed_attempts}; keys failed and never answered: {stats.unanswered_keys}\n"
        f"money spent: ${stats.cost_usd:.4f}\n"
    )
    return 0


def cmd_cache_merge(args: argparse.Namespace) -> int:
    from keypoint_instruct.llm.store.cache import check_merge_inputs

    check_merge_inputs(args.out, args.inputs)  # a bad input fails before the output file is created
    created = not args.out.exists()
    try:
        with open_cache(args.out, create=True) as cache:
            counts = cache.merge(args.inputs)
    except BaseException:
        if created:  # never leave an empty cache behind; a cache that was there before stays
            for suffix in ("", "-wal", "-shm"):
                Path(f"{args.out}{suffix}").unlink(missing_ok=True)
        raise
    print(
        f"merged {len(args.inputs)} caches into {args.out}: {counts['added']} responses added, "
        f"{counts['already_present']} already present ({counts['conflicts']} with a different text: kept the "
        f"existing, except {counts['upgraded']} cut or filtered answers replaced by complete ones), "
        f"{counts['failures_added']} failure records added"
    )
    if counts["paid_twice_usd"] > 0:
        print(
            f"note: some keys were answered separately in more than one cache; ${counts['paid_twice_usd']:.4f} "
            "was paid twice (did shards overlap?)"
        )
    return 0
