"""The dataset folder's card, publishing it to the Hugging Face Hub with a version tag, and LLaVA export.

A dataset folder is the Hub layout: ``<config>/train-*.parquet`` and a README.md whose YAML front matter lists
every config under ``configs:`` (``datasets`` reads that block to find the configs; a card without it breaks
``load_dataset(repo, config)``). The card body is rendered from ``dataset_card.md``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import string
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from keypoint_instruct.errors import DatasetBuildError, HubError, InputNotFoundError, UsageError
from keypoint_instruct.quality import REASON_DESCRIPTIONS, REASONS

logger = logging.getLogger(__name__)


def _card_template() -> Path:
    """The card template: at the repo root in a checkout, under <prefix>/share/keypoint-instruct when installed."""
    in_checkout = Path(__file__).resolve().parent.parent / "dataset_card.md"
    installed = Path(sys.prefix) / "share" / "keypoint-instruct" / "dataset_card.md"
    return in_checkout if in_checkout.exists() else installed


CARD_TEMPLATE = _card_template()
OFFLINE_MODEL = "offline-posefacts"
PRETTY_NAME = "Keypoint-Instruct"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_SAMPLE_SHAPES = {
    "conversation": "a question about the people in the image and its answer",
    "detailed_description": "a pose-focused instruction and a detailed description",
    "complex_reasoning": "a question that needs reasoning and its answer",
    "all": "any of the above",
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


def front_matter(configs: list[ConfigSummary], *, synthetic: bool) -> dict:
    """The card's YAML metadata: configs (``all`` is the default), dataset_info, license, categories, tags."""
    total = next((c.num_examples for c in configs if c.name == "all"), sum(c.num_examples for c in configs))
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
                **({"default": True} if c.name == "all" else {}),
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
    }


