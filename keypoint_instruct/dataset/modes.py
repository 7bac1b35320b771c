"""One context mode per build: which mode the answers of a cache were asked in, and which the build uses.

A cache may hold answers for the same images in both context modes (``paper`` and ``paper+facts``: the prompt
version differs, so both are kept). Built together, the newest answer per image and task would win whatever its
mode, and the dataset would silently mix them. :func:`choose_context_mode` refuses a mix unless ``--context`` picks
one, as ``--teacher-model`` does for models. Each answer's mode comes from its prompt version
(:mod:`keypoint_instruct.teacher.catalogue`: the versions the cache recorded and those of the installed prompt
files); a version neither describes (an answer of an earlier keypoint-instruct) has no known mode: it joins a build
of the one known mode with a warning, and ``--context`` leaves it out.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from keypoint_instruct.errors import DatasetBuildError
from keypoint_instruct.vocab import TASKS

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"  # how a count of answers without a known mode is shown


@dataclass(frozen=True)
class ModeChoice:
    """The build's context mode and the prompt versions it reads."""

    mode: str | None  # None: only answers whose mode nothing records
    prompt_versions: tuple[str, ...] | None  # the versions to read (None: all, as the selection stands)
    counts: dict[str, int]  # answers of the selection per mode (UNKNOWN for no known mode)
    unknown_read: int = 0  # answers of unknown mode the build reads along with the known mode's

    def card_text(self) -> str:
        """How the card names the mode: ``paper``, or with the count of answers of unknown mode."""
        if self.mode is None:
            return "unknown (answers of prompt versions from before the cache recorded their context mode)"
        extra = (
            f" ({self.unknown_read:,} answers of an unrecorded prompt version read too)" if self.unknown_read else ""
        )
        return f"`{self.mode}`{extra}"


def _said(counts: Counter) -> str:
    return ", ".join(f"{mode}: {n:,}" for mode, n in sorted(counts.items()))


def choose_context_mode(
    cache_path: Path,
    coco_split: str,
    teacher_models: Sequence[str] | None,
    prompt_versions: Sequence[str] | None,
    context_mode: str | None,
) -> ModeChoice:
    """The context mode of the build and the prompt versions to read; a mix without ``context_mode`` is refused."""
    from keypoint_instruct.llm.store.cache import ResponseCache
    from keypoint_instruct.teacher.catalogue import known_prompts

    per_version: Counter = Counter()
    with ResponseCache(cache_path) as cache:
        known = known_prompts(cache)
        for model, version, n in cache.answer_sources(coco_split, TASKS):
            if (not teacher_models or model in teacher_models) and (not prompt_versions or version in prompt_versions):
                per_version[version] += n
    modes = {version: known.context_mode(version) or UNKNOWN for version in per_version}
    counts: Counter = Counter()
    for version, n in per_version.items():
        counts[modes[version]] += n
    if context_mode is not None:
        chosen = tuple(sorted(v for v, mode in modes.items() if mode == context_mode))
        if not chosen:
            raise DatasetBuildError(
                f"the cache {cache_path} has no {coco_split} answers in context mode {context_mode} among those "
                f"selected (it has {_said(counts) or 'none'})"
            )
        left = sum(n for mode, n in counts.items() if mode != context_mode)
        if left:
            logger.info("--context %s: %d answers of other or unknown context modes are left out", context_mode, left)
        return ModeChoice(context_mode, chosen, dict(counts))
    known_modes = sorted(mode for mode in counts if mode != UNKNOWN)
    if len(known_modes) > 1:
        raise DatasetBuildError(
            f"the cache {cache_path} holds {coco_split} answers in several context modes ({_said(counts)}); pass "
            f"--context {' or --context '.join(known_modes)} to build from one (a dataset mixes no modes)"
        )
    if known_modes and counts.get(UNKNOWN):
        logger.warning(
            "%d answers come from prompt versions this cache has no record of (an earlier keypoint-instruct): "
            "their context mode is unknown and they are built with the %d %s answers; pass --context %s to leave "
            "them out",
            counts[UNKNOWN],
            counts[known_modes[0]],
            known_modes[0],
            known_modes[0],
        )
    chosen_versions = tuple(prompt_versions) if prompt_versions else None
    mode = known_modes[0] if known_modes else None
    return ModeChoice(mode, chosen_versions, dict(counts), counts.get(UNKNOWN, 0) if mode else 0)
