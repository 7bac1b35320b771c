"""Write a Hub-layout dataset folder: what ``keypoint-instruct build`` does.

Takes a response cache, a COCO root and a version; runs :class:`KeypointInstruct` once per task config and gives
``<out>/<config>/train-0000N-of-0000M.parquet`` for each config with rows, ``all`` among them, plus the card
(``README.md``). The folder is written next to ``out`` and moved into place at the end, so a failed build leaves
``out`` as it was. Parquet files carry no timestamps: the same inputs and version give byte-identical files.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import datasets

from keypoint_instruct.dataset.builder import KeypointInstruct, features
from keypoint_instruct.dataset.card import ConfigSummary, check_version, render_card
from keypoint_instruct.dataset.checks import (
    check_selection,
    check_split,
    warn_missing_images,
    warn_mixed_prompt_versions,
    warn_unanswered,
)
from keypoint_instruct.dataset.exclusion import read_bench_images
from keypoint_instruct.dataset.modes import choose_context_mode
from keypoint_instruct.dataset.samples import BuildStats
from keypoint_instruct.errors import DatasetBuildError, InputNotFoundError, KeypointInstructError
from keypoint_instruct.vocab import ALL, DATASET_CONFIGS, TASKS

logger = logging.getLogger(__name__)

MAX_SHARD_BYTES = 500 * 1024 * 1024  # in-memory Arrow bytes per Parquet shard (the Hub's usual shard size)
_FOLDER_ENTRIES = {"README.md", *DATASET_CONFIGS}


def build_folder(
    *,
    coco_root: str | Path,
    coco_split: str,
    cache_path: str | Path,
    out: str | Path,
    version: str,
    overwrite: bool = False,
    conversation_turns: str = "single",
    embed_images: bool = False,
    teacher_models: Sequence[str] | None = None,
    prompt_versions: Sequence[str] | None = None,
    context_mode: str | None = None,
    exclude_benches: Sequence[str | Path] = (),
    verify_poses: bool = True,
    report: str | Path | None = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> tuple[list[ConfigSummary], BuildStats]:
    """Run the builder for every task config and write a Hub-layout dataset folder; returns (summaries, stats).

    ``all`` is written as the three task tables one after the other, which is exactly what the ``all`` config
    generates (tests/dataset/test_builder.py checks it), without parsing every response twice.
    ``teacher_models`` picks the teachers whose responses are read; a cache holding several is refused without it.
    ``prompt_versions`` picks the prompt versions likewise (several per task give a warning, not an error).
    ``context_mode`` picks the answers of one context mode; without it, answers in several modes are refused
    (:mod:`keypoint_instruct.dataset.modes`). ``exclude_benches`` are benchmark folders whose images give no row
    (:mod:`keypoint_instruct.dataset.exclusion`); the card names them.
    ``verify_poses`` drops answers whose pose claims the keypoints disprove (``pose_contradiction``); ``report``
    names a JSONL file to write one line per dropped response or pair into (:func:`write_report`).
    """
    out, coco_root, cache_path = Path(out), Path(coco_root), Path(cache_path)
    _check_inputs(version, coco_root, coco_split, cache_path)
    teacher_models = tuple(dict.fromkeys(teacher_models)) if teacher_models else None
    prompt_versions = tuple(dict.fromkeys(prompt_versions)) if prompt_versions else None
    check_selection(cache_path, coco_split, teacher_models, prompt_versions)
    choice = choose_context_mode(cache_path, coco_split, teacher_models, prompt_versions, context_mode)
    benches = [read_bench_images(path) for path in dict.fromkeys(exclude_benches)]
    excluded = sorted(set().union(*(b.image_ids for b in benches)))
    check_out(out, overwrite)
    if report is not None:
        check_report(Path(report), out)
    staging = _staging_folder(out)
    builder_kwargs = dict(
        coco_root=str(coco_root),
        coco_split=coco_split,
        cache_path=str(cache_path),
        conversation_turns=conversation_turns,
        embed_images=embed_images,
        teacher_models=teacher_models,
        prompt_versions=choice.prompt_versions,
        context_mode=choice.mode,
        exclude_image_ids=tuple(excluded),
        verify_poses=verify_poses,
        version=version,
    )
    try:
        summaries, stats, tables = _write_configs(staging, builder_kwargs, max_shard_bytes=max_shard_bytes)
        if not embed_images:
            warn_missing_images(tables, coco_root / coco_split)
        card = render_card(
            summaries,
            stats,
            version=version,
            coco_split=coco_split,
            conversation_turns=conversation_turns,
            embed_images=embed_images,
            dataset_ref=str(out),
            context_mode=choice,
            excluded_benchmarks=benches,
        )
        (staging / "README.md").write_text(card, encoding="utf-8")
        if report is not None:
            write_report(stats, Path(report))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return summaries, stats


def _check_inputs(version: str, coco_root: Path, coco_split: str, cache_path: Path) -> None:
    """One line for a bad version, a missing cache or COCO root, or a cache with nothing for the split."""
    check_version(version)
    if not cache_path.is_file():
        raise InputNotFoundError(f"response cache {cache_path} not found; run `keypoint-instruct generate` first")
    if not coco_root.is_dir():
        raise InputNotFoundError(f"COCO root {coco_root} not found")
    check_split(cache_path, coco_split)


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an --out that is a file or a folder of other files (first: --overwrite would not help), then a
    dataset folder without --overwrite."""
    if out.exists() and not out.is_dir():
        raise DatasetBuildError(f"--out {out} is a file, not a folder")
    entries = {p.name for p in out.iterdir()} if out.is_dir() else set()
    if not entries:
        return
    foreign = sorted(entries - _FOLDER_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        package = " (a Python package: a folder of code)" if "__init__.py" in entries else ""
        raise DatasetBuildError(
            f"--out {out} is not a dataset folder written by `keypoint-instruct build`: it holds {shown}{package}; "
            "pick a new or empty folder for --out"
        )
    if not overwrite:
        raise DatasetBuildError(f"--out {out} is not empty; pass --overwrite to replace the dataset folder in it")


def check_report(report: Path, out: Path) -> None:
    """Refuse a --report that is a folder, sits inside --out (the build replaces that folder) or cannot be written."""
    if report.is_dir():
        raise DatasetBuildError(f"--report {report} is a folder; give a file name such as dropped.jsonl")
    if report.resolve().is_relative_to(out.resolve()):
        raise DatasetBuildError(f"--report {report} is inside --out {out}; write the report next to the folder")
    if not report.parent.is_dir():
        raise DatasetBuildError(f"--report {report}: folder {report.parent} does not exist")


def write_report(stats: BuildStats, report: Path) -> None:
    """One JSON object per line and per dropped response or pair (see :func:`samples.report_record`), in build
    order; written next to ``report`` and moved into place, so a failed write leaves no half file."""
    partial = report.with_name(f".{report.name}.partial")
    try:
        with partial.open("w", encoding="utf-8") as handle:
            for record in stats.report:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        partial.replace(report)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise DatasetBuildError(f"cannot write --report {report}: {err.strerror or err}") from None


def _staging_folder(out: Path) -> Path:
    """A new hidden folder next to ``out`` to write the build into."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    except OSError as err:
        raise DatasetBuildError(f"cannot write the dataset folder --out {out}: {err.strerror or err}") from None


def _write_configs(
    staging: Path, builder_kwargs: dict, *, max_shard_bytes: int
) -> tuple[list[ConfigSummary], BuildStats, list]:
    """Run the builder per task into a throw-away cache and write each config with rows, then ``all``.

    Returns the summaries, the merged stats and the task tables (still readable after the cache is gone).
    """
    import pyarrow as pa

    summaries, stats = [], BuildStats()
    tables, total_bytes, empty = [], 0, []
    row_group_size = 100 if builder_kwargs["embed_images"] else 10_000
    coco_root, coco_split = builder_kwargs["coco_root"], builder_kwargs["coco_split"]
    # The card's dataset_info lists the features as datasets writes them into a card: datasets 5.2 does that with
    # the private Features._to_yaml_list (DatasetInfo._to_yaml_dict), so the same call gives the same YAML.
    yaml_features = features(builder_kwargs["embed_images"])._to_yaml_list()

    def write(name: str, table, num_bytes: int) -> None:
        paths = write_shards(table, staging / name, max_shard_bytes=max_shard_bytes, row_group_size=row_group_size)
        size = sum(p.stat().st_size for p in paths)
        summaries.append(ConfigSummary(name, table.num_rows, num_bytes, size, yaml_features))
        logger.info("%s: %d rows in %d shard(s)", name, table.num_rows, len(paths))

    with tempfile.TemporaryDirectory(prefix="keypoint-instruct-builder-") as cache_dir:
        for name in TASKS:
            builder = _run_builder(name, cache_dir, builder_kwargs)
            stats.merge(builder.stats)
            split_info = builder.info.splits.get("train") if builder.info.splits else None
            if not split_info or not split_info.num_examples:
                empty.append(name)
                continue
            table = builder.as_dataset(split="train").data.table
            write(name, table, split_info.num_bytes)
            tables.append(table)
            total_bytes += split_info.num_bytes
        if not tables:
            dropped = ", ".join(f"{n} {reason}" for reason, n in stats.dropped_by_reason().items() if n)
            raise DatasetBuildError(
                f"no usable {coco_split} responses in {builder_kwargs['cache_path']} "
                f"(read {sum(stats.responses.values())}, dropped: {dropped or 'none'})"
            )
        for name in empty:  # said only when the build goes on without them
            logger.warning("config %s has no rows; it is left out of the folder", name)
        warn_mixed_prompt_versions(stats)
        warn_unanswered(stats, coco_root, coco_split)
        write(ALL, pa.concat_tables(tables), total_bytes)
    return summaries, stats, tables


def _run_builder(name: str, cache_dir: str, builder_kwargs: dict) -> KeypointInstruct:
    """Config ``name`` prepared in ``cache_dir``; a domain error inside datasets' generation comes out as itself."""
    builder = KeypointInstruct(config_name=name, cache_dir=cache_dir, **builder_kwargs)
    try:
        builder.download_and_prepare()
    except datasets.exceptions.DatasetGenerationError as err:
        raise _unwrap(err) from None
    return builder


def _unwrap(err: Exception) -> Exception:
    """The domain error behind a ``DatasetGenerationError``, if there is one."""
    cause = err
    while cause is not None:
        if isinstance(cause, KeypointInstructError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return err


def write_shards(table, folder: Path, *, max_shard_bytes: int, row_group_size: int) -> list[Path]:
    """Contiguous Parquet shards of ``table``, named like the Hub's: train-00000-of-00002.parquet."""
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    num_shards = max(1, -(-table.nbytes // max_shard_bytes))
    per_shard = -(-table.num_rows // num_shards) if table.num_rows else 0
    if per_shard:  # 5 rows over 4 shards is 2 per shard: 3 shards, none empty
        num_shards = -(-table.num_rows // per_shard)
    paths = []
    for index in range(num_shards):
        path = folder / f"train-{index:05d}-of-{num_shards:05d}.parquet"
        part = table.slice(index * per_shard, per_shard) if per_shard else table
        pq.write_table(part, path, row_group_size=row_group_size, compression="zstd")
        paths.append(path)
    return paths
