"""The exit statuses of every ``keypoint-instruct`` command, defined once (the README and ``--help`` say the same).

- 0 (:data:`DONE`): the command did all it was asked.
- 1 (:data:`STOPPED_SHORT`): it ran and stopped short, with nothing known to be wrong in its input; what it did is
  kept and the same command run again continues. Requests given up after ``--max-attempts`` (also when the endpoint
  answered none of them: a server down or still starting, an outage), a ``--max-cost`` cap reached part-way, too
  few usable teacher answers for ``bench build`` after asking, nothing that could be judged.
- 2 (:data:`BAD_INPUT`): bad input, or a refusal found before anything was spent: one line on stderr. A usage
  error, a missing or wrong file, a ``--base-url`` that cannot be an API root, an endpoint that refuses the key, the
  model, a parameter or has no quota left (the run stops at its first answer, after one request), a ``--max-cost``
  below the first request.
- 130 (:data:`INTERRUPTED`): Ctrl-C after a clean stop.

A command that returns its status uses :func:`exit_status`; an error that ends a command carries its status in its
``exit_code`` (:mod:`keypoint_instruct.errors`): 2, or 1 for ``TeacherUnansweredError`` (no answer at all),
``BenchmarkShortError`` (too few usable answers for ``bench build``) and ``BenchmarkUnansweredError`` (``bench
answer``'s endpoint gave no usable answer).
"""

from __future__ import annotations

from keypoint_instruct.errors import KeypointInstructError

DONE = 0
STOPPED_SHORT = 1
BAD_INPUT = KeypointInstructError.exit_code  # 2, what argparse also exits with on a bad option
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it

# The policy in one line, for the top-level --help.
EXIT_HELP = (
    f"exit status: {DONE} done; {STOPPED_SHORT} ran but stopped short, nothing wrong with the input (requests given "
    f"up after their attempts, a cost cap reached, too few usable answers): run the same command again to continue; "
    f"{BAD_INPUT} bad input, or a refusal found before anything was spent (one line on stderr); {INTERRUPTED} "
    "interrupted"
)


def exit_status(*, stopped_short: bool) -> int:
    """The status of a command that ran: :data:`STOPPED_SHORT` when it left work for a rerun, else :data:`DONE`."""
    return STOPPED_SHORT if stopped_short else DONE
