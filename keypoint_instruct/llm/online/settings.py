"""What an engine run is asked to do: :class:`EngineSettings` (concurrency, limits, retries, drain, spend cap).

Takes the CLI's or a caller's numbers and checks them once (a :class:`UsageError` names the bad one); gives the
frozen settings that :mod:`keypoint_instruct.llm.online.engine` and its run (:mod:`.state`) read.
"""

from __future__ import annotations

from dataclasses import dataclass

from keypoint_instruct.errors import UsageError
from keypoint_instruct.llm.store.claims import DEFAULT_LEASE_S


@dataclass(frozen=True)
class EngineSettings:
    concurrency: int = 32
    rpm: float | None = None  # requests per minute; None: unlimited, or what the endpoint's headers say
    tpm: float | None = None  # tokens per minute (prompt estimate + max_tokens per request)
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    burst_s: float = 1.0  # seconds of allowance a rate bucket may hold
    drain_s: float = 30.0  # after Ctrl-C: how long requests already in flight may still finish
    progress: bool = True
    progress_label: str = "teacher"  # what the progress bar calls the endpoint (e.g. "judge")
    claim_lease_s: float = DEFAULT_LEASE_S  # how long a claim on a key lasts unless renewed (claims.py)
    max_cost_usd: float | None = None  # spend cap of the run (budget.py); None: no cap

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError(f"concurrency {self.concurrency} must be at least 1")
        if self.max_attempts < 1:
            raise UsageError(f"max attempts {self.max_attempts} must be at least 1")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UsageError(f"--{name} {value} must be positive")
        if not self.claim_lease_s > 0:
            raise UsageError(f"--claim-lease {self.claim_lease_s} must be positive")
        if self.max_cost_usd is not None and not self.max_cost_usd > 0:
            raise UsageError(f"--max-cost {self.max_cost_usd} must be positive")
