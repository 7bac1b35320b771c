"""What a folder build checks before it runs the builder, and the warnings it gives about what it built.

Before: the response cache holds the split, one teacher model (or the ones asked for), and the asked-for prompt
versions; each refusal is a :class:`DatasetBuildError` naming the cache and what it does hold. After: one warning per
task whose rows mix prompt versions, one when selected images have no response, one when images the rows refer to
are not under the COCO root. Nothing here writes a file.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from keypoint_instruct.dataset.builder import split_scenes
from keypoint_instruct.dataset.samples import BuildStats
from keypoint_instruct.errors import DatasetBuildError
from keypoint_instruct.vocab import CONTEXT_MODES, TASKS

logger = logging.getLogger(__name__)


def check_split(cache_path: Path, coco_split: str) -> None:
    """One clear line when the cache has nothing for ``coco_split`` (before any builder runs)."""
    from keypoint_instruct.llm.store.cache import ResponseCache

    with ResponseCache(cache_path) as cache:
        held = cache.splits()
        if coco_split in held:
            return
        failed = cache.failed_keys(coco_split)
    has = ", ".join(f"{split} ({n} responses)" for split, n in held.items())
    has = f"it has: {has}" if has else "it is empty" if not failed else "it has no responses at all"
    if failed:
        what = (
            f"1 failed request for {coco_split} is"
            if failed == 1
            else f"{failed:,} failed requests for {coco_split} are"
        )
        has += f"; {what} recorded: run `keypoint-instruct generate` again"
    raise DatasetBuildError(f"the cache {cache_path} holds no responses for {coco_split} ({has})")


def check_selection(
    cache_path: Path, coco_split: str, teacher_models: tuple[str, ...] | None, prompt_versions: tuple[str, ...] | None
) -> None:
    """Refuse to mix teacher models unasked, and a ``--teacher-model`` or ``--prompt-version`` without responses.

    Where several models answered one image, the newest answer is used: without this check, an offline-teacher run
    into a cache of paid GPT-4o answers silently replaced them.
    """
    from keypoint_instruct.llm.store.cache import ResponseCache

    counts = {"model": Counter(), "prompt_version": Counter()}
    with ResponseCache(cache_path) as cache:
        for model, prompt_version, n in cache.answer_sources(coco_split, TASKS):
            counts["model"][model] += n
            counts["prompt_version"][prompt_version] += n
    for column, what, wanted in (
        ("model", "teacher model", teacher_models),
        ("prompt_version", "prompt version", prompt_versions),
    ):
        held = counts[column]
        unknown = [value for value in wanted or () if value not in held]
        if unknown:
            has = ", ".join(f"{value}: {n}" for value, n in sorted(held.items()))
            raise DatasetBuildError(
                f"the cache {cache_path} has no {coco_split} responses of {what} {', '.join(unknown)} "
                f"(it has {has or 'none'})"
            )
    held = counts["model"]
    has = ", ".join(f"{model}: {n}" for model, n in sorted(held.items()))
    if not teacher_models and len(held) > 1:
        raise DatasetBuildError(
            f"the cache {cache_path} holds {coco_split} responses of {len(held)} teacher models ({has}); pass "
            "--teacher-model to build from one (repeat it to mix them on purpose: the newest answer per image wins)"
        )


def warn_mixed_prompt_versions(stats: BuildStats) -> None:
    """One warning per task whose rows come from several prompt versions (context modes, edited prompts)."""
    from keypoint_instruct.teacher.templates import load_prompt

    for task in TASKS:
        versions = {v: n for (t, v), n in sorted(stats.sample_prompt_versions.items()) if t == task}
        if len(versions) > 1:
            current = {load_prompt(task, mode).version: mode for mode in CONTEXT_MODES}
            logger.warning(
                "%s rows come from %d prompt versions (%s): the newest answer per image was used; pass "
                "--prompt-version to build from one (each context mode and each prompt edit has its own)",
                task,
                len(versions),
                ", ".join(f"{v} ({current.get(v, 'an earlier prompt')}): {n:,}" for v, n in versions.items()),
            )


def warn_unanswered(stats: BuildStats, coco_root: str | Path, coco_split: str) -> None:
    """One warning when images `generate` selects have no response for a task it answered others of (a shard's
    cache built alone, a run stopped early): the build would quietly hold part of the split."""
    missing: dict[int, list[str]] = {}  # images without a response -> the tasks that lack them
    selected = _selected_ids(coco_root, coco_split)
    for task in TASKS:
        answered = stats.answered.get(task)
        count = sum(1 for image_id in selected if image_id not in answered) if answered else 0
        if count:
            missing.setdefault(count, []).append(task)
    if missing:
        (first, tasks), *others = missing.items()
        said = f"{first:,} selected images of {coco_split} have no response for task {', '.join(tasks)}"
        said += "".join(f"; {count:,} for task {', '.join(tasks)}" for count, tasks in others)
        logger.warning("%s (a shard not merged? run `cache merge`)", said)


def _selected_ids(coco_root: str | Path, coco_split: str) -> Sequence[int]:
    """The image ids `generate` selects by default (every image with a person with a labelled keypoint)."""
    from keypoint_instruct.coco.context import select_scenes

    return [scene.image_id for scene in select_scenes(split_scenes(coco_root, coco_split))]


def warn_missing_images(tables: list, image_dir: Path) -> None:
    """One warning when images the rows point to are not in ``image_dir``: the build needs none, training does."""
    names = sorted({name for table in tables for name in table.column("file_name").to_pylist()})
    missing = [name for name in names if not (image_dir / name).is_file()]
    if missing:
        logger.warning(
            "%d of the %d images the rows refer to are not in %s (first: %s); training reads them from there "
            "(train_sft.py --coco_root), so copy them in before training",
            len(missing),
            len(names),
            image_dir,
            missing[0],
        )
