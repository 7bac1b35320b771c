"""The progress bar of an engine run: requests resolved, with tokens, spend, failed attempts and give-ups.

Takes the number of requests to send and the run's :class:`~keypoint_instruct.llm.online.summary.RunSummary`
(read at every update); draws a tqdm bar on stderr, or nothing when disabled or when there is nothing to send.
tqdm is imported only when a bar is drawn (the CLI's start-up imports no heavy library).
"""

from __future__ import annotations

from keypoint_instruct.llm.online.summary import RunSummary


class Progress:
    def __init__(self, total: int, enabled: bool, summary: RunSummary, label: str = "teacher") -> None:
        self.summary = summary
        self.bar = None
        if enabled and total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="req", desc=label, dynamic_ncols=True, mininterval=0.5)

    def update(self, done: int = 0) -> None:
        if self.bar is None:
            return
        s = self.summary
        self.bar.set_postfix_str(
            f"tok={s.prompt_tokens + s.completion_tokens} ${s.cost_usd:.4f} fail={s.failed_attempts} "
            f"gave_up={s.gave_up}",
            refresh=False,
        )
        self.bar.update(done)

    def close(self, *, clear: bool = False) -> None:
        """Close the bar; ``clear`` erases it (a run stopped by an error leaves only the error line)."""
        if self.bar is not None:
            if clear:
                self.bar.leave = False
            self.bar.close()
