"""Paths the tests read: the repository, the snapshot folder, and the real-pose tree beside the checkout."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAPSHOTS = REPO / "tests" / "snapshots"
# ../shared/realposes: real photographs with real keypoints, read in place (never copied into the package)
REALPOSES = REPO.parent / "shared" / "realposes"
