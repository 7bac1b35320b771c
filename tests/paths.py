"""Paths the tests read: the repository, the snapshot folder, and the real-pose tree beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAPSHOTS = REPO / "tests" / "snapshots"
# ../shared/realposes: real photographs with real keypoints, read in place (never copied into the package);
# KPI_REALPOSES names it for a checkout that has no ../shared beside it; a checkout one folder deeper (a git
# worktree under ../wt/) finds it one level further up
REALPOSES = Path(
    os.environ.get("KPI_REALPOSES")
    or next(
        (
            p / "shared" / "realposes"
            for p in (REPO.parent, REPO.parent.parent)
            if (p / "shared" / "realposes").is_dir()
        ),
        REPO.parent / "shared" / "realposes",
    )
)
