"""Which --base-url forms are refused before anything is sent, which are warned about, which are taken as they are."""

from __future__ import annotations

import pytest

from keypoint_instruct.llm.providers.urls import refusal, warning

AZURE = "https://res.openai.azure.com"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1",  # vLLM, SGLang, transformers serve
        "http://localhost:11434/v1/",  # Ollama (trailing slash)
        "http://0.0.0.0:4000/v1",  # LiteLLM proxy
        "https://api.openai.com/v1",
        "https://openrouter.ai/api/v1",
        "https://api.groq.com/openai/v1",
        "https://generativelanguage.googleapis.com/v1beta/openai/",  # Gemini: a version segment, not at the end
        "https://api.fireworks.ai/inference/v1",
        "https://gateway.ai.cloudflare.com/v1/acct/gw/openai",
        f"{AZURE}/openai/deployments/gpt-4o?api-version=2024-10-21",
        f"{AZURE}/openai/deployments/completions?api-version=2024-10-21",  # a deployment named "completions"
        f"{AZURE}/openai/v1",
        "https://res.services.ai.azure.com/models?api-version=2024-05-01-preview",
        "http://host:8000/v1?tenant=a",  # a query is sent with every request
    ],
)
def test_api_roots_are_taken_as_they_are(url):
    assert refusal(url) is None and warning(url) is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://localhost:8000", "has no path: an OpenAI-compatible server"),
        ("http://localhost:8000/", "so pass http://localhost:8000/v1"),
        ("https://api.openai.com", "pass https://api.openai.com/v1"),
        (AZURE, f"{AZURE}/openai/deployments/DEPLOYMENT?api-version=VERSION"),
        (
            "http://host:8000/v1/chat/completions",
            "which the client appends itself: pass the base, http://host:8000/v1",
        ),
        ("http://host:8000/chat/completions/", "pass the base, http://host:8000/v1"),
        (f"{AZURE}/openai/deployments/gpt-4o", "without ?api-version=VERSION"),
        (f"{AZURE}/openai/deployments/gpt-4o/?foo=1", "Azure answers with 404"),
    ],
)
def test_forms_that_cannot_work_are_refused(url, says):
    assert says in (refusal(url) or ""), refusal(url)


@pytest.mark.parametrize("url", ["http://localhost:11434/api", "https://gateway.example.com/openai"])
def test_a_path_without_a_version_segment_is_warned_about_and_sent(url):
    assert refusal(url) is None
    assert "has no version segment such as /v1" in warning(url)
