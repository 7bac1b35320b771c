"""The helpers every batch command shares: error lines without the key, the endpoint's name, counted nouns."""

from __future__ import annotations

import pytest
from openai import OpenAI

from keypoint_instruct.errors import TeacherError
from keypoint_instruct.llm.batch.api import call, count_of, endpoint_of
from keypoint_instruct.llm.providers.http_errors import redact


def test_key_shaped_text_is_redacted_from_errors():
    text = "Incorrect API key provided: sk-proj-abc1****************wxyz. You can find your key at ..."
    assert "abc1" not in redact(text) and "<redacted key>" in redact(text)
    assert redact("batch batch-fake3 not found") == "batch batch-fake3 not found"


def test_a_connection_error_is_one_line_naming_the_url_tried_without_its_query():
    client = OpenAI(
        base_url="http://127.0.0.1:9/v1", api_key="sk-test", max_retries=0, timeout=2, default_query={"v": "1"}
    )
    with pytest.raises(TeacherError) as raised:
        call("reading batch b1", client.batches.retrieve, "b1")
    line = str(raised.value)
    assert line.startswith("Batch API: reading batch b1 failed: APIConnectionError: Connection error")
    assert line.endswith("(tried http://127.0.0.1:9/v1/batches/b1)") and "\n" not in line


def test_the_endpoint_is_named_as_a_user_gives_it():
    assert endpoint_of(OpenAI(base_url="http://127.0.0.1:9/v1/", api_key="sk-test")) == "http://127.0.0.1:9/v1"


def test_count_of_agrees_in_number():
    assert [count_of(n, "request") for n in (0, 1, 2)] == ["0 requests", "1 request", "2 requests"]
    assert count_of(2, "batch", "batches") == "2 batches"
