"""Read a response cache the way ``build`` reads it, decide every response, count, and pick the images to show.

Two passes over the cache: the first decides every response of the asked tasks (for the counts per reason at the top
of the page and for choosing images), keeping only a few tags per image; the second decides again the responses of
the chosen images and keeps them whole. Memory stays in proportion to the images shown, not to the cache.

When more images match than ``limit``, they are sampled per reason: the images are grouped by what they show (kept
rows, and each drop reason), and the groups take turns, rarest first, each adding its next image in a fixed
pseudo-random order, until ``limit`` images are chosen. A reason found on a handful of images among 30,000 is still
on the page.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keypoint_instruct.dataset import quality
from keypoint_instruct.errors import UnknownImageError, UsageError
from keypoint_instruct.review.decision import DROPPED, KEPT, Decision, decide, used_response
from keypoint_instruct.vocab import TASKS

logger = logging.getLogger(__name__)

ONLY = (KEPT, DROPPED)


@dataclass(frozen=True)
class Entry:
    """One cached response of an image and what the build does with it."""

    response: Any  # llm.store.cache.CachedResponse
    decision: Decision
    superseded: bool = False


@dataclass
class Summary:
    """Counts over every response read (not only the images shown): the numbers ``build`` prints."""

    images: set = field(default_factory=set)
    responses: Counter = field(default_factory=Counter)  # task -> responses read
    rows: Counter = field(default_factory=Counter)  # task -> dataset rows
    dropped: Counter = field(default_factory=Counter)  # (task, reason) -> responses or pairs dropped
    models: Counter = field(default_factory=Counter)  # teacher model -> responses
    prompt_versions: Counter = field(default_factory=Counter)  # (task, prompt version) -> responses
    tokens: Counter = field(default_factory=Counter)  # prompt / completion / cached -> tokens
    cost_usd: float = 0.0

    def add(self, entry: Entry) -> None:
        r = entry.response
        self.images.add(r.image_id)
        self.responses[r.task] += 1
        self.rows[r.task] += entry.decision.rows
        for reason, n in entry.decision.dropped.items():
            self.dropped[(r.task, reason)] += n
        self.models[r.model] += 1
        self.prompt_versions[(r.task, r.prompt_version)] += 1
        self.tokens.update(prompt=r.prompt_tokens, completion=r.completion_tokens, cached=r.cached_tokens)
        self.cost_usd += float(r.cost_usd or 0.0)

    def by_reason(self) -> dict[str, int]:
        """Drops per reason code over all tasks; the build's reasons first (zeros included), then any other."""
        totals = Counter()
        for (_, reason), n in self.dropped.items():
            totals[reason] += n
        return {**{reason: totals[reason] for reason in quality.REASONS}, **totals}


@dataclass(frozen=True)
class Filters:
    """Which responses and images the pages are about (the command's --task, --only, --reason, ...)."""

    tasks: tuple[str, ...] = TASKS
    only: str | None = None  # KEPT | DROPPED
    reason: str | None = None
    teacher_models: tuple[str, ...] | None = None
    prompt_versions: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.only is not None and self.only not in ONLY:
            raise UsageError(f"--only must be one of {', '.join(ONLY)}, not {self.only!r}")
        if self.reason is not None and self.reason not in quality.REASONS:
            raise UsageError(
                f"--reason {self.reason!r} is not a reason code; expected one of {', '.join(quality.REASONS)}"
            )
        if self.only == KEPT and self.reason is not None:
            raise UsageError(
                "--only kept and --reason select nothing together (a reason is why something was dropped)"
            )

    def wants(self, tags: set[str]) -> bool:
        """Whether an image with these tags (KEPT and the reasons its responses show) is shown."""
        if self.reason is not None:
            return self.reason in tags
        if self.only == KEPT:
            return KEPT in tags
        if self.only == DROPPED:
            return bool(tags - {KEPT})
        return True


def entry_tags(entries: Iterable[Entry]) -> set[str]:
    tags: set[str] = set()
    for entry in entries:
        if entry.decision.rows:
            tags.add(KEPT)
        tags.update(entry.decision.reasons)
    return tags


def group_entries(group: list[Any], scene: Any, instruction) -> list[Entry]:
    """Every response of one image and task, decided; all but the one the build uses are ``superseded``."""
    used = used_response(group)
    entries = [Entry(used, decide(used, scene, instruction=instruction))]
    for other in group:
        if other is not used:
            gone = Decision(DROPPED, reason=quality.SUPERSEDED, dropped={quality.SUPERSEDED: 1})
            entries.append(Entry(other, gone, superseded=True))
    return entries


def _groups(cache, scenes, split: str, filters: Filters, cache_path: Path) -> Iterator[tuple[int, list[Any], Any]]:
    """(image id, responses, scene) per task and image, in the build's order, with the build's model/version picks."""
    for task in filters.tasks:
        responses = cache.iter_responses(task=task, coco_split=split)
        if filters.teacher_models:
            responses = (r for r in responses if r.model in filters.teacher_models)
        if filters.prompt_versions:
            responses = (r for r in responses if r.prompt_version in filters.prompt_versions)
        for image_id, group in itertools.groupby(responses, key=lambda r: r.image_id):
            scene = scenes.get(image_id)
            if scene is None:
                raise UnknownImageError(
                    f"response cache {cache_path} has a {task} response for image id {image_id}, which is not in "
                    f"COCO split {split!r}; review with the COCO root and split the responses were generated from"
                )
            yield image_id, list(group), scene


def survey(cache, scenes, split: str, filters: Filters, cache_path: Path, instruction):
    """First pass: the summary of everything read and the tags of every image."""
    summary = Summary()
    tags: dict[int, set[str]] = {}
    for image_id, group, scene in _groups(cache, scenes, split, filters, cache_path):
        entries = group_entries(group, scene, instruction)
        for entry in entries:
            summary.add(entry)
        tags.setdefault(image_id, set()).update(entry_tags(entries))
    return summary, tags


def gather(cache, scenes, split: str, filters: Filters, cache_path: Path, image_ids, instruction):
    """Second pass: the entries of the chosen images, by image id, in task order."""
    wanted = set(image_ids)
    found: dict[int, list[Entry]] = {i: [] for i in image_ids}
    for image_id, group, scene in _groups(cache, scenes, split, filters, cache_path):
        if image_id in wanted:
            found[image_id] += group_entries(group, scene, instruction)
    return found


def _shuffle_key(image_id: int) -> bytes:
    return hashlib.sha256(f"review:{image_id}".encode()).digest()


def sample(tags: dict[int, set[str]], limit: int | None) -> tuple[list[int], Counter]:
    """Up to ``limit`` image ids (None: all), sampled per tag when there are more; and images chosen per tag."""
    ids = sorted(tags)
    if limit is None or len(ids) <= limit:
        chosen = ids
    else:
        by_tag: dict[str, list[int]] = {}
        for image_id in sorted(ids, key=_shuffle_key):
            for tag in tags[image_id]:
                by_tag.setdefault(tag, []).append(image_id)
        queues = [iter(by_tag[t]) for t in sorted(by_tag, key=lambda t: (len(by_tag[t]), t))]
        picked: set[int] = set()
        while len(picked) < limit and queues:
            for queue in list(queues):
                image_id = next((i for i in queue if i not in picked), None)
                if image_id is None:
                    queues.remove(queue)
                    continue
                picked.add(image_id)
                if len(picked) == limit:
                    break
        chosen = sorted(picked)
    shown = Counter(tag for image_id in chosen for tag in tags[image_id])
    return chosen, shown
