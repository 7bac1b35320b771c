"""keypoint_instruct/training.py: dataset mixing, image checks, the frozen tower, canonical checkpoint keys."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from keypoint_instruct.errors import TrainingConfigError
from keypoint_instruct.training.sft import (
    canonical_names,
    check_images,
    fix_saved_keys,
    freeze_vision_tower,
    load_sft_dataset,
)


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


def test_check_images_counts_files_and_accepts_embedded_bytes(dataset_dir, coco_root, caplog):
    dataset = load_sft_dataset(str(dataset_dir), ["all"])
    assert check_images(dataset, coco_root) == len(set(dataset["file_name"]))
    from datasets import Dataset, Image, List

    embedded = Dataset.from_dict({"images": [[{"path": "gone.jpg", "bytes": b"\x89PNG"}]]})
    embedded = embedded.cast_column("images", List(Image(decode=False)))
    with caplog.at_level(logging.INFO, logger="keypoint_instruct.training.sft"):
        assert check_images(embedded, None) == 0
    assert "1 images embedded in the dataset" in caplog.text
    assert "referenced image files found" not in caplog.text


def test_check_images_names_missing_files(dataset_dir, coco_root, tmp_path):
    partial = tmp_path / "coco"
    shutil.copytree(coco_root, partial)
    dataset = load_sft_dataset(str(dataset_dir), ["all"])
    victim = sorted(set(dataset["file_name"]))[0]
    (partial / "train2017" / victim).unlink()
    with pytest.raises(TrainingConfigError, match=rf"1 of \d+ images missing .*{victim}"):
        check_images(dataset, partial)
    with pytest.raises(TrainingConfigError, match="--coco_root"):
        check_images(dataset, None)


def test_freeze_vision_tower_leaves_projector_and_llm_trainable(tiny_llava_dir):
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_llava_dir)
    trainable, total = freeze_vision_tower(model)
    tower = sum(p.numel() for p in model.model.vision_tower.parameters())
    assert trainable == total - tower > 0
    assert all(p.requires_grad for n, p in model.named_parameters() if "vision_tower" not in n)


def test_doubled_model_prefix_is_renamed_in_place(tiny_llava_dir, tmp_path, caplog):
    """What a ZeRO-3 save writes (language_model.model.model.*) becomes the canonical name again."""
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig

    out = shutil.copytree(tiny_llava_dir, tmp_path / "ckpt")
    canonical = load_file(out / "model.safetensors")
    doubled = {k.replace("language_model.model.", "language_model.model.model."): v for k, v in canonical.items()}
    assert set(doubled) != set(canonical)
    save_file(doubled, out / "model.safetensors", metadata={"format": "pt"})
    config = AutoConfig.from_pretrained(out)
    with caplog.at_level(logging.INFO, logger="keypoint_instruct.training.sft"):
        assert fix_saved_keys(out, config) == sum(k.startswith("language_model.model.") for k in canonical)
    example = caplog.text.split("(e.g. ")[1].split(")")[0]
    old, new = example.split(" -> ")
    assert old in doubled and new in canonical and old.replace("model.model.", "model.") == new
    assert set(load_file(out / "model.safetensors")) == set(canonical)
    assert fix_saved_keys(out, config) == 0  # idempotent


def test_sharded_checkpoints_get_their_index_fixed_and_gaps_are_reported(tiny_llava_dir, tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig

    out = tmp_path / "ckpt"
    out.mkdir()
    shutil.copy(tiny_llava_dir / "config.json", out)
    tensors = load_file(tiny_llava_dir / "model.safetensors")
    keys = sorted(tensors)
    half = len(keys) // 2
    shards = {"model-00001-of-00002.safetensors": keys[:half], "model-00002-of-00002.safetensors": keys[half:]}
    weight_map = {}
    for name, names in shards.items():
        doubled = {k.replace("language_model.model.", "language_model.model.model."): tensors[k] for k in names}
        save_file(doubled, out / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(doubled, name))
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = AutoConfig.from_pretrained(out)
    assert fix_saved_keys(out, config) > 0
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(keys)
    (out / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(TrainingConfigError, match=rf"lacks {len(keys) - half} weights"):
        fix_saved_keys(out, config)


def test_canonical_names_are_what_a_fresh_save_writes(tiny_llava_dir):
    from safetensors.torch import load_file
    from transformers import AutoConfig

    canonical, expected = canonical_names(AutoConfig.from_pretrained(tiny_llava_dir))
    assert expected == set(load_file(tiny_llava_dir / "model.safetensors"))
    assert canonical("language_model.model.model.norm.weight") == "language_model.model.norm.weight"
    assert canonical("no.such.weight") is None


def test_configs_that_embed_images_mix_with_configs_that_store_paths(dataset_dir, coco_root, tmp_path):
    """A Hub dataset may embed image bytes in one config and store paths in another: both train together."""
    from datasets import Image, List, load_dataset

    from keypoint_instruct.training.sft import image_transform

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


def test_checkpoint_weights_load_by_their_saved_names_and_gaps_are_refused(tiny_llava_dir, tmp_path):
    """What a Trainer checkpoint holds (save_pretrained's names) lands in the modules they belong to."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForImageTextToText

    from keypoint_instruct.training.sft import load_checkpoint_weights

    checkpoint = shutil.copytree(tiny_llava_dir, tmp_path / "checkpoint-2")
    tensors = {key: value + 1 for key, value in load_file(checkpoint / "model.safetensors").items()}
    save_file(tensors, checkpoint / "model.safetensors", metadata={"format": "pt"})
    model = AutoModelForImageTextToText.from_pretrained(tiny_llava_dir)
    assert load_checkpoint_weights(model, checkpoint) == len(tensors)
    expected = AutoModelForImageTextToText.from_pretrained(checkpoint).state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())
    gone = sorted(tensors)[0]
    save_file({k: v for k, v in tensors.items() if k != gone}, checkpoint / "model.safetensors")
    with pytest.raises(TrainingConfigError, match="lacks 1 weights"):
        load_checkpoint_weights(model, checkpoint)
    save_file({**tensors, "no.such.weight": tensors[gone].clone()}, checkpoint / "model.safetensors")
    with pytest.raises(TrainingConfigError, match="no.such.weight, which is no weight of a llava model"):
        load_checkpoint_weights(model, checkpoint)


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


def test_checkpoints_saved_during_training_get_canonical_keys(tiny_llava_dir, tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig, TrainerControl, TrainerState, TrainingArguments

    from keypoint_instruct.training.sft import canonical_checkpoint_callback

    checkpoint = shutil.copytree(tiny_llava_dir, tmp_path / "run" / "checkpoint-4")
    canonical = load_file(checkpoint / "model.safetensors")
    doubled = {k.replace("language_model.model.", "language_model.model.model."): v for k, v in canonical.items()}
    save_file(doubled, checkpoint / "model.safetensors", metadata={"format": "pt"})
    callback = canonical_checkpoint_callback(AutoConfig.from_pretrained(tiny_llava_dir))
    args = TrainingArguments(output_dir=str(tmp_path / "run"), use_cpu=True, report_to="none")
    state = TrainerState(global_step=4)
    state.is_world_process_zero = False  # other ranks leave the file alone
    callback.on_save(args, state, TrainerControl())
    assert set(load_file(checkpoint / "model.safetensors")) == set(doubled)
    state.is_world_process_zero = True
    callback.on_save(args, state, TrainerControl())
    assert set(load_file(checkpoint / "model.safetensors")) == set(canonical) != set(doubled)
    callback.on_save(args, TrainerState(global_step=9), TrainerControl())  # no such checkpoint (a save elsewhere)
