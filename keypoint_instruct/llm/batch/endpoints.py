"""Which endpoint a ``batch`` command asks, and its client.

``batch submit`` talks to ``--base-url`` (the default endpoint when None) and records it with each batch (never the
key). The commands after it ask about a recorded batch at ``--base-url`` when one is given (every batch, e.g. after
the server moved), else at the endpoint the batch was submitted to::

    batch_client(base_url, timeout) -> openai.OpenAI   # the key from resolve_api_key
    RecordedEndpoints(cache, base_url, timeout)
        .client_for(row) -> openai.OpenAI               # row: a batch's record (BatchJobs.rows()); a client per URL
        .default() -> openai.OpenAI                     # the newest batch's, for what concerns no one batch
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keypoint_instruct.llm.providers.openai import client_options, resolve_api_key
from keypoint_instruct.llm.store.batches import BatchJobs

if TYPE_CHECKING:
    from keypoint_instruct.llm.store.cache import ResponseCache


def batch_client(base_url: str | None, timeout: float) -> Any:
    """A sync ``openai.OpenAI`` for ``base_url`` (None: api.openai.com); a missing key is one UsageError line."""
    import openai

    key = resolve_api_key(base_url, offline_hint=False)
    options = client_options(base_url, key)
    options.pop("default_headers", None)  # only the query part: Azure's batch key handling is not supported here
    return openai.OpenAI(api_key=key, timeout=timeout, **options)


class RecordedEndpoints:
    """``base_url`` when given, else each recorded batch's own endpoint; a client per URL, made when first asked."""

    def __init__(self, cache: ResponseCache, base_url: str | None, timeout: float) -> None:
        self.jobs = BatchJobs(cache)
        self.base_url = base_url
        self.timeout = timeout
        self._clients: dict[str | None, Any] = {}

    def url(self, row: dict | None) -> str | None:
        """The endpoint to ask about the batch of ``row`` (None: api.openai.com)."""
        if self.base_url is not None or row is None:
            return self.base_url
        return row["base_url"]

    def client_for(self, row: dict | None) -> Any:
        url = self.url(row)
        if url not in self._clients:
            self._clients[url] = batch_client(url, self.timeout)
        return self._clients[url]

    def default(self) -> Any:
        """For what concerns no one batch (an interrupted submit's lookups): the newest batch's endpoint."""
        rows = self.jobs.rows()
        return self.client_for(rows[-1] if rows else None)
