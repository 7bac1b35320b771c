"""The ``keypoint-instruct`` command line.

Each stage of the pipeline registers its subcommands from its own module in this package; this module only
builds the parser, dispatches, and turns domain errors into one line on stderr with their exit code (2, or 1 for a
run that stopped short). The exit codes of every command are in :mod:`keypoint_instruct.cli.exits`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from keypoint_instruct import __version__
from keypoint_instruct.cli.exits import BAD_INPUT, DONE, EXIT_HELP, INTERRUPTED
from keypoint_instruct.errors import KeypointInstructError

# The data path, top to bottom: each module defines ``register(subparsers)``.
COMMAND_MODULES = ("contexts", "generate", "batch", "cache", "dataset", "review", "bench")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(BAD_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="keypoint-instruct",
        description="Turn COCO keypoint annotations into instruction-following data about human poses and "
        "actions, publish it as a versioned dataset, and benchmark models on HPAUB.",
        epilog=EXIT_HELP,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"keypoint_instruct.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return BAD_INPUT
    try:
        return int(args.func(args) or DONE)
    except KeypointInstructError as err:
        print(f"keypoint-instruct: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("keypoint-instruct: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # a reader such as `head` stopped early
        return DONE


if __name__ == "__main__":
    sys.exit(main())
