"""ChatModel and judge calls of the benchmark, through the project's engine and response cache."""

from __future__ import annotations

import logging
from collections.abc import Callable

from keypoint_instruct.llm.request import ChatModel, ChatRequest

log = logging.getLogger(__name__)


def complete_all(
    make_teacher: Callable[[], ChatModel],
    cache,
    requests: list[ChatRequest],
    *,
    concurrency: int = 16,
    progress: bool = True,
    label: str = "teacher",
) -> dict[str, str]:
    """Answer ``requests`` through the engine (cached keys are never sent); return the answer text by key.

    ``make_teacher`` builds a fresh teacher for this run (the engine closes its client when done). Keys that got no
    usable answer (the engine gave up, or the answer was cut by length or a content filter) are left out.
    ``progress``/``label``: the engine's progress bar, and what it is called.
    """
    from keypoint_instruct.llm.online.engine import EngineSettings, run

    if requests:
        settings = EngineSettings(concurrency=concurrency, progress=progress, progress_label=label)
        run(make_teacher(), requests, cache, settings)
    texts: dict[str, str] = {}
    for request in requests:
        hit = cache.get(request.key)
        if hit is not None and hit.ok:
            texts[request.key] = hit.text
    return texts
