"""Cached teacher responses -> dataset rows in TRL's conversational vision format, with provenance.

One row per sample (see "Dataset rows" in ARCHITECTURE.md). The first user turn starts with the image; the
image itself is referenced by its path relative to the COCO root unless the bytes are embedded. Every response
or pair that does not become a row is counted in :class:`BuildStats` under a reason code of
:mod:`keypoint_instruct.dataset.quality`.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keypoint_instruct.dataset import quality
from keypoint_instruct.dataset.decide import Finding, decide
from keypoint_instruct.dataset.parse import QAPair
from keypoint_instruct.errors import InputNotFoundError, UnknownImageError, UsageError
from keypoint_instruct.vocab import TASKS

logger = logging.getLogger(__name__)

__all__ = ["CONVERSATION_TURNS", "BuildStats", "image_value", "iter_rows", "response_rows"]

CONVERSATION_TURNS = ("single", "multi")


@dataclass
class BuildStats:
    """What went in and what came out of one build, for the log and the dataset card."""

    responses: Counter = field(default_factory=Counter)  # task -> responses read
    samples: Counter = field(default_factory=Counter)  # task -> rows written
    dropped: Counter = field(default_factory=Counter)  # (task, reason) -> responses or pairs dropped
    models: set = field(default_factory=set)  # teacher models of the responses read
    sample_models: Counter = field(default_factory=Counter)  # teacher model -> rows written
    sample_prompt_versions: Counter = field(default_factory=Counter)  # (task, prompt version) -> rows written
    prompt_versions: set = field(default_factory=set)
    answered: dict = field(default_factory=dict)  # task -> ids of the images with a response read
    sample_settings: Counter = field(default_factory=Counter)  # sampling settings (JSON; None: unrecorded) -> rows
    shared: Counter = field(default_factory=Counter)  # task -> answers given to a twin image (dataset.twins)
    first_created: str | None = None
    last_created: str | None = None
    cost_usd: float = 0.0
    verify_poses: bool = True  # whether the answers' pose claims were checked against the keypoints
    report: list = field(default_factory=list)  # one record per dropped response or pair (`build --report`)

    def add_response(self, response: Any) -> None:
        if getattr(response, "shared_from", None) is not None:  # a twin's copy: read and paid for once already
            self.shared[response.task] += 1
            return
        self.responses[response.task] += 1
        self.models.add(response.model)
        self.prompt_versions.add(response.prompt_version)
        self.cost_usd += float(response.cost_usd or 0.0)
        created = response.created_at
        if created:
            self.first_created = min(self.first_created or created, created)
            self.last_created = max(self.last_created or created, created)

    def merge(self, other: BuildStats) -> None:
        self.responses.update(other.responses)
        self.samples.update(other.samples)
        self.dropped.update(other.dropped)
        self.models |= other.models
        self.sample_models.update(other.sample_models)
        self.sample_prompt_versions.update(other.sample_prompt_versions)
        self.sample_settings.update(other.sample_settings)
        self.shared.update(other.shared)
        self.prompt_versions |= other.prompt_versions
        for task, image_ids in other.answered.items():
            self.answered.setdefault(task, set()).update(image_ids)
        self.cost_usd += other.cost_usd
        self.verify_poses = self.verify_poses and other.verify_poses
        self.report.extend(other.report)
        for created in (other.first_created, other.last_created):
            if created:
                self.first_created = min(self.first_created or created, created)
                self.last_created = max(self.last_created or created, created)

    def dropped_by_reason(self) -> dict[str, int]:
        """Counts per reason code over all tasks, in :data:`quality.REASONS` order (zeros included)."""
        totals = Counter()
        for (_, reason), count in self.dropped.items():
            totals[reason] += count
        return {reason: totals[reason] for reason in quality.REASONS}

    def drop(self, response: Any, finding: Finding, pair: int | None = None) -> None:
        """Count one dropped response (``pair`` None) or pair, and keep its record for the report."""
        self.dropped[(response.task, finding.reason)] += 1
        self.report.append(report_record(response, finding, pair))


def report_record(response: Any, finding: Finding, pair: int | None = None) -> dict:
    """One line of `build --report`: which response (and pair) was dropped, why, and the offending text."""
    record = {
        "response_key": response.key,
        "image_id": int(response.image_id),
        "task": response.task,
        "pair": pair,
        "reason": finding.reason,
        "span": finding.span or None,
        "start": finding.start,
        "end": finding.end,
    }
    if finding.reason == quality.POSE_CONTRADICTION:
        record.update(claim=finding.claim, person=finding.person, fact=finding.fact)
    return record


def image_value(scene: Any, coco_root: str | Path, *, embed: bool) -> dict:
    """The ``images`` entry of a scene: its path relative to the COCO root, plus the bytes when embedding."""
    relative = f"{scene.coco_split}/{scene.file_name}"
    if not embed:
        return {"bytes": None, "path": relative}
    path = Path(coco_root) / relative
    try:
        return {"bytes": path.read_bytes(), "path": relative}
    except FileNotFoundError:
        raise InputNotFoundError(f"image {path} (image id {scene.image_id}) not found; cannot embed it") from None


def _user(text: str, *, with_image: bool) -> dict:
    content = [{"type": "image", "text": None}] if with_image else []
    content.append({"type": "text", "text": text})
    return {"role": "user", "content": content}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def conversation_messages(pairs: list[QAPair]) -> list[dict]:
    """User/assistant turns for ``pairs``; the image leads the first user turn."""
    messages = []
    for i, pair in enumerate(pairs):
        messages.append(_user(pair.question, with_image=i == 0))
        messages.append(_assistant(pair.answer))
    return messages


def _row(response: Any, scene: Any, n: int, messages: list[dict], image: dict) -> dict:
    return {
        "id": f"{response.task}-{response.image_id}-{n}",
        "image_id": int(response.image_id),
        "coco_split": response.coco_split,
        "file_name": scene.file_name,
        "task": response.task,
        "messages": messages,
        "images": [image],
        "teacher_model": response.model,
        "prompt_version": response.prompt_version,
        "response_key": response.key,
    }


def response_rows(
    response: Any,
    scene: Any,
    image: dict,
    *,
    conversation_turns: str,
    instruction: Callable[[int, str], str],
    stats: BuildStats,
    verify_poses: bool = True,
) -> list[dict]:
    """The rows of one cached response (possibly none); what :func:`decide` drops is counted in ``stats``.

    ``instruction(image_id, prompt_version)`` is the instruction the teacher answered with a detailed description.
    """
    task = response.task
    decision = decide(response.text, task, scene, finish_reason=response.finish_reason, verify_poses=verify_poses)
    if decision.finding is not None:
        stats.drop(response, decision.finding)
        return []
    kept: list[tuple[int, QAPair]] = []
    for unit in decision.units:
        if unit.finding is not None:
            stats.drop(response, unit.finding, None if task == "detailed_description" else unit.index)
        else:
            question = (
                instruction(response.image_id, response.prompt_version) if unit.question is None else unit.question
            )
            kept.append((unit.index, QAPair(question, unit.answer)))
    if not kept:
        return []
    if task == "conversation" and conversation_turns == "single":
        rows = [_row(response, scene, i, conversation_messages([pair]), image) for i, pair in kept]
    else:
        rows = [_row(response, scene, 0, conversation_messages([pair for _, pair in kept]), image)]
    stats.samples[task] += len(rows)
    stats.sample_models[response.model] += len(rows)
    stats.sample_prompt_versions[(task, response.prompt_version)] += len(rows)
    stats.sample_settings[getattr(response, "settings", None)] += len(rows)
    return rows


def iter_rows(
    responses: Iterable[Any],
    scenes: Mapping[int, Any],
    *,
    coco_root: str | Path,
    conversation_turns: str = "single",
    embed_images: bool = False,
    instruction: Callable[[int, str], str],
    stats: BuildStats,
    source: str = "the cache",
    exclude_image_ids: frozenset[int] = frozenset(),
    verify_poses: bool = True,
) -> Iterator[dict]:
    """Rows of ``responses`` (ordered by task, image id), in that order.

    The images in ``exclude_image_ids`` (a benchmark's: ``build --exclude-bench``) give no row; each of their
    responses used is counted as ``benchmark_image``.

    When several responses exist for one image and task, the newest complete one (then the greatest key) is used
    and the others are counted as ``superseded``; an answer cut short is used only when no other is complete.
    A response for an image missing from ``scenes`` raises :class:`UnknownImageError`: the cache and the COCO
    split do not belong together. ``verify_poses`` checks every answer's pose claims against the keypoints.
    """
    if conversation_turns not in CONVERSATION_TURNS:
        raise UsageError(
            f"conversation_turns must be one of {', '.join(CONVERSATION_TURNS)}, not {conversation_turns!r}"
        )
    stats.verify_poses = verify_poses
    for (task, image_id), group in itertools.groupby(responses, key=lambda r: (r.task, r.image_id)):
        group = list(group)
        for response in group:
            stats.add_response(response)
        if task not in TASKS:
            continue
        stats.answered.setdefault(task, set()).add(image_id)
        scene = scenes.get(image_id)
        if scene is None:
            raise UnknownImageError(
                f"{source} has a {task} response for image id {image_id}, which is not in COCO split "
                f"{group[0].coco_split!r}; build with the COCO root and split the responses were generated from"
            )
        if image_id in exclude_image_ids:  # a benchmark's image: its answer gives no row
            stats.drop(max(group, key=lambda r: (r.created_at or "", r.key)), Finding(quality.BENCHMARK_IMAGE))
            continue
        # the newest complete answer; a newer one cut short (length, content filter, refusal) never replaces it
        newest = max(
            group, key=lambda r: (quality.response_reason(r.finish_reason) is None, r.created_at or "", r.key)
        )
        for other in group:
            if other is not newest:
                stats.drop(other, Finding(quality.SUPERSEDED))
        image = image_value(scene, coco_root, embed=embed_images)
        yield from response_rows(
            newest,
            scene,
            image,
            conversation_turns=conversation_turns,
            instruction=instruction,
            stats=stats,
            verify_poses=verify_poses,
        )
