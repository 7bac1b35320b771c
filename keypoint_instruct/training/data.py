"""The training data: configs of a dataset folder or Hub repo, loaded, mixed and checked before any model loads.

Takes a dataset name (a folder written by ``keypoint-instruct build`` or a Hub repo id), the configs to mix and a
revision; gives one ``datasets.Dataset`` with ``messages`` and undecoded ``images``, or a one-line
:class:`TrainingConfigError` that names the dataset and says what was expected. Heavy libraries are imported inside
the functions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

from keypoint_instruct.errors import TrainingConfigError
from keypoint_instruct.training.images import MAX_MISSING_SHOWN

logger = logging.getLogger(__name__)


def load_sft_dataset(name: str, configs: Sequence[str], *, revision: str | None = None, split: str = "train"):
    """Load and concatenate the requested configs of a dataset folder or Hub repo; refuse unknown configs."""
    from datasets import concatenate_datasets

    path = Path(name)
    if (name.startswith((".", "/")) or path.exists()) and not path.is_dir():
        raise TrainingConfigError(f"dataset folder not found: {name} (expected <config>/train-*.parquet + README.md)")
    if revision is not None and path.is_dir():
        raise TrainingConfigError(
            f"dataset_revision {revision} applies to a Hub repo, but {name} is a local folder (it has no revisions): "
            "pass the Hub repo id, or drop dataset_revision and point dataset_name at the version's folder"
        )
    if path.is_dir():
        _check_dataset_folder(name)
    _check_configs(name, configs, revision)
    parts = [_checked_config(name, config, revision=revision, split=split, local=path.is_dir()) for config in configs]
    try:
        dataset = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    except ValueError as err:  # columns that differ in name or type
        raise TrainingConfigError(
            f"configs {', '.join(configs)} of {name} cannot be mixed: {' '.join(str(err).split())}"
        ) from err
    if len(dataset) == 0:
        raise TrainingConfigError(f"dataset {name} ({', '.join(configs)}, split {split}) has no rows")
    logger.info("training on %d rows of %s (%s)", len(dataset), name, ", ".join(configs))
    return dataset


def _check_configs(name: str, configs: Sequence[str], revision: str | None) -> None:
    """Refuse configs the dataset does not have, naming those it has."""
    from datasets import get_dataset_config_names
    from datasets.exceptions import DatasetNotFoundError

    try:
        available = get_dataset_config_names(name, revision=revision)
    except (DatasetNotFoundError, OSError, ValueError) as err:
        raise TrainingConfigError(f"cannot read dataset {name}: {' '.join(str(err).split())}") from err
    missing = [config for config in configs if config not in available]
    if missing:
        raise TrainingConfigError(
            f"dataset {name} has no config {', '.join(missing)}: it has {', '.join(sorted(available))}"
        )


def _checked_config(name: str, config: str, *, revision: str | None, split: str, local: bool):
    """One config, refused without ``messages`` and ``images``; its images undecoded so that configs mix."""
    from datasets import Image, List

    try:
        part = _load_config(name, config, revision=revision, split=split, local=local)
    except (OSError, ValueError) as err:
        raise TrainingConfigError(f"cannot load {name} config {config}: {' '.join(str(err).split())}") from err
    for column in ("messages", "images"):
        if column not in part.column_names:
            raise TrainingConfigError(
                f"dataset {name} config {config} has no `{column}` column: expected rows with messages + images"
            )
    # One config may embed image bytes (Image()) and another store paths (Image(decode=False)): undecoded, both
    # are {bytes, path} and mix; training decodes them in image_transform either way.
    if part.features["images"] != List(Image(decode=False)):
        part = part.cast_column("images", List(Image(decode=False)))
    return part


def _check_dataset_folder(name: str) -> None:
    """Refuse a local folder whose README.md lists no ``configs:`` (datasets says 'No (supported) data files')."""
    folder = Path(name)
    try:
        card = (folder / "README.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        card = ""
    front = card.split("\n---", 1)[0] if card.startswith("---") else ""
    if re.search(r"^configs:", front, flags=re.MULTILINE):
        return
    what = "no README.md" if not (folder / "README.md").is_file() else "its README.md lists no `configs:`"
    collides = ""
    if (folder / "__init__.py").is_file():
        collides = (
            f"; {name} here is a Python package (the project's code, from the repository root): the name collides "
            "with it, so give the dataset folder's path or the Hub repo id as ORG/NAME"
        )
    raise TrainingConfigError(
        f"dataset_name {name} is a folder but not a dataset folder written by `keypoint-instruct build` ({what}; "
        f"expected <config>/train-*.parquet + README.md){collides}"
    )


def _load_config(name: str, config: str, *, revision: str | None, split: str, local: bool):
    """One config of a dataset folder or Hub repo.

    datasets 5.2 caches a local folder's config under the folder's name and the config alone: a folder rebuilt in place
    (``build --overwrite``) or another folder of the same name would load the Arrow cache of the first one, silently.
    The folder's card only says which Parquet files form the config; they are loaded as Parquet files, whose cache
    key includes each file's modification time.
    """
    from datasets import load_dataset, load_dataset_builder

    if not local:
        return load_dataset(name, config, revision=revision, split=split)
    data_files = load_dataset_builder(name, config).config.data_files
    if data_files is None or split not in data_files:
        raise ValueError(f"config {config} has no split {split!r} (it has {', '.join(data_files or {}) or 'none'})")
    return load_dataset("parquet", data_files={split: list(data_files[split])}, split=split)


def check_image_placeholders(dataset) -> None:
    """Raise before training when a row's number of images differs from the image placeholders in its messages.

    The processor refuses such a row only when its batch comes up ("Number of images provided (2) does not match
    number of image placeholders (1)"), hours into a run. A text-only row (no image, no placeholder) is fine.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    table = dataset.select_columns(["messages", "images"]).with_format("arrow")[:]
    rows = len(table)
    try:
        messages = table.column("messages").combine_chunks()
        turns = pc.list_flatten(messages)
        contents = pc.struct_field(turns, "content")
        parts = pc.list_flatten(contents)
        is_image = pc.fill_null(pc.equal(pc.struct_field(parts, "type"), "image"), False)
        part_row = pc.take(pc.list_parent_indices(messages), pc.list_parent_indices(contents))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, KeyError) as err:
        raise TrainingConfigError(
            "the dataset's messages are not lists of {role, content: [{type, text}]} turns "
            f"({' '.join(str(err).split())})"
        ) from err
    placeholders = np.bincount(pc.filter(part_row, is_image).to_numpy(zero_copy_only=False), minlength=rows)
    images = pc.fill_null(pc.list_value_length(table.column("images")), 0).to_numpy(zero_copy_only=False)
    odd = np.flatnonzero(placeholders != images)
    if len(odd):
        ids = dataset.select(odd[:MAX_MISSING_SHOWN].tolist())["id"] if "id" in dataset.column_names else None
        shown = "; ".join(
            f"row {int(i)}" + (f" ({ids[n]})" if ids else "") + f": {int(images[i])} images, "
            f"{int(placeholders[i])} <image> in its messages"
            for n, i in enumerate(odd[:MAX_MISSING_SHOWN])
        )
        more = f" and {len(odd) - MAX_MISSING_SHOWN} more" if len(odd) > MAX_MISSING_SHOWN else ""
        raise TrainingConfigError(
            f"{len(odd)} of {rows} rows have a different number of images than image placeholders "
            f"({shown}{more}): each image needs one {{type: image}} part in the messages"
        )


def check_bench_images(script_args, dataset) -> None:
    """Refuse a dataset holding an image of a benchmark of ``exclude_bench`` (dataset.exclusion), in one line."""
    from keypoint_instruct.dataset.exclusion import check_bench_exclusion, rows_image_ids

    name = script_args.dataset_name
    check_bench_exclusion(name, rows_image_ids(dataset), _card_text(name, script_args.dataset_revision),
                          script_args.exclude_bench)  # fmt: skip


def _card_text(name: str, revision: str | None) -> str:
    """The dataset card of a folder or Hub repo ("" when it cannot be read: the images are checked all the same)."""
    folder = Path(name)
    if folder.is_dir():
        try:
            return (folder / "README.md").read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return ""
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(name, "README.md", repo_type="dataset", revision=revision)
        return Path(path).read_text(encoding="utf-8")
    except Exception as err:  # noqa: BLE001 - offline, private, no card: fall back to the image check
        logger.info("cannot read the card of %s (%s); checking its images against the benchmark", name, err)
        return ""
