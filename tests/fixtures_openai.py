"""Fixtures of the teacher stage: an OpenAI-compatible server on 127.0.0.1 (see tests/fake_openai.py)."""

from __future__ import annotations

import pytest

from tests.fake_openai import FakeOpenAI


@pytest.fixture
def fake_openai():
    """A started :class:`tests.fake_openai.FakeOpenAI` (fresh per test: no faults, no limits, no latency)."""
    server = FakeOpenAI().start()
    try:
        yield server
    finally:
        server.stop()
