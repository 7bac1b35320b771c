"""Checks a command makes before any work (a model run, a paid call): a key or a URL for an endpoint, a writable --out.

Used by the ``bench`` steps; each failure is one line, exit 2 (:mod:`keypoint_instruct.cli.exits`).
"""

from __future__ import annotations

import os
from pathlib import Path

from keypoint_instruct.errors import BenchmarkError


def require_key(base_url: str | None, what: str, alternative: str) -> None:
    """Fail before any work when an OpenAI-compatible call has neither a key nor a URL."""
    from keypoint_instruct.llm.providers.openai import API_KEY_ENV

    if not base_url and not os.environ.get(API_KEY_ENV, "").strip():
        raise BenchmarkError(
            f"{what} needs {API_KEY_ENV} (api.openai.com) or --base-url (a local OpenAI-compatible server); "
            + alternative
        )


def writable(path: Path, *, folder: bool) -> None:
    """Fail before any work (model runs, paid calls) when an output cannot be written."""
    target = path if folder else path.parent
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BenchmarkError(f"cannot write --out {path}: {err.strerror or err}") from None
    if not folder and path.is_dir():
        raise BenchmarkError(f"--out {path} is a folder; give a file name")
    probe = path if not folder else path / ".keypoint-instruct-write-test"
    existed = probe.exists()
    try:
        with open(probe, "a", encoding="utf-8"):
            pass
    except OSError as err:
        raise BenchmarkError(f"cannot write --out {path}: {err.strerror or err}") from None
    if not existed:
        probe.unlink()
