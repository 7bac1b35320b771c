"""The OpenAI-compatible adapter against the fake server over real HTTP, and its small parsers."""

from __future__ import annotations

import asyncio
import logging

import httpx2
import openai
import pytest

from keypoint_instruct.cli import main
from keypoint_instruct.errors import TeacherCallError, TeacherError
from keypoint_instruct.llm.online.ratelimit import estimate_request_tokens
from keypoint_instruct.llm.pricing import count_message_tokens
from keypoint_instruct.llm.providers.http_errors import (
    parse_duration,
    rate_limits_from_headers,
    retry_after_from_headers,
    status_error,
)
from keypoint_instruct.llm.providers.openai import LOCAL_DUMMY_KEY, OpenAIChat, client_options, resolve_api_key
from keypoint_instruct.llm.request import ChatRequest, GenerationSettings, is_reasoning_model, max_output_tokens

SYSTEM = "You write a conversation about human poses. " + "Static few-shot prefix. " * 300


def chat_request(image_id: int, settings: GenerationSettings | None = None) -> ChatRequest:
    settings = settings or GenerationSettings()
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"A man skis. image {image_id}"}]
    return ChatRequest("conversation", image_id, "val2014", "v1", settings.body(messages))


def complete(server, request, **kwargs):
    async def go():
        teacher = OpenAIChat(**{"base_url": server.base_url, **kwargs})
        try:
            return await teacher.complete(request)
        finally:
            await teacher.aclose()

    return asyncio.run(go())


def test_parsers():
    assert parse_duration("6m0s") == 360 and parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5) and parse_duration("2.5") == 2.5
    assert parse_duration("soon") is None and parse_duration(None) is None
    assert parse_duration("850\u00b5s") == pytest.approx(0.00085) and parse_duration("1m0.5s") == 60.5
    assert parse_duration("120us") == pytest.approx(0.00012) and parse_duration("300ns") == pytest.approx(3e-7)
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
    assert "sk-test-secret" not in repr(OpenAIChat(base_url="http://127.0.0.1:9/v1"))


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


# --------------------------------------------------------------------------- what real providers answer


@pytest.mark.parametrize("model", ["o3", "o4-mini-2025-04-16", "gpt-5", "gpt-5-mini", "openai/gpt-5"])
def test_reasoning_models_get_max_completion_tokens_and_no_temperature(fake_openai, model):
    fake_openai.set_access(reasoning_models={model})
    settings = GenerationSettings(model=model)
    request = chat_request(1, settings)
    assert is_reasoning_model(model) and set(request.body) == {"model", "messages", "max_completion_tokens", "seed"}
    completion = complete(fake_openai, request)
    assert completion.finish_reason == "stop" and completion.text
    (entry,) = fake_openai.chat_log()
    assert entry.body == request.body and entry.status == 200
    # Their hidden reasoning comes out of the same limit: it is not the chat models' 1024.
    assert max_output_tokens(request.body) == settings.reasoning_max_tokens > settings.max_tokens
    assert estimate_request_tokens(request) > settings.reasoning_max_tokens  # the TPM debit counts it


@pytest.mark.parametrize(
    "model", ["gpt-4o-2024-08-06", "gpt-4.1", "gpt-4o-mini", "gpt-5-chat-latest", "Qwen/Qwen2-7B"]
)
def test_chat_models_keep_the_body_their_cached_answers_are_keyed_by(model):
    body = chat_request(1, GenerationSettings(model=model)).body
    assert not is_reasoning_model(model)
    assert set(body) == {"model", "messages", "temperature", "max_tokens", "seed"}
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.2, 1024, 42)


