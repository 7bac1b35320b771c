"""Publishing a dataset folder to the Hugging Face Hub with a version tag, and the LLaVA-Instruct export.

The folder's card is :mod:`keypoint_instruct.dataset.card`'s business; this module uploads the folder in one commit,
tags it, and never writes a card that drops the ``configs:`` block.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

from keypoint_instruct.dataset.card import CARD_VERSION, card_configs, card_for_repo, check_version, configs_in
from keypoint_instruct.errors import DatasetBuildError, HubError, InputNotFoundError, UsageError

logger = logging.getLogger(__name__)

# Remote data files removed in the commit that uploads a new version (the folder's own files are then added): an
# earlier version's shards (train-00001-of-00002 when this one has one shard) or configs this one lacks would
# otherwise stay, and the card's `<config>/train-*` globs would read them as part of this version.
DELETE_PATTERNS = ["*.parquet"]


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


def push(folder: str | Path, repo_id: str, version: str, *, private: bool = False, dry_run: bool = False) -> dict:
    """Upload a dataset folder to ``repo_id`` in one commit and tag it ``v<version>``.

    The commit also removes the repo's Parquet files that the folder does not have, so the tagged revision holds
    exactly this version's data.

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
    built = CARD_VERSION.search(text)
    if built and built.group("version") != version:
        raise UsageError(
            f"{folder} was built as version {built.group('version')}, not {version}: push it with --version "
            f"{built.group('version')}, or rebuild it with --version {version}"
        )
    card = card_for_repo(text, repo_id)
    if configs_in(card, readme) != configs:  # never publish a card that lost its configs
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
            commit = api.upload_folder(
                repo_id=repo_id,
                repo_type="dataset",
                folder_path=str(folder),
                commit_message=f"keypoint-instruct {tag}",
                delete_patterns=DELETE_PATTERNS,
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
