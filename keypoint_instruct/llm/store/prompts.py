"""What each prompt version in a response cache stands for, as the runs that sent it recorded it.

A prompt version is a hash: it tells two prompts apart but not what they were. The runs that send requests record,
once per version, its task and a JSON object of details that the layer above chooses (the teacher records the
context mode and, for detailed descriptions, the instruction list), so a later build can still read them after the
prompt files changed. ``cache merge`` carries the records; a cache written before schema 4 has none.

    catalogue = PromptCatalogue(cache)
    catalogue.record({"3f2a...": ("conversation", {"context_mode": "paper"})})
    catalogue.read() -> {"3f2a...": ("conversation", {"context_mode": "paper"})}
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping

from keypoint_instruct.errors import CacheError
from keypoint_instruct.llm.request import canonical_json
from keypoint_instruct.llm.store.cache import ResponseCache


class PromptCatalogue:
    """The ``prompt_versions`` table of a response cache."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache = cache

    @property
    def available(self) -> bool:
        """False for a read-only cache of a schema older than 4 (it has no catalogue)."""
        return self.cache.schema_version >= 4

    def record(self, versions: Mapping[str, tuple[str, dict]]) -> None:
        """Record ``{prompt_version: (task, details)}``; a version recorded before keeps its first record."""
        if not self.available:  # a read-only older file: the run that wants to send from it says so
            return
        rows = [(version, task, canonical_json(details)) for version, (task, details) in versions.items()]
        try:
            with self.cache.transaction():
                self.cache.db.executemany(
                    "INSERT OR IGNORE INTO prompt_versions (prompt_version, task, details) VALUES (?, ?, ?)", rows
                )
        except sqlite3.Error as err:  # a read-only file, a lock held for longer than the busy timeout
            raise CacheError(
                f"recording prompt versions in the response cache {self.cache.path} failed: {err}"
            ) from None

    def read(self) -> dict[str, tuple[str, dict]]:
        """Every recorded version: ``{prompt_version: (task, details)}`` (empty before schema 4)."""
        if not self.available:
            return {}
        query = "SELECT prompt_version, task, details FROM prompt_versions ORDER BY prompt_version"
        return {version: (task, json.loads(details)) for version, task, details in self.cache.db.execute(query)}
