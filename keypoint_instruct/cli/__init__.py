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


VERBOSE_HELP = (
    "log this tool's debug messages to stderr (why each wait and retry happened) and the HTTP client's one line "
    "per request; other libraries stay at INFO"
)


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
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"keypoint_instruct.cli.{name}").register(subparsers)
    _verbose_everywhere(parser)
    return parser


def _verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """``-v`` also after the subcommand (``generate ... -v``); unset there, it leaves the top-level value alone."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                if "--verbose" not in sub._option_string_actions:
                    sub.add_argument(
                        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
                    )
                _verbose_everywhere(sub)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # -v: only our DEBUG lines (httpcore and the OpenAI client would add ~15 per request)
    logging.getLogger("keypoint_instruct").setLevel(logging.DEBUG if args.verbose else logging.NOTSET)
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
