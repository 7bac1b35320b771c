"""What an engine run tells back: :class:`RunSummary` (counts, tokens, money, time) and its one-line form.

A run fills one summary as it goes; :class:`RunInterrupted` carries it out of a cancelled (Ctrl-C) run so the
caller can still print what was answered and saved.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class RunSummary:
    requested: int = 0  # distinct keys asked for
    already_cached: int = 0  # answered before (never sent)
    in_batch: int = 0  # waiting in a submitted, uncollected Batch API job (never sent twice)
    claimed_elsewhere: int = 0  # being sent by another live run on the same cache file (skipped)
    taken_over: int = 0  # claims left by runs that ended without releasing them (kill -9), taken over and sent
    answered: int = 0  # answered in this run
    finish_reasons: Counter = field(default_factory=Counter)
    gave_up: int = 0  # keys without an answer after their last attempt
    attempts: int = 0
    failed_attempts: int = 0
    failure_reasons: Counter = field(default_factory=Counter)
    empty_answers: int = 0  # answers without text that said they ended normally: paid (tokens and money counted
    # above), recorded as failed attempts and retried, never stored
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    interrupted: bool = False  # cancelled (Ctrl-C) before every request was resolved
    capped: bool = False  # stopped sending at the spend cap (max_cost_usd)
    not_sent: int = 0  # keys left unsent at the cap
    abandoned: int = 0  # with a cap: attempts abandoned without an answer (timeout, dropped connection, bad body)
    possibly_billed_usd: float = 0.0  # their worst case: the provider may bill them though nothing came back
    refused_usd: float = 0.0  # at the cap: the worst case of the request that did not fit

    @property
    def requests_per_s(self) -> float:
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.finish_reasons.items())) or "none"
        empty = f" ({self.empty_answers} empty answers, paid and retried)" if self.empty_answers else ""
        return (
            ("interrupted: " if self.interrupted else "")
            + (f"stopped at the cost cap with {self.not_sent} requests left: " if self.capped else "")
            + f"{self.requested} requests: {self.already_cached} already cached, {self.in_batch} waiting in a batch, "
            + (f"{self.claimed_elsewhere} being sent by another run, " if self.claimed_elsewhere else "")
            + f"{self.answered} answered "
            f"({reasons}), {self.gave_up} gave up; {self.attempts} attempts, {self.failed_attempts} failed{empty}; "
            f"{self.prompt_tokens} prompt tokens ({self.cached_tokens} cached), {self.completion_tokens} completion "
            f"tokens; ${self.cost_usd:.4f}; {self.elapsed_s:.1f} s, {self.requests_per_s:.2f} req/s"
            + (f"; took over {self.taken_over} claims of ended runs" if self.taken_over else "")
        )


class RunInterrupted(KeyboardInterrupt):
    """The run was cancelled (Ctrl-C); ``summary`` says what was answered and saved before it stopped."""

    def __init__(self, summary: RunSummary) -> None:
        super().__init__("interrupted")
        self.summary = summary
