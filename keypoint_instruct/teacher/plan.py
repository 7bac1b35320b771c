"""What a teacher run would send: the selected requests, what is left of them to send, the checks before sending.

Takes a :class:`Selection` (COCO root and split, task, context mode, teacher model, limit, shard) and a response
cache; gives the teacher requests in image-id order, task by task (:func:`select_requests`), the keys a run leaves out
because they are answered, waiting in a batch or being sent by another run (:func:`left_out`), the requests still to
send (:func:`to_send`), the ``--dry-run`` estimate (:func:`dry_run`), and the ``--max-cost`` checks that refuse a run
before anything is sent (:func:`check_cap`, :func:`check_first_fits`, :func:`check_something_fitted`).

``generate`` and ``batch submit`` share all of it; they only parse arguments, call these and print. Reading a cache
here never writes to it: a dry run on a missing cache creates nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from keypoint_instruct.coco.annotations import load_scenes
from keypoint_instruct.coco.context import select_scenes
from keypoint_instruct.errors import UsageError
from keypoint_instruct.llm import pricing
from keypoint_instruct.llm.online.budget import below_one_request, check_enforceable, worst_case_usd
from keypoint_instruct.llm.request import ChatRequest, GenerationSettings
from keypoint_instruct.llm.store.batches import BatchJobs
from keypoint_instruct.llm.store.cache import ResponseCache
from keypoint_instruct.llm.store.claims import Claims
from keypoint_instruct.teacher.requests import build_requests
from keypoint_instruct.teacher.templates import expected_output_tokens
from keypoint_instruct.vocab import ALL, DEFAULT_CONTEXT_MODE, OFFLINE_TEACHER_MODEL, TASKS, TEACHER_MODEL

if TYPE_CHECKING:
    from keypoint_instruct.llm.online.engine import RunSummary

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """Which requests a teacher run covers: the selected images of a split, asked ``task`` (or all three)."""

    coco_root: Path
    split: str
    task: str  # a name of vocab.TASKS, or vocab.ALL
    context_mode: str = DEFAULT_CONTEXT_MODE
    model: str = TEACHER_MODEL
    limit: int | None = None  # the first N selected images
    shard: tuple[int, int] | None = None  # (I, N): every N-th selected image, starting at I
    settings: GenerationSettings | None = None  # sampling settings (their model must be ``model``); None: defaults

    @property
    def tasks(self) -> tuple[str, ...]:
        return TASKS if self.task == ALL else (self.task,)


def teacher_model(model: str | None, *, offline: bool = False) -> str:
    """The model a run asks: ``model`` or the pinned teacher; the offline teacher answers as itself, under no other."""
    if offline and model and model != OFFLINE_TEACHER_MODEL:
        raise UsageError(f"--teacher offline answers as model {OFFLINE_TEACHER_MODEL!r}; drop --model {model}")
    return OFFLINE_TEACHER_MODEL if offline else (model or TEACHER_MODEL)


def select_requests(selection: Selection) -> list[ChatRequest]:
    """The requests of the selection, in image-id order, task by task."""
    settings = selection.settings or GenerationSettings(model=selection.model)
    if settings.model != selection.model:
        raise UsageError(f"the sampling settings are for model {settings.model}, the selection asks {selection.model}")
    scenes = select_scenes(load_scenes(selection.coco_root, selection.split).values(), limit=selection.limit)
    if selection.shard:
        index, count = selection.shard
        scenes = scenes[index::count]
    requests: list[ChatRequest] = []
    for task in selection.tasks:
        requests.extend(build_requests(scenes, task, settings, selection.context_mode, selection.split))
    log.info("%d images selected, %d requests", len(scenes), len(requests))
    shared = len(requests) - len({r.key for r in requests})
    if shared:
        log.info(
            "%d requests share their key with another image's (identical contexts): one answer serves each such "
            "group, and `build` attaches it to every image of the group",
            shared,
        )
    return requests


def record_prompts(cache: ResponseCache, selection: Selection) -> None:
    """Record in ``cache`` what the selection's prompt versions stand for (before any of them is sent)."""
    from keypoint_instruct.teacher.catalogue import record_prompts as record

    record(cache, selection.tasks, selection.context_mode)


