"""The OpenAI-compatible adapter against the fake server over real HTTP, and its small parsers."""

from __future__ import annotations

import asyncio

import pytest

from keypoint_instruct.errors import TeacherCallError, TeacherError
from keypoint_instruct.teacher import (
    LOCAL_DUMMY_KEY,
    GenerationSettings,
    OpenAITeacher,
    TeacherRequest,
    parse_duration,
    rate_limits_from_headers,
    resolve_api_key,
    retry_after_from_headers,
)

SYSTEM = "You write a conversation about human poses. " + "Static few-shot prefix. " * 300


def chat_request(image_id: int, settings: GenerationSettings | None = None) -> TeacherRequest:
    settings = settings or GenerationSettings()
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"A man skis. image {image_id}"}]
    return TeacherRequest("conversation", image_id, "val2014", "v1", settings.body(messages))


def complete(server, request, **kwargs):
    async def go():
        teacher = OpenAITeacher(base_url=server.base_url, **kwargs)
        try:
            return await teacher.complete(request)
        finally:
            await teacher.aclose()

    return asyncio.run(go())


def test_parsers():
    assert parse_duration("6m0s") == 360 and parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5) and parse_duration("2.5") == 2.5
    assert parse_duration("soon") is None and parse_duration(None) is None
    limits = rate_limits_from_headers(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-tokens": "29000",
            "x-ratelimit-reset-tokens": "2s",
        }
    )
    assert (limits.limit_requests, limits.remaining_tokens, limits.reset_tokens_s) == (500, 29000, 2.0)
    assert rate_limits_from_headers({"content-type": "application/json"}) is None
    assert retry_after_from_headers({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert retry_after_from_headers({"retry-after": "3"}) == 3.0


def test_key_resolution(monkeypatch):
    with pytest.raises(TeacherError, match="set OPENAI_API_KEY .* --base-url"):
        resolve_api_key(None)
    assert resolve_api_key("http://127.0.0.1:9/v1") == LOCAL_DUMMY_KEY
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    assert resolve_api_key(None) == "sk-test-secret"
    assert "sk-test-secret" not in repr(OpenAITeacher(base_url="http://127.0.0.1:9/v1"))


def test_completion_usage_and_rate_limit_headers(fake_openai):
    fake_openai.set_limits(rpm=6000, tpm=10_000_000)
    first = complete(fake_openai, chat_request(1))
    second = complete(fake_openai, chat_request(2))
    assert first.finish_reason == "stop" and first.text.startswith("Question:")
    assert first.model == "gpt-4o-2024-08-06" and first.prompt_tokens > 1024 and first.completion_tokens > 0
    assert first.cached_tokens == 0 and second.cached_tokens > 1024  # the shared prefix is cached the second time
    assert second.rate_limits.limit_requests == 6000 and second.rate_limits.remaining_tokens is not None
    (entry,) = fake_openai.chat_log()[:1]
    assert entry.body == chat_request(1).body  # the canonical body is what goes on the wire


@pytest.mark.parametrize(
    ("fault", "reason", "retry_after"),
    [
        ("429", "HTTP 429", 0.1),
        ("500", "HTTP 500", None),
        ("drop", "connection", None),
        ("non_json", "non-JSON", None),
    ],
)
def test_faults_become_retryable_errors(fake_openai, fault, reason, retry_after):
    fake_openai.set_faults(script=[fault])
    with pytest.raises(TeacherCallError) as caught:
        complete(fake_openai, chat_request(1))
    assert caught.value.retryable and not caught.value.fatal
    assert caught.value.reason.startswith(reason)
    assert caught.value.retry_after_s == retry_after
    assert len(fake_openai.chat_log()) == 1  # the SDK's hidden retries are off


def test_stall_beyond_timeout_is_a_retryable_timeout(fake_openai):
    fake_openai.set_faults(script=["stall"], stall_s=2.0)
    with pytest.raises(TeacherCallError, match="timeout") as caught:
        complete(fake_openai, chat_request(1), timeout_s=0.3)
    assert caught.value.retryable


def test_cut_answers_keep_their_finish_reason(fake_openai):
    fake_openai.set_faults(script=["length", "content_filter"])
    assert complete(fake_openai, chat_request(1)).finish_reason == "length"
    assert complete(fake_openai, chat_request(2)).finish_reason == "content_filter"
