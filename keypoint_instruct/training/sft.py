"""One SFT run put together: every input checked, then processor and model loaded and TRL's SFTTrainer built.

Takes the three parsed argument dataclasses of ``train_sft.py`` (ScriptArguments, SFTConfig, ModelConfig) and the
repository folder the recipes name files relative to; gives the checked dataset, or an SFTTrainer that trains like
LLaVA-1.5 (padded images, frozen vision tower, canonical checkpoint keys, resume under saved key names). Nothing is
trained here. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keypoint_instruct.errors import TrainingConfigError
from keypoint_instruct.training.chat_template import (
    check_chat_template,
    check_loaded_chat_template,
    resolve_chat_template_path,
)
from keypoint_instruct.training.checkpoints import (
    canonical_checkpoint_callback,
    load_checkpoint_weights,
    resolve_resume,
)
from keypoint_instruct.training.data import check_bench_images, check_image_placeholders, load_sft_dataset
from keypoint_instruct.training.images import check_images, image_transform
from keypoint_instruct.training.parity import (
    MICRO_BATCH,
    averaging_per_micro_batch,
    check_parity_settings,
    length_grouped_sampler,
    resolve_attention,
    settings_lines,
)
from keypoint_instruct.training.recipe import ScriptArguments, check_training_numbers
from keypoint_instruct.training.tokenizer import load_processor
from keypoint_instruct.training.upstream import resuming_by_saved_names, with_train_sampler

logger = logging.getLogger(__name__)


def check_inputs(script_args: ScriptArguments, training_args, model_args, *, repo_dir: str | Path) -> tuple:
    """Everything that can be wrong with the inputs, checked before any model is loaded.

    Returns the dataset and the number of image files it references (0: every image is embedded). Also resolves
    ``resume_from_checkpoint`` (true/last -> the newest checkpoint folder) and ``chat_template_path`` (relative to
    the current folder, else to ``repo_dir``) in ``training_args``.
    """
    check_training_numbers(training_args)
    check_parity_settings(script_args, training_args)
    model = model_args.model_name_or_path
    if not model:
        raise TrainingConfigError("model_name_or_path is required: a Hub id (llava-hf/llava-1.5-7b-hf) or a folder")
    if (model.startswith((".", "/")) or Path(model).exists()) and not (Path(model) / "config.json").is_file():
        raise TrainingConfigError(f"model folder {model} has no config.json (expected a save_pretrained folder)")
    dataset = load_sft_dataset(
        script_args.dataset_name,
        script_args.dataset_configs,
        revision=script_args.dataset_revision,
        split=script_args.dataset_train_split,
    )
    if script_args.exclude_bench:
        check_bench_images(script_args, dataset)
    image_files = check_images(dataset, script_args.coco_root)
    check_image_placeholders(dataset)
    training_args.chat_template_path = resolve_chat_template_path(training_args.chat_template_path, repo_dir)
    check_chat_template(training_args.chat_template_path, model, assistant_only_loss=training_args.assistant_only_loss)
    if not training_args.assistant_only_loss:
        logger.warning("assistant_only_loss is off: prompts and image tokens will be trained, unlike LLaVA-1.5")
    if training_args.max_length is not None:
        logger.warning("max_length=%d can cut image tokens; LLaVA recipes keep it null", training_args.max_length)
    training_args.resume_from_checkpoint = resolve_resume(
        training_args.resume_from_checkpoint, training_args.output_dir
    )
    return dataset, image_files


def build_trainer(
    script_args: ScriptArguments,
    training_args,
    model_args,
    *,
    repo_dir: str | Path,
    make_model: Callable[[], Any] | None = None,
):
    """Check the inputs, then load model and processor and return the SFTTrainer (nothing trained yet).

    ``make_model()``, when given, builds the model instead of loading weights from ``model_name_or_path`` (the
    device benchmark builds a random LLaVA-1.5-7B from the config there).
    """
    from trl import SFTTrainer

    dataset, _ = check_inputs(script_args, training_args, model_args, repo_dir=repo_dir)
    for line in settings_lines(script_args, training_args, model_args):
        logger.info("setting %s", line)
    train_dataset = dataset.select_columns(["messages", "images"]).with_transform(
        image_transform(script_args.coco_root, pad=script_args.pad_to_square)
    )
    model_args.attn_implementation, why = resolve_attention(model_args.attn_implementation, model_args.dtype)
    logger.info("attention: %s (%s)", model_args.attn_implementation, why)
    processor, model = _load_processor_and_model(script_args, training_args, model_args, make_model)
    if any(hasattr(param, "ds_numel") for param in model.parameters()):
        logger.info("parameters partitioned by ZeRO-3 at load")
    if script_args.freeze_vision_tower:
        freeze_vision_tower(model)
    trainer_class = resuming_by_saved_names(SFTTrainer, load_checkpoint_weights)
    if script_args.loss_averaging == MICRO_BATCH:
        trainer_class = averaging_per_micro_batch(trainer_class)
    if script_args.group_by_modality_length:
        trainer_class = with_train_sampler(trainer_class, length_grouped_sampler)
    return trainer_class(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=processor,
        callbacks=[canonical_checkpoint_callback(model.config)],
    )


def _load_processor_and_model(script_args, training_args, model_args, make_model: Callable[[], Any] | None) -> tuple:
    """The processor first (small: a wrong name or revision fails here rather than after a 7B load), then the model."""
    import torch
    from transformers import AutoModelForImageTextToText

    name, revision = model_args.model_name_or_path, model_args.model_revision
    try:
        processor = load_processor(name, revision, legacy=script_args.tokenizer_legacy)
        check_loaded_chat_template(
            processor, training_args.chat_template_path, assistant_only_loss=training_args.assistant_only_loss
        )
        # SFTConfig exists already (TrlParser built it), so a ZeRO-3 launch partitions the model while it loads.
        dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
        if make_model is None:
            model = AutoModelForImageTextToText.from_pretrained(
                name, revision=revision, dtype=dtype, attn_implementation=model_args.attn_implementation
            )
        else:
            model = make_model()
    except OSError as err:  # unreachable Hub, unknown repo or revision, missing files
        raise TrainingConfigError(f"cannot load model {name}: {' '.join(str(err).split())}") from err
    return processor, model


def _numel(param) -> int:
    return int(getattr(param, "ds_numel", 0) or param.numel())  # ZeRO-3 leaves numel() == 0 on partitioned params


def freeze_vision_tower(model) -> tuple[int, int]:
    """Freeze the vision tower (LLaVA-1.5 trains projector + LLM); return (trainable, total) parameter counts."""
    tower = getattr(model, "vision_tower", None)
    if tower is None:
        tower = getattr(getattr(model, "model", None), "vision_tower", None)
    if tower is None:
        raise TrainingConfigError(f"{type(model).__name__} has no vision_tower to freeze (expected a LLaVA model)")
    tower.requires_grad_(False)
    params = list(model.parameters())
    trainable = sum(_numel(p) for p in params if p.requires_grad)
    total = sum(_numel(p) for p in params)
    logger.info("vision tower frozen: %d of %d parameters train", trainable, total)
    return trainable, total
