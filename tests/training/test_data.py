"""keypoint_instruct/training/data.py: configs loaded, mixed and checked; folders read afresh."""

from __future__ import annotations

import shutil

import pytest

from keypoint_instruct.errors import TrainingConfigError
from keypoint_instruct.training.data import load_sft_dataset
from keypoint_instruct.training.images import check_images


def test_configs_mix_by_concatenation(dataset_dir):
    from datasets import load_dataset

    sizes = {name: len(load_dataset(str(dataset_dir), name, split="train")) for name in ("conversation", "all")}
    mixed = load_sft_dataset(str(dataset_dir), ["conversation", "complex_reasoning"])
    reasoning = len(load_dataset(str(dataset_dir), "complex_reasoning", split="train"))
    assert len(mixed) == sizes["conversation"] + reasoning < sizes["all"]
    assert set(mixed["task"]) == {"conversation", "complex_reasoning"}


def test_unreadable_dataset_names_are_clear(tmp_path):
    with pytest.raises(TrainingConfigError, match="dataset folder not found"):
        load_sft_dataset(str(tmp_path / "nope"), ["all"])


def test_configs_that_embed_images_mix_with_configs_that_store_paths(dataset_dir, coco_root, tmp_path):
    """A Hub dataset may embed image bytes in one config and store paths in another: both train together."""
    from datasets import Image, List, load_dataset

    from keypoint_instruct.training.images import image_transform

    mixed = tmp_path / "mixed"
    for config in ("conversation", "complex_reasoning"):
        shutil.copytree(dataset_dir / config, mixed / config)
    configs = "".join(
        f"- config_name: {config}\n  data_files:\n  - split: train\n    path: {config}/*.parquet\n"
        for config in ("conversation", "complex_reasoning")
    )
    (mixed / "README.md").write_text(f"---\nconfigs:\n{configs}---\n")  # features come from each config's Parquet
    part = load_dataset(str(dataset_dir), "complex_reasoning", split="train")
    part = part.map(
        lambda row: {"images": [{"bytes": (coco_root / e["path"]).read_bytes(), "path": None} for e in row["images"]]}
    ).cast_column("images", List(Image()))  # what push_to_hub writes: bytes, decoding column
    for file in (mixed / "complex_reasoning").glob("*.parquet"):
        file.unlink()
    part.to_parquet(str(mixed / "complex_reasoning" / "train-00000-of-00001.parquet"))
    dataset = load_sft_dataset(str(mixed), ["conversation", "complex_reasoning"])
    assert len(dataset) == len(part) + len(load_dataset(str(dataset_dir), "conversation", split="train"))
    last = dataset[len(dataset) - 1]["images"][0]
    assert last["bytes"]  # the embedded config keeps its bytes ...
    by_path = {
        name for name, task in zip(dataset["file_name"], dataset["task"], strict=True) if task == "conversation"
    }
    assert check_images(dataset, coco_root) == len(by_path)
    rows = dataset.select([0, len(dataset) - 1]).with_transform(image_transform(coco_root))
    assert all(row["images"][0].size[0] == row["images"][0].size[1] for row in rows)  # ... and both decode, padded


def _one_config_folder(folder, rows: int):
    from datasets import Dataset

    (folder / "all").mkdir(parents=True, exist_ok=True)
    messages = [[{"role": "user", "content": [{"type": "text", "text": "Hi?"}]}]] * rows
    Dataset.from_dict({"messages": messages, "images": [[]] * rows}).to_parquet(str(folder / "all" / "train.parquet"))
    card = "---\nconfigs:\n- config_name: all\n  data_files:\n  - split: train\n    path: all/*\n---\n"
    (folder / "README.md").write_text(card)
    return folder


def test_a_folder_rebuilt_in_place_or_another_of_the_same_name_is_read_afresh(tmp_path):
    """datasets caches a local folder's config by folder name: without care, the first one read is read again."""
    first = _one_config_folder(tmp_path / "a" / "keypoint_instruct", 3)
    second = _one_config_folder(tmp_path / "b" / "keypoint_instruct", 5)
    assert len(load_sft_dataset(str(first), ["all"])) == 3
    assert len(load_sft_dataset(str(second), ["all"])) == 5
    _one_config_folder(first, 7)  # rebuilt in place
    assert len(load_sft_dataset(str(first), ["all"])) == 7
