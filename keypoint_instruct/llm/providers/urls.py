"""What a ``--base-url`` of an OpenAI-compatible endpoint may look like: refused, warned about, or taken as it is.

The OpenAI client appends ``/chat/completions`` to the base URL, so the base is the API's root: ``.../v1`` on
OpenAI, vLLM, Ollama, LM Studio, llama.cpp, TGI, SGLang and a LiteLLM proxy (which also answer there when they
answer at their root), and a deployment (``/openai/deployments/NAME?api-version=...``) or ``/openai/v1`` on Azure.
:func:`refusal` names the forms that cannot work, found before anything is sent:

- no path at all (``http://localhost:8000``, ``https://api.openai.com``): every server above answers 404 there
  (add ``/v1``; on Azure, the deployment path);
- a path ending in ``/chat/completions``: the endpoint itself, which the client would append a second time;
- an Azure deployment URL without ``api-version`` in its query: Azure answers 404 without it.

:func:`warning` names the forms that may work but often do not: a path with no version segment (``v1``,
``v1beta``, ``v2``...) anywhere, such as Ollama's native ``/api`` or a gateway's ``/openai``. It is sent anyway; a
wrong path then stops the run after one request (a 404 is fatal). Everything else is taken as it is: ``/v1``,
``/api/v1`` (OpenRouter), ``/openai/v1`` (Groq), ``/v1beta/openai`` (Gemini), ``/inference/v1`` (Fireworks), Azure's
forms, and a query string, which is sent with every request.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

_AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
_VERSION_SEGMENT = re.compile(r"v\d+[a-z0-9]*", re.I)  # v1, v2, v1beta, v1alpha1
_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/[^/]+", re.I)


def is_azure(base_url: str | None) -> bool:
    """True for an Azure OpenAI host, which takes the key in its ``api-key`` header only."""
    return bool(base_url) and (urlsplit(base_url.strip()).hostname or "").endswith(_AZURE_HOSTS)


def _segments(url: str) -> list[str]:
    return [part for part in urlsplit(url.strip()).path.split("/") if part]


def refusal(url: str) -> str | None:
    """Why ``url`` (an http(s) URL with a host) cannot be an OpenAI-compatible base URL, or None."""
    parts = urlsplit(url.strip())
    segments = _segments(url)
    root = f"{parts.scheme}://{parts.netloc}"
    if not segments:
        if is_azure(url):
            return (
                f"{url.strip()} has no path: an Azure OpenAI base URL is {root}/openai/deployments/DEPLOYMENT"
                f"?api-version=VERSION (or {root}/openai/v1)"
            )
        return (
            f"{url.strip()} has no path: an OpenAI-compatible server (OpenAI, vLLM, Ollama, LM Studio, llama.cpp, "
            f"LiteLLM) answers under /v1, so pass {root}/v1"
        )
    if [s.lower() for s in segments[-2:]] == ["chat", "completions"]:
        base = "/".join([root, *segments[:-2]]) if segments[:-2] else f"{root}/v1"
        return f"{url.strip()} ends in /chat/completions, which the client appends itself: pass the base, {base}"
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    if is_azure(url) and _AZURE_DEPLOYMENT.fullmatch(parts.path.rstrip("/")) and not query.get("api-version"):
        return (
            f"{url.strip()} is an Azure OpenAI deployment without ?api-version=VERSION (e.g. 2024-10-21), "
            "which Azure answers with 404"
        )
    return None


def warning(url: str) -> str | None:
    """Why ``url`` may not be an OpenAI-compatible base URL though it could be one (it is sent anyway), or None."""
    if is_azure(url) or refusal(url) is not None:
        return None
    if any(_VERSION_SEGMENT.fullmatch(segment) for segment in _segments(url)):
        return None
    return (
        f"--base-url {url.strip()} has no version segment such as /v1: OpenAI-compatible servers (vLLM, Ollama, "
        "LM Studio, llama.cpp, LiteLLM) answer under /v1 (Ollama's /api is its own API); sending anyway, and a "
        "wrong path stops the run after its first request"
    )