def _day_time(stamp: str) -> str:
    """``2026-11-28T19:27:48.652582+00:00`` -> ``2026-11-28 19:27:48``."""
    return stamp.replace("T", " ")[:19]


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
) -> str:
    """README.md text for a dataset folder; ``stats`` is the build's :class:`samples.BuildStats`.

    ``dataset_ref`` is what the card's examples pass to ``load_dataset``: the folder itself until ``push`` turns it
    into the Hub repo id.
    """
    synthetic = OFFLINE_MODEL in stats.models
    dropped = stats.dropped_by_reason()
    values = {
        "front_matter": yaml.dump(
            front_matter(configs, synthetic=synthetic), Dumper=_PlainDumper, sort_keys=False, width=1000
        ),
        "pretty_name": PRETTY_NAME,
        "version": version,
        "synthetic_notice": (
            "> **Synthetic offline data.** The teacher of this build is `offline-posefacts`, a deterministic "
            "program that writes text from the captions and computed pose facts without any language model. It "
            "exists to test the pipeline end to end; do not train a model you care about on it.\n\n"
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
        "teacher_models": ", ".join(f"`{m}`" for m in sorted(stats.models)) or "none",
        "prompt_versions": ", ".join(f"`{v}`" for v in sorted(stats.prompt_versions)) or "none",
        "date_range": (
            f"{_day_time(stats.first_created)} to {_day_time(stats.last_created)}"
            if stats.first_created
            else "unknown (no timestamps)"
        ),
        "responses_total": f"{sum(stats.responses.values()):,}",
        "spend": f"${stats.cost_usd:,.2f} (sum of the cached responses' `cost_usd`)",
        "filter_table": "\n".join(f"| `{r}` | {dropped[r]:,} | {REASON_DESCRIPTIONS[r]} |" for r in REASONS),
        "image_usage": (
            'Images are embedded: `ds[0]["images"][0]` is a PIL image.'
            if embed_images
            else "Images are stored by path, relative to a COCO root, and are not decoded: "
            '`ds[0]["images"][0]` is `{"bytes": None, "path": "' + coco_split + '/<file_name>"}`. Get the '
            "images from https://cocodataset.org and open `<coco_root>/<path>` (`keypoint_instruct.images."
            "resolve_image` does this)."
        ),
        "image_terms": (
            "This build embeds copies of the images for convenience; the COCO terms apply to those copies."
            if embed_images
            else "The images are not part of this dataset."
        ),
        "dataset_ref": dataset_ref,
    }
    try:
        return string.Template(template.read_text("utf-8")).substitute(values)
    except (KeyError, ValueError) as err:
        raise DatasetBuildError(f"card template {template} has an unknown or malformed placeholder: {err}") from None


def _configs_in(text: str, source: Path) -> list[str]:
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
    return _configs_in(readme.read_text("utf-8"), readme)


def export_llava(folder: str | Path, config: str, out: str | Path) -> int:
    """Write ``config`` of a dataset folder as LLaVA-Instruct-150K JSON; returns the number of samples."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    names = card_configs(folder)
    if config not in names:
        raise UsageError(f"unknown config {config!r}; {folder} has {', '.join(names)}")
    files = sorted((folder / config).glob("train-*.parquet"))
    if not files:
        raise DatasetBuildError(f"no Parquet files under {folder / config}")
    records = []
    for file in files:
        for row in pq.read_table(file, columns=["id", "file_name", "messages"]).to_pylist():
            conversations = []
            for message in row["messages"]:
                text = "".join(part["text"] or "" for part in message["content"] if part["type"] == "text")
                has_image = any(part["type"] == "image" for part in message["content"])
                speaker = "human" if message["role"] == "user" else "gpt"
                conversations.append({"from": speaker, "value": f"<image>\n{text}" if has_image else text})
            records.append({"id": row["id"], "image": row["file_name"], "conversations": conversations})
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as f:
            json.dump(records, f, ensure_ascii=False, indent=1)
    except OSError as err:
        raise UsageError(f"cannot write --out {out}: {err.strerror or err}") from None
    return len(records)


def folder_files(folder: Path) -> list[str]:
    """Every file the push uploads, relative to ``folder``, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _token() -> str:
    token = os.environ.get("HF_TOKEN")
    if not token:
        from huggingface_hub import get_token

        token = get_token()
    if not token:
        raise HubError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    return token


_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
_DATASET_REF = re.compile(r'load_dataset\("(?P<ref>[^"]+)"')
_CARD_VERSION = re.compile(r"^# .* \(v(?P<version>[^)\s]+)\)[ \t]*$", re.MULTILINE)


def card_for_repo(text: str, repo_id: str) -> str:
    """The card text with its dataset reference (the folder path `build` wrote) turned into ``repo_id``.

    Only the body changes; the YAML front matter, and so the ``configs:`` block, is kept byte for byte.
    """
    head = _FRONT_MATTER.match(text)
    head, body = (text[: head.end()], text[head.end() :]) if head else ("", text)
    found = _DATASET_REF.search(body)
    if found and found.group("ref") != repo_id:
        old = found.group("ref")
        body = body.replace(f'"{old}"', f'"{repo_id}"').replace(f"--dataset_name {old} ", f"--dataset_name {repo_id} ")
    return head + body


def push(folder: str | Path, repo_id: str, version: str, *, private: bool = False, dry_run: bool = False) -> dict:
    """Upload a dataset folder to ``repo_id`` in one commit and tag it ``v<version>``.

    Refuses a version whose tag exists, a version other than the one the folder was built as, and ``private`` for
    a repo that already exists as public. The uploaded card names ``repo_id`` in its examples; the folder's own
    README.md is left as it was. Returns what was (or, with ``dry_run``, would be) done; a dry run makes no network
    call and needs no token.
    """
    folder = Path(folder)
    check_version(version)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id or ""):
        raise UsageError(f"repo id must look like ORG/NAME, not {repo_id!r}")
    if not folder.is_dir():
        raise InputNotFoundError(f"dataset folder {folder} not found")
    readme = folder / "README.md"
    configs = card_configs(folder)
    text = readme.read_text("utf-8")
    built = _CARD_VERSION.search(text)
    if built and built.group("version") != version:
        raise UsageError(
            f"{folder} was built as version {built.group('version')}, not {version}: push it with --version "
            f"{built.group('version')}, or rebuild it with --version {version}"
        )
    card = card_for_repo(text, repo_id)
    if _configs_in(card, readme) != configs:  # never publish a card that lost its configs
        raise HubError(f"rewriting {readme} for {repo_id} lost its `configs:` block; nothing was pushed")
    tag = f"v{version}"
    plan = {"repo_id": repo_id, "tag": tag, "configs": configs, "files": folder_files(folder), "private": private}
    if dry_run:
        return plan

    from huggingface_hub import HfApi

    api = HfApi(token=_token())
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if private and not api.repo_info(repo_id, repo_type="dataset").private:
            raise HubError(
                f"{repo_id} already exists and is public; --private does not change an existing repo. Make it "
                "private on the Hub first, or push without --private"
            )
        refs = api.list_repo_refs(repo_id, repo_type="dataset")
        if any(t.name == tag for t in refs.tags):
            raise HubError(f"{repo_id} already has tag {tag}; bump the version (tags are never moved)")
        readme.write_text(card, encoding="utf-8")  # the card the Hub gets; the folder's own card is put back below
        try:
            commit_message = f"keypoint-instruct {tag}"
            commit = api.upload_folder(
                repo_id=repo_id, repo_type="dataset", folder_path=str(folder), commit_message=commit_message
            )
        finally:
            readme.write_text(text, encoding="utf-8")
        revision = getattr(commit, "oid", None)
        api.create_tag(
            repo_id, tag=tag, repo_type="dataset", revision=revision, tag_message=f"keypoint-instruct {tag}"
        )
    except HubError:
        raise
    except Exception as err:  # the Hub's HTTP and connection errors come in many types; report them in one line
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise HubError(f"pushing {folder} to {repo_id} failed: {message}") from None
    logger.info("pushed %s to %s at %s (%s)", folder, repo_id, tag, revision)
    return {**plan, "commit": revision}
