"""The dataset folder's card: rendered from ``dataset_card.md``, read back, and adapted for a Hub repo.

A dataset folder is the Hub layout: ``<config>/train-*.parquet`` and a README.md whose YAML front matter lists
every config under ``configs:`` (``datasets`` reads that block to find the configs; a card without it breaks
``load_dataset(repo, config)``).
"""

from __future__ import annotations

import json
import re
import shlex
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from keypoint_instruct.dataset.quality import REASON_DESCRIPTIONS, REASONS
from keypoint_instruct.errors import DatasetBuildError, InputNotFoundError, UsageError
from keypoint_instruct.vocab import ALL, OFFLINE_TEACHER_MODEL, TASKS


def _card_template() -> Path:
    """The card template: at the repo root in a checkout, under <prefix>/share/keypoint-instruct when installed."""
    in_checkout = Path(__file__).resolve().parents[2] / "dataset_card.md"
    installed = Path(sys.prefix) / "share" / "keypoint-instruct" / "dataset_card.md"
    return in_checkout if in_checkout.exists() else installed


CARD_TEMPLATE = _card_template()
PRETTY_NAME = "Keypoint-Instruct"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_SAMPLE_SHAPES = {
    "conversation": "a question about the people in the image and its answer",
    "detailed_description": "a pose-focused instruction and a detailed description",
    "complex_reasoning": "a question that needs reasoning and its answer",
    ALL: "any of the above",
}


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated values out in full: the four configs share one features list, and `&id001`/`*id001` anchors
    would make the card's YAML hard to read for a person and for the Hub's metadata tools."""

    def ignore_aliases(self, data) -> bool:
        return True


def check_version(version: str) -> str:
    """``version`` if it is X.Y.Z (semantic versioning, no prefix), else a :class:`UsageError`."""
    if not SEMVER.match(version or ""):
        raise UsageError(f"version must look like X.Y.Z (for example 1.0.0), not {version!r}")
    return version


@dataclass(frozen=True)
class ConfigSummary:
    """One written config: its name, row count, bytes in memory, Parquet bytes and features (YAML list)."""

    name: str
    num_examples: int
    num_bytes: int
    download_size: int
    features: list


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def front_matter(configs: list[ConfigSummary], *, synthetic: bool, records: dict | None = None) -> dict:
    """The card's YAML metadata: configs (``all`` is the default), dataset_info, license, categories, tags, and
    ``records`` (keypoint-instruct's own: context mode, excluded benchmarks) under ``keypoint_instruct``."""
    total = next((c.num_examples for c in configs if c.name == ALL), sum(c.num_examples for c in configs))
    tags = ["human-pose", "keypoints", "human-action", "coco", "instruction-tuning", "llava", "vision-language"]
    if synthetic:
        tags.append("synthetic")
    return {
        "pretty_name": PRETTY_NAME,
        "license": "cc-by-4.0",
        "language": ["en"],
        "task_categories": ["image-text-to-text", "visual-question-answering"],
        "tags": tags,
        "size_categories": [_size_category(total)],
        "configs": [
            {
                "config_name": c.name,
                "data_files": [{"split": "train", "path": f"{c.name}/train-*"}],
                **({"default": True} if c.name == ALL else {}),
            }
            for c in configs
        ],
        "dataset_info": [
            {
                "config_name": c.name,
                "features": c.features,
                "splits": [{"name": "train", "num_bytes": c.num_bytes, "num_examples": c.num_examples}],
                "download_size": c.download_size,
                "dataset_size": c.num_bytes,
            }
            for c in configs
        ],
        **({"keypoint_instruct": records} if records else {}),
    }


def _sampling(counts: Any) -> str:
    """Rows per sampling settings (JSON strings; None where the cache did not record them), most rows first."""
    from keypoint_instruct.llm.request import describe_sampling

    parts = []
    for settings, n in sorted(counts.items(), key=lambda item: (-item[1], item[0] or "")):
        said = (
            f"`{describe_sampling(json.loads(settings))}`"
            if settings
            else "not recorded (answered before the cache kept them)"
        )
        parts.append(f"{said} ({n:,} samples)")
    return "; ".join(parts) or "none"


def _benchmarks(benches: Any, dropped: int) -> str:
    if not benches:
        return "none (`keypoint-instruct build --exclude-bench BENCH_DIR` leaves a benchmark's images out)"
    named = ", ".join(
        f"{b.name} `{b.content_id}` ({len(b.image_ids):,} `{b.coco_split}` images, built in `{b.root}`)"
        for b in benches
    )
    return f"{named}; {dropped:,} responses about their images dropped (`benchmark_image` below)"


def _provenance(configs: list[ConfigSummary], stats: Any, *, synthetic: bool, context_mode: Any, benches: Any) -> dict:
    """The card's front matter, and its values about how the answers were asked: context mode, sampling, benchmarks
    left out, responses read (the front matter records the mode and the benchmarks too, for train_sft.py)."""
    shared = sum(stats.shared.values())
    records = {
        "context_mode": getattr(context_mode, "mode", None),
        "excluded_benchmarks": [bench.record() for bench in benches],
    }
    head = front_matter(configs, synthetic=synthetic, records=records)
    return {
        "front_matter": yaml.dump(head, Dumper=_PlainDumper, sort_keys=False, width=1000),
        "context_mode": context_mode.card_text() if context_mode is not None else "not recorded",
        "sampling": _sampling(stats.sample_settings),
        "excluded_benchmarks": _benchmarks(benches, stats.dropped_by_reason().get("benchmark_image", 0)),
        "responses_total": f"{sum(stats.responses.values()):,}"
        + (f" ({shared:,} of them also answer another image with the very same context)" if shared else ""),
    }


def _prompt_versions(counts: Any) -> str:
    """``(task, version) -> rows`` as "`task`: `v1` (n samples), `v2` (m samples); ..." in task order."""
    parts = []
    for task in sorted({t for t, _ in counts}, key=lambda t: (TASKS.index(t) if t in TASKS else len(TASKS), t)):
        versions = sorted((v, n) for (t, v), n in counts.items() if t == task)
        parts.append(f"`{task}`: " + ", ".join(f"`{v}` ({n:,} samples)" for v, n in versions))
    return "; ".join(parts) or "none"


def _day_time(stamp: str) -> str:
    """``2026-11-28T19:27:48.652582+00:00`` -> ``2026-11-28 19:27:48``."""
    return stamp.replace("T", " ")[:19]


def _filter_table(dropped: dict[str, int]) -> str:
    """One table row per reason code: the count and what it means."""
    return "\n".join(f"| `{r}` | {dropped[r]:,} | {REASON_DESCRIPTIONS[r]} |" for r in REASONS)


def _verification(verified: bool) -> str:
    """The card's line on pose verification (``build`` runs it unless ``--no-verify-poses``)."""
    if not verified:
        return "off (`build --no-verify-poses`). The answers' pose claims were not checked against the keypoints"
    return (
        "on. Each answer's pose claims (posture, arms, lean, facing, legs, ...) were checked against the keypoints, "
        "and an answer whose claim they disprove was dropped (`pose_contradiction`); claims that 2-D keypoints "
        "cannot decide were kept"
    )


def render_card(
    configs: list[ConfigSummary],
    stats: Any,
    *,
    version: str,
    coco_split: str,
    conversation_turns: str,
    embed_images: bool,
    dataset_ref: str,
    template: Path = CARD_TEMPLATE,
    context_mode: Any = None,
    excluded_benchmarks: Any = (),
) -> str:
    """README.md text for a dataset folder; ``stats`` is the build's :class:`samples.BuildStats`.

    ``context_mode`` is the build's :class:`~keypoint_instruct.dataset.modes.ModeChoice`, ``excluded_benchmarks``
    the :class:`~keypoint_instruct.dataset.exclusion.BenchImages` left out. ``dataset_ref`` is what the card's
    examples pass to ``load_dataset``: the folder itself until ``push`` turns it into the Hub repo id.
    """
    synthetic = OFFLINE_TEACHER_MODEL in stats.sample_models
    total = sum(stats.sample_models.values())
    values = {
        **_provenance(configs, stats, synthetic=synthetic, context_mode=context_mode, benches=excluded_benchmarks),
        "pretty_name": PRETTY_NAME,
        "version": version,
        "synthetic_notice": (
            "> **Synthetic offline data.** "
            + (
                f"The teacher of this build is `{OFFLINE_TEACHER_MODEL}`"
                if len(stats.sample_models) == 1
                else f"{stats.sample_models[OFFLINE_TEACHER_MODEL]:,} of the {total:,} samples come from "
                f"`{OFFLINE_TEACHER_MODEL}`"
            )
            + ", a deterministic program that writes text from the captions and computed pose facts without any "
            "language model. It exists to test the pipeline end to end; do not train a model you care about on it."
            "\n\n"
            if synthetic
            else ""
        ),
        "config_table": "\n".join(
            f"| `{c.name}` | {c.num_examples:,} | {_SAMPLE_SHAPES.get(c.name, '')} |" for c in configs
        ),
        "conversation_shape": (
            "one question and its answer per row (the paper counts conversation samples this way)"
            if conversation_turns == "single"
            else "all kept questions about one image in one multi-turn row"
        ),
        "coco_split": coco_split,
        "image_note": "; the image bytes are embedded too" if embed_images else "",
        "teacher_models": ", ".join(f"`{m}` ({n:,} samples)" for m, n in sorted(stats.sample_models.items()))
        or "none",
        "prompt_versions": _prompt_versions(stats.sample_prompt_versions),
        "date_range": (
            f"{_day_time(stats.first_created)} to {_day_time(stats.last_created)}"
            if stats.first_created
            else "unknown (no timestamps)"
        ),
        "spend": f"${stats.cost_usd:,.2f} (sum of the cached responses' `cost_usd`)",
        "verification": _verification(stats.verify_poses),
        "filter_table": _filter_table(stats.dropped_by_reason()),
        "image_usage": (
            'Images are embedded: `ds[0]["images"][0]` is a PIL image.'
            if embed_images
            else "Images are stored by path, relative to a COCO root, and are not decoded: "
            '`ds[0]["images"][0]` is `{"bytes": None, "path": "' + coco_split + '/<file_name>"}`. Get the '
            "images from https://cocodataset.org and open `<coco_root>/<path>` (`keypoint_instruct.training.images."
            "resolve_image` does this)."
        ),
        "image_terms": (
            "This build embeds copies of the images for convenience; the COCO terms apply to those copies."
            if embed_images
            else "The images are not part of this dataset."
        ),
        "dataset_ref": dataset_ref,
        "dataset_ref_shell": shlex.quote(dataset_ref),  # a folder path with spaces stays one word
    }
    try:
        return string.Template(template.read_text("utf-8")).substitute(values)
    except (KeyError, ValueError) as err:
        raise DatasetBuildError(f"card template {template} has an unknown or malformed placeholder: {err}") from None


def configs_in(text: str, source: Path) -> list[str]:
    """Config names under ``configs:`` in a card's YAML front matter; a card without them is refused."""
    from huggingface_hub import DatasetCard

    try:
        data = DatasetCard(text).data.to_dict()
    except (ValueError, yaml.YAMLError) as err:
        problem = " ".join(str(err).split())  # YAML errors span several lines; the CLI prints one
        raise DatasetBuildError(f"{source} has unreadable YAML front matter ({problem}); rebuild the folder") from None
    names = [c.get("config_name") for c in data.get("configs") or [] if isinstance(c, dict)]
    if not names:
        raise DatasetBuildError(f"{source} has no `configs:` block in its YAML front matter; rebuild the folder")
    return names


def card_configs(folder: Path) -> list[str]:
    """Config names listed under ``configs:`` in ``folder``/README.md; a folder without them is refused."""
    readme = folder / "README.md"
    if not readme.is_file():
        raise InputNotFoundError(f"{readme} not found: {folder} is not a dataset folder written by `build`")
    return configs_in(readme.read_text("utf-8"), readme)


_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
_DATASET_REF = re.compile(r'load_dataset\("(?P<ref>[^"]+)"')
CARD_VERSION = re.compile(r"^# .* \(v(?P<version>[^)\s]+)\)[ \t]*$", re.MULTILINE)


def card_for_repo(text: str, repo_id: str) -> str:
    """The card text with its dataset reference (the folder path `build` wrote) turned into ``repo_id``.

    Only the body changes; the YAML front matter, and so the ``configs:`` block, is kept byte for byte.
    """
    head = _FRONT_MATTER.match(text)
    head, body = (text[: head.end()], text[head.end() :]) if head else ("", text)
    found = _DATASET_REF.search(body)
    if found and found.group("ref") != repo_id:
        old = found.group("ref")
        body = body.replace(f'"{old}"', f'"{repo_id}"')
        for shell_word in {shlex.quote(old), old}:
            body = body.replace(f"--dataset_name {shell_word} ", f"--dataset_name {shlex.quote(repo_id)} ")
    return head + body
