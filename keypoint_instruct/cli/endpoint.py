"""What every command that talks to an OpenAI-compatible endpoint shares: the ``--base-url`` check and quiet logs.

Used by ``generate``, ``batch *`` and ``bench build|answer|judge``, so the rule is the same everywhere.
"""

from __future__ import annotations

import argparse
import logging
from urllib.parse import urlsplit

# Loggers that write one INFO line per HTTP request ("HTTP Request: POST ...", "Retrying request ...").
HTTP_LOGGERS = ("httpx2", "httpx", "openai")


def base_url(text: str) -> str:
    """An ``http://`` or ``https://`` URL with a host, whose path can be an API root; anything else is argparse's
    one-line error (exit 2), before anything is created or sent.

    Without this check a typo (``localhost:8000/v1``, ``not-a-url``) is retried as a connection error until the
    attempts run out. The path rules (a bare host, a URL ending in ``/chat/completions``, an Azure deployment
    without ``api-version`` are refused; a path without ``/v1`` only warned about when sent) are
    :mod:`keypoint_instruct.llm.providers.urls`.
    """
    from keypoint_instruct.llm.providers.urls import refusal

    url = text.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"expected an http:// or https:// URL with a host (e.g. http://127.0.0.1:8000/v1), got {text!r}"
        )
    problem = refusal(url)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return url


TEACHER_BASE_URL_HELP = (
    "OpenAI-compatible endpoint, http(s)://host[:port]/v1 (vLLM, Ollama, a local server), or Azure OpenAI: "
    "https://RESOURCE.openai.azure.com/openai/deployments/DEPLOYMENT?api-version=VERSION (the key from "
    "OPENAI_API_KEY goes in its api-key header); a query string such as ?api-version=... is sent with every "
    "request. Refused before anything is sent: a URL without a path, one ending in /chat/completions, an Azure "
    "deployment without api-version. Default api.openai.com"
)


def add_base_url_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--base-url`` with the shared check (default: None, meaning api.openai.com)."""
    parser.add_argument("--base-url", type=base_url, default=None, metavar="URL", help=help_text)


def quiet_http_logs(args: argparse.Namespace) -> None:
    """The HTTP client logs every request at INFO: show those lines only with ``--verbose``."""
    level = logging.NOTSET if getattr(args, "verbose", False) else logging.WARNING
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(level)
