"""One snapshot rule for every test that keeps one: compare with the committed file; UPDATE_SNAPSHOTS=1 rewrites it."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest


def check_snapshot(path: Path, text: str, what: str, *, load: Callable[[str], object] | None = None) -> None:
    """Assert ``text`` equals the snapshot at ``path`` (compared after ``load`` when given).

    A missing snapshot is written and the test fails, so a new one is looked at before it is committed.
    """
    update = os.environ.get("UPDATE_SNAPSHOTS") == "1"
    if update or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not update:
            pytest.fail(f"wrote a new snapshot {path}; check it and commit it")
    stored = path.read_text(encoding="utf-8")
    same = load(text) == load(stored) if load is not None else text == stored
    assert same, f"{what} changed; if intended, rerun with UPDATE_SNAPSHOTS=1 and commit the diff"
