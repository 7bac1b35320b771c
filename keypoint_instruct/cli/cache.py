"""``cache stats|merge``: what a response cache holds; joining the caches of shards."""

from __future__ import annotations

import argparse
from pathlib import Path

from keypoint_instruct.cli.exits import DONE
from keypoint_instruct.cli.selection import open_cache


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
    print(stats)
    return DONE


def cmd_cache_merge(args: argparse.Namespace) -> int:
    from keypoint_instruct.llm.store.merge import merge_into

    print(merge_into(args.out, args.inputs))
    return DONE
