"""The exit statuses of every ``keypoint-instruct`` command, defined once.

0: the command did all it was asked. 1: it ran but stopped short, and the same command run again continues (requests
given up after their attempts, a ``--max-cost`` cap reached part-way, nothing that could be judged); what it did is
kept. 2: bad input (a usage error, a missing file, an endpoint that refuses the key or the model): one line on
stderr, nothing done. 130: interrupted with Ctrl-C after a clean stop.
"""

from __future__ import annotations

from keypoint_instruct.errors import KeypointInstructError

DONE = 0
STOPPED_SHORT = 1
BAD_INPUT = KeypointInstructError.exit_code  # 2, what argparse also exits with on a bad option
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


def exit_status(*, stopped_short: bool) -> int:
    """The status of a command that ran: :data:`STOPPED_SHORT` when it left work for a rerun, else :data:`DONE`."""
    return STOPPED_SHORT if stopped_short else DONE