def open_cache(path: Path, *, create: bool) -> ResponseCache:
    """The response cache at ``path`` (a context manager); ``create=False`` refuses a missing one."""
    return ResponseCache(path, create=create)


# --------------------------------------------------------------------------- what is left to send


class LeftOut(NamedTuple):
    """Keys a run would leave out now, by reason; unpacks as ``answered, in_batch, claimed``."""

    answered: set[str]  # an answer is in the cache
    in_batch: set[str]  # waiting in a submitted batch
    claimed: set[str]  # being sent by another run on the same cache

    @property
    def keys(self) -> set[str]:
        return self.answered | self.in_batch | self.claimed


NOTHING_LEFT_OUT = LeftOut(set(), set(), set())


def left_out(cache: ResponseCache, requests: Sequence[ChatRequest]) -> LeftOut:
    """What a run on ``cache`` would leave out of ``requests`` now (reads only)."""
    keys = {r.key for r in requests}
    answered = cache.answered(keys)
    in_batch = BatchJobs(cache).pending_among(keys - answered)
    claimed: set[str] = set()
    if cache.schema_version >= 2:  # an older read-only cache has no claims
        claimed = Claims(cache).held_elsewhere(keys - answered - in_batch)
    return LeftOut(answered, in_batch, claimed)


def left_out_at(path: Path, requests: Sequence[ChatRequest]) -> LeftOut:
    """:func:`left_out` of the cache file at ``path``, opened read-only; a missing file leaves nothing out."""
    if not path.exists():
        return NOTHING_LEFT_OUT
    with open_cache(path, create=False) as cache:
        return left_out(cache, requests)


def to_send(requests: Sequence[ChatRequest], skipped: set[str]) -> list[ChatRequest]:
    """The requests whose key is not in ``skipped``, each key once, in selection order."""
    unique = {r.key: r for r in requests if r.key not in skipped}
    return list(unique.values())


@dataclass(frozen=True)
class DryRun:
    """What ``--dry-run`` reports: the selection, what it leaves out, what is left to send and its estimate."""

    selected: int
    left_out: LeftOut
    todo: list[ChatRequest]
    estimate: pricing.CostEstimate


def dry_run(requests: Sequence[ChatRequest], cache_path: Path) -> DryRun:
    """Tokens and cost of the requests still to send; the cache is read if it exists, never created."""
    skipped = left_out_at(cache_path, requests)
    todo = to_send(requests, skipped.keys)
    return DryRun(len(requests), skipped, todo, pricing.estimate_requests(todo, expected_output_tokens))


# --------------------------------------------------------------------------- cost checks


def check_cap(requests: Sequence[ChatRequest], cap_usd: float) -> None:
    """A cap that cannot be enforced (a model without a price, a request without an output limit) is a usage error.

    Run before anything is created or sent.
    """
    check_enforceable(requests, cap_usd)


def check_first_fits(cache: ResponseCache, requests: Sequence[ChatRequest], cap_usd: float) -> None:
    """A cap below the worst case of the first request the run would send is a usage error: nothing is sent."""
    skipped = left_out(cache, requests).keys
    first = next((r for r in requests if r.key not in skipped), None)
    if first is not None and worst_case_usd(first) > cap_usd:
        raise below_one_request(cap_usd, worst_case_usd(first))


def check_something_fitted(summary: RunSummary, cap_usd: float | None) -> None:
    """After a run the cap stopped before it sent anything, the usage error of :func:`check_first_fits`.

    That happens when another run on the cache took the request :func:`check_first_fits` looked at, and the cap
    cannot pay for the next one either.
    """
    if summary.capped and summary.attempts == 0:
        raise below_one_request(cap_usd, summary.refused_usd)
