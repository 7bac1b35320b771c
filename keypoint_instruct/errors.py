"""Every domain error of keypoint-instruct, in one place.

Each exception also subclasses the standard type it resembles, so callers that catch ``ValueError`` or
``FileNotFoundError`` keep working. Messages name the offending file, id or value and say what was expected.
The CLI turns any :class:`KeypointInstructError` into one line on stderr and its ``exit_code``: 2 (bad input, or a
refusal found before anything was spent), except where a class says 1 (the command ran and stopped short).
"""

from __future__ import annotations


class KeypointInstructError(Exception):
    """Base class of every error the CLI reports as one line, with exit code 2 unless the class says otherwise."""

    exit_code = 2


class UsageError(KeypointInstructError, ValueError):
    """A command-line value or setting that is out of range or inconsistent."""


class InputNotFoundError(KeypointInstructError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class CocoFormatError(KeypointInstructError, ValueError):
    """An annotation file that is unreadable, not JSON, or not in COCO's schema."""


class UnknownImageError(KeypointInstructError, KeyError):
    """An image id that is not in the loaded split."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class PromptError(KeypointInstructError, ValueError):
    """A prompt template that is missing or malformed."""


class TeacherError(KeypointInstructError, RuntimeError):
    """The teacher endpoint cannot be used (no key, no URL, or a permanent API error)."""


class TeacherCallError(TeacherError):
    """One teacher call failed. The engine retries it when ``retryable``; ``fatal`` stops the whole run."""

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        fatal: bool = False,
        retry_after_s: float | None = None,
        rate_limits: object | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.fatal = fatal
        self.retry_after_s = retry_after_s
        self.rate_limits = rate_limits


class TeacherUnansweredError(TeacherError):
    """A run stopped because a request exhausted its attempts before the endpoint answered anything (a server down,
    unreachable or failing every request). It ran and retried: exit code 1, like requests given up; run it again
    once the endpoint works. Definite refusals (key, model, parameter, quota) stay :class:`TeacherError`, exit 2."""

    exit_code = 1


class CacheError(KeypointInstructError, RuntimeError):
    """The response cache is missing, corrupt or inconsistent."""


class DatasetBuildError(KeypointInstructError, ValueError):
    """The dataset cannot be built, written or read as asked."""


class HubError(KeypointInstructError, RuntimeError):
    """Publishing to the Hugging Face Hub was refused or failed."""


class TrainingConfigError(KeypointInstructError, ValueError):
    """A training recipe, dataset or COCO root that cannot be used for fine-tuning."""


class BenchmarkError(KeypointInstructError, ValueError):
    """Benchmark inputs (questions, answers, judge settings) that do not fit together."""


class BenchmarkShortError(BenchmarkError):
    """``bench build`` asked the teacher (and may have paid) and got too few usable answers: it ran and stopped
    short, exit code 1. A rerun asks again for requests that got no answer; answers it could not use stay."""

    exit_code = 1


class BenchmarkUnansweredError(BenchmarkError):
    """``bench answer --backend openai``: the endpoint gave no usable answer to a question (down, unreachable, failing
    after the client's retries, a reply that is not an answer): it ran and stopped short, exit code 1, as ``generate``
    exits when its endpoint never answers. The answers it got are kept; the same command run again asks only the
    rest. Definite refusals (key, model, a parameter) stay :class:`BenchmarkError`, exit 2."""

    exit_code = 1
