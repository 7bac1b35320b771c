"""keypoint_instruct/training/checkpoints.py: canonical key names in every save, weights loaded by saved names."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from keypoint_instruct.errors import TrainingConfigError
from keypoint_instruct.training.checkpoints import (
    canonical_checkpoint_callback,
    fix_saved_keys,
    load_checkpoint_weights,
)


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
    with caplog.at_level(logging.INFO, logger="keypoint_instruct.training.checkpoints"):
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


def test_checkpoint_weights_load_by_their_saved_names_and_gaps_are_refused(tiny_llava_dir, tmp_path):
    """What a Trainer checkpoint holds (save_pretrained's names) lands in the modules they belong to."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForImageTextToText

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


def test_checkpoints_saved_during_training_get_canonical_keys(tiny_llava_dir, tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig, TrainerControl, TrainerState, TrainingArguments

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
