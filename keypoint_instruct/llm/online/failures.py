"""What a failed attempt leads to (:func:`after_failure`: stop, retry, give up, or nothing) and :func:`retry_delay`.

Pure functions of the error, the attempt number and what the run knows (whether it is stopping on an error already,
whether the endpoint has answered anything yet); the run (:mod:`keypoint_instruct.llm.online.state`) carries out
the verdict. Read top to bottom, :func:`after_failure` is the table of transitions of one failed attempt.
"""

from __future__ import annotations

import random
from enum import Enum

from keypoint_instruct.errors import TeacherCallError, TeacherUnansweredError
from keypoint_instruct.llm.online.waits import Why
from keypoint_instruct.llm.request import Completion
from keypoint_instruct.llm.store.stats import empty_answer_reason


class Next(Enum):
    STOP = "stop"  # an error every request would hit (refused key, unknown model, exhausted quota): the run stops
    RETRY = "retry"  # send the request again after a delay
    QUIET = "quiet"  # the run is stopping on such an error already: nothing more to do or say for this request
    GIVE_UP = "give up"  # no answer after its last attempt: counted, its claim released, one warning line
    NOTHING_WORKS = "nothing works"  # given up before the endpoint answered anything: the run stops (exit 1)


def after_failure(
    err: TeacherCallError, attempt: int, *, max_attempts: int, stopping_on_error: bool, answered_any: bool
) -> Next:
    """What comes after attempt number ``attempt`` (1-based) of a request failed with ``err``."""
    if err.fatal and not stopping_on_error:
        return Next.STOP
    if err.retryable and attempt < max_attempts:
        return Next.RETRY
    if stopping_on_error:
        return Next.QUIET
    if err.retryable and not answered_any:  # unreachable or broken endpoint: do not repeat this for every request
        return Next.NOTHING_WORKS
    return Next.GIVE_UP


def retry_delay(
    attempt: int, err: TeacherCallError, *, base_s: float, max_s: float, jitter: random.Random
) -> tuple[Why, float]:
    """Why and how long to wait before attempt ``attempt + 1``: the Retry-After plus up to 10%, or jittered
    exponential backoff (``base_s * 2**(attempt-1)``, at most ``max_s``, times 0.5 to 1)."""
    if err.retry_after_s is not None:
        return Why.RETRY_AFTER, err.retry_after_s * (1.0 + 0.1 * jitter.random())
    backoff = min(max_s, base_s * 2 ** (attempt - 1))
    return Why.BACKOFF, backoff * (0.5 + 0.5 * jitter.random())


def nothing_works(attempt: int, err: TeacherCallError) -> TeacherUnansweredError:
    """The error a run stops with when a request exhausted its attempts before the endpoint answered anything.

    It ran and retried, and nothing says the input is wrong (a server still loading its model, an outage and a
    wrong port look alike from here): it exits 1, as requests given up do. The input errors that can be told
    (a malformed or incomplete ``--base-url``) are refused before anything is sent.
    """
    return TeacherUnansweredError(
        f"stopped: no request has been answered yet and one just failed {attempt} times (last: {err.reason}); "
        "check --base-url and that the server is up, then run the same command again"
    )


def empty_answer(completion: Completion, cost_usd: float) -> TeacherCallError:
    """A paid answer with no text that says it ended normally: a failed attempt to retry; its reason keeps what it
    cost (``cache stats`` adds it to the money spent)."""
    reason = empty_answer_reason(
        completion.finish_reason, completion.prompt_tokens, completion.completion_tokens, cost_usd
    )
    return TeacherCallError(reason, retryable=True, rate_limits=completion.rate_limits)