@pytest.mark.parametrize(
    ("model", "fault", "expected"),
    [
        # an Azure deployment or proxy alias of a reasoning model: its name does not say so, the endpoint does
        ("my-reasoner", None, ("HTTP 400 unsupported_parameter", "'my-reasoner'", "max_tokens")),
        ("gpt-4o-2024-08-06", "insufficient_quota", ("HTTP 429 insufficient_quota", "no quota or credit")),
        ("gpt-4o-2024-08-06", "payment_required", ("HTTP 402", "no quota or credit", "Insufficient Balance")),
    ],
)
def test_an_error_every_request_would_get_stops_the_run_at_once(
    fake_openai, coco_root, tmp_path, capsys, model, fault, expected
):
    fake_openai.set_access(reasoning_models={"my-reasoner"})
    fake_openai.set_faults(rule=lambda body: fault)
    argv = ["generate", "--task", "all", "--coco-root", str(coco_root), "--split", "val2014"]
    argv += ["--cache", str(tmp_path / "c.sqlite"), "--base-url", fake_openai.base_url, "--model", model]
    code = main([*argv, "--concurrency", "1", "--no-progress"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith(("INFO ", "DEBUG "))]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert all(part in lines[0] for part in expected), lines[0]
    assert len(fake_openai.chat_log()) == 1  # not one refusal per request, nor a retry


@pytest.mark.parametrize("fault", ["insufficient_quota", "payment_required"])
def test_an_exhausted_account_is_fatal_not_a_rate_limit(fake_openai, fault):
    fake_openai.set_faults(script=[fault])
    with pytest.raises(TeacherCallError) as caught:
        complete(fake_openai, chat_request(1))
    assert caught.value.fatal and not caught.value.retryable
    assert "no quota or credit" in caught.value.reason


def _http_error(status: int, error: dict) -> openai.APIStatusError:
    """The SDK's own error for ``status`` with ``{"error": error}`` as the body, as it raises it."""
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    response = httpx2.Response(status, json={"error": error}, request=request)
    return openai.AsyncOpenAI(api_key="x", base_url="http://127.0.0.1:9/v1")._make_status_error_from_response(response)


@pytest.mark.parametrize(
    ("status", "error", "fatal", "retryable"),
    [
        # LiteLLM relays OpenAI's quota error under its own code
        (429, {"message": "litellm.RateLimitError: OpenAIException - You exceeded your current quota, please check "
               "your plan and billing details.", "type": "throttling_error", "code": "429"}, True, False),
        (429, {"message": "quota", "type": "insufficient_quota", "code": None}, True, False),
        # Azure's rate limit names the pricing tier: it is a rate limit, retried
        (429, {"message": "Requests to the ChatCompletions_Create Operation have exceeded token rate limit of your "
               "current OpenAI S0 pricing tier. Please retry after 1 second.", "code": "429"}, False, True),
        (400, {"message": "Unrecognized request argument supplied: seed", "code": None}, True, False),  # Azure
        (400, {"message": "litellm.UnsupportedParamsError: anthropic does not support parameters: {'seed': 42}",
               "code": "400"}, True, False),
        (422, {"message": "Extra inputs are not permitted", "type": "invalid_request_error"}, True, False),
        # older LiteLLM proxies answer an unsupported parameter with a 500
        (500, {"message": "ollama does not support parameters: {'seed': 1}, for model=llama3:latest. To drop these, "
               "set `litellm.drop_params=True`", "type": None, "code": 500}, True, False),
        (500, {"message": "The server had an error while processing your request.", "code": None}, False, True),
        (400, {"message": "Unsupported value: 'messages[0].role' does not support 'system' with this model.",
               "param": "messages[0].role", "code": "unsupported_value"}, True, False),
        # one request too long: only that request fails
        (400, {"message": "This model's maximum context length is 128000 tokens.", "code": "context_length_exceeded",
               "param": "messages"}, False, False),
        (400, {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
               "policy.", "code": "content_filter"}, False, False),
    ],
)  # fmt: skip
def test_provider_errors_are_classified(status, error, fatal, retryable):
    err = status_error(_http_error(status, error), "gpt-4o")
    assert (err.fatal, err.retryable) == (fatal, retryable), err.reason
    if status != 429:  # the provider's words are kept (a rate limit's are not needed)
        assert error["message"].split(":")[-1].strip()[:30] in err.reason


def test_a_too_long_request_fails_alone(fake_openai, coco_root, tmp_path, capsys):
    fake_openai.set_faults(script=["context_length"])
    argv = ["generate", "--task", "conversation", "--coco-root", str(coco_root), "--split", "val2014", "--limit", "3"]
    argv += ["--cache", str(tmp_path / "c.sqlite"), "--base-url", fake_openai.base_url, "--concurrency", "1"]
    assert main([*argv, "--no-progress"]) == 1  # one request given up, the run went on
    out = capsys.readouterr().out
    assert "2 answered" in out and "1 gave up" in out, out
    assert len(fake_openai.chat_log()) == 3  # the refused one was not retried


@pytest.mark.parametrize(
    ("suffix", "query"),
    [("", ""), ("/", ""), ("?api-version=2024-10-21", "api-version=2024-10-21"), ("/?api-version=v", "api-version=v")],
)
def test_base_url_forms(fake_openai, suffix, query):
    teacher_url = fake_openai.base_url + suffix
    assert complete(fake_openai, chat_request(1), base_url=teacher_url).finish_reason == "stop"
    (entry,) = fake_openai.chat_log()
    assert (entry.path, entry.query, entry.status) == ("/v1/chat/completions", query, 200)


def test_azure_hosts_get_the_key_in_their_own_header():
    url = "https://res.openai.azure.com/openai/deployments/gpt-4o?api-version=2024-10-21"
    teacher = OpenAIChat(base_url=url, api_key="k123")
    options = openai._models.FinalRequestOptions(
        method="post", url="/chat/completions", headers=teacher._extra_headers
    )
    request = teacher._client._build_request(options)  # what the SDK would send
    assert str(request.url) == url.replace("?", "/chat/completions?")
    assert request.headers["api-key"] == "k123" and "authorization" not in request.headers  # both at once: a 400
    assert client_options("http://127.0.0.1:8000/v1", "k123") == {"base_url": "http://127.0.0.1:8000/v1"}


def test_a_refusal_is_kept_as_a_refusal(fake_openai):
    fake_openai.set_faults(script=["refusal"])
    completion = complete(fake_openai, chat_request(1))
    assert completion.finish_reason == "refusal" and completion.text.startswith("I'm sorry")


def test_an_answer_without_usage_is_counted_here(fake_openai, caplog):
    fake_openai.set_faults(script=["no_usage", "null_finish"])
    request = chat_request(1)
    with caplog.at_level(logging.WARNING, logger="keypoint_instruct.llm.providers.openai"):
        completion = complete(fake_openai, request)
    assert completion.prompt_tokens == count_message_tokens(request.body["messages"])
    assert completion.completion_tokens > 0 and completion.finish_reason == "stop"
    assert any("no token usage" in r.getMessage() for r in caplog.records)
    assert complete(fake_openai, chat_request(2)).finish_reason == "unknown"  # null: neither complete nor cut
