"""Fine-tune LLaVA-1.5 on keypoint-instruct data with TRL's SFTTrainer, the way LLaVA-1.5 itself was trained.

The paper's run (Table 2; DeepSpeed ZeRO-3; two A100s):

    accelerate launch --config_file recipes/accelerate_configs/zero3.yaml train_sft.py \
        --config recipes/llava-1.5-7b/sft/config_full.yaml --coco_root data/coco

``--coco_root`` is the COCO root the dataset's image paths are relative to (train2017/<file_name>); a dataset built
with ``--embed-images`` needs none. ``--dataset_name`` takes a Hub id (with ``--dataset_revision v1.0.0``) or the
folder written by ``keypoint-instruct build``. Recipes name ``chat_template_path`` relative to the repository: a
relative path not found from the current folder is read from the folder of this script (the log says which was used).
Ablations swap the recipe (config_conversation.yaml, config_detailed_description.yaml, config_complex_reasoning.yaml).
The tiny model of the tests and the demo trains on a CPU, plainly or under ZeRO-3:

    python train_sft.py --config recipes/tiny-llava/sft/config_cpu.yaml \
        --model_name_or_path TINY_DIR --dataset_name DATASET_DIR --coco_root COCO_ROOT --output_dir OUT
    accelerate launch --config_file recipes/accelerate_configs/zero3_cpu.yaml --num_processes 2 train_sft.py ...

What is trained follows LLaVA-1.5 rather than TRL's defaults: the loss covers only the assistant answers and the
``</s>`` closing each of them (the chat template's ``{% generation %}`` markers with ``assistant_only_loss``), so the
system line, the questions and every image token are labelled -100; images are padded to a square of CLIP's mean
colour instead of centre-cropped; the vision tower stays frozen (projector and language model train);
``max_length`` is null so image tokens are never cut. Any command-line flag overrides the recipe.

Check a recipe and its data first, in seconds and without a GPU (``accelerate launch`` adds its own launcher
traceback after our one-line error; plain ``python`` prints only the line):

    python train_sft.py --config recipes/llava-1.5-7b/sft/config_full.yaml --coco_root data/coco --check_only

(on a machine without a GPU add ``--bf16 false``: transformers refuses bf16 there before any check runs).

Resuming: ``--resume_from_checkpoint true`` (the newest checkpoint in output_dir) or a checkpoint folder. The 7B
recipes save weights only (``save_only_model``), which cannot resume; pass ``--save_only_model false`` for a run you
may need to resume (each checkpoint then also holds the ~85 GB optimizer state of a 7B under ZeRO-3).
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from keypoint_instruct.errors import KeypointInstructError, TrainingConfigError
from keypoint_instruct.training.sft import (
    canonical_checkpoint_callback,
    check_chat_template,
    check_image_placeholders,
    check_images,
    check_loaded_chat_template,
    check_training_numbers,
    fix_saved_keys,
    freeze_vision_tower,
    image_transform,
    load_checkpoint_weights,
    load_sft_dataset,
    resolve_chat_template_path,
    resolve_resume,
)
from keypoint_instruct.vocab import DATASET_CONFIGS

logger = logging.getLogger("train_sft")
# DeepSpeed 0.19 calls torch.distributed collectives that torch 2.13 deprecates, once per gathered or reduced
# parameter: thousands of identical lines that bury the training log.
warnings.filterwarnings(
    "ignore", message=r"`torch\.distributed\.(all_gather_into_tensor|reduce_scatter_tensor)` is deprecated"
)

REPO = Path(__file__).resolve().parent  # recipes name files (chat templates) relative to it
CHAT_TEMPLATE_HELP = (
    "Jinja chat template file (.jinja/.j2), e.g. recipes/chat_templates/llava-1.5.jinja. A relative path is read "
    "from the current folder; when it is not there, from the repository (the folder of train_sft.py), as recipes "
    "name it; the log says which file was used."
)


@dataclass
class ScriptArguments:
    """What to train on, and the LLaVA-1.5 fidelity switches. The rest lives in SFTConfig and ModelConfig."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Dataset folder written by `keypoint-instruct build` (Hub layout) or a Hub repo id."},
    )
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Git revision of a Hub dataset: a version tag such as v1.0, or a commit."}
    )
    dataset_configs: list[str] = field(
        default_factory=lambda: ["all"],
        metadata={
            "help": "Dataset configs to mix: conversation, detailed_description, complex_reasoning, or all.",
            "nargs": "+",
        },
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split of the dataset to train on."})
    coco_root: str | None = field(
        default=None,
        metadata={"help": "COCO root holding <split>/<file_name>; needed when the dataset stores image paths."},
    )
    freeze_vision_tower: bool = field(
        default=True, metadata={"help": "Keep the CLIP vision tower frozen, as LLaVA-1.5 did (projector + LLM train)."}
    )
    pad_to_square: bool = field(
        default=True,
        metadata={"help": "Pad images to a square of CLIP's mean colour before the processor (LLaVA-1.5), no crop."},
    )
    check_only: bool = field(
        default=False,
        metadata={
            "help": "Check recipe, dataset configs, images, chat template, model folder and resume checkpoint, print "
            "what would be trained, and exit without loading the model (run with plain python before a launch)."
        },
    )

    def __post_init__(self) -> None:
        if not self.dataset_name:
            raise TrainingConfigError(
                "dataset_name is required: a dataset folder (<config>/train-*.parquet + README.md) or a Hub repo id"
            )
        if isinstance(self.dataset_configs, str):
            self.dataset_configs = [self.dataset_configs]
        unknown = [name for name in self.dataset_configs if name not in DATASET_CONFIGS]
        if unknown or not self.dataset_configs:
            raise TrainingConfigError(
                f"dataset_configs {self.dataset_configs}: expected a list drawn from {list(DATASET_CONFIGS)}, "
                "e.g. [conversation, complex_reasoning] or [all]"
            )
        if "all" in self.dataset_configs and len(self.dataset_configs) > 1:
            raise TrainingConfigError(
                f"dataset_configs {self.dataset_configs}: `all` already holds every task; list it alone"
            )
        if len(set(self.dataset_configs)) != len(self.dataset_configs):
            raise TrainingConfigError(f"dataset_configs {self.dataset_configs}: a config is listed twice")
        if self.coco_root is not None and not Path(self.coco_root).is_dir():
            raise TrainingConfigError(f"coco_root {self.coco_root} is not a folder (expected the COCO root)")


def check_inputs(script_args: ScriptArguments, training_args, model_args) -> tuple:
    """Everything that can be wrong with the inputs, checked before any model is loaded.

    Returns the dataset and the number of image files it references (0: every image is embedded). Also resolves
    ``resume_from_checkpoint`` (true/last -> the newest checkpoint folder) in ``training_args``.
    """
    check_training_numbers(training_args)
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
    image_files = check_images(dataset, script_args.coco_root)
    check_image_placeholders(dataset)
    training_args.chat_template_path = resolve_chat_template_path(training_args.chat_template_path, REPO)
    check_chat_template(training_args.chat_template_path, model, assistant_only_loss=training_args.assistant_only_loss)
    if not training_args.assistant_only_loss:
        logger.warning("assistant_only_loss is off: prompts and image tokens will be trained, unlike LLaVA-1.5")
    if training_args.max_length is not None:
        logger.warning("max_length=%d can cut image tokens; LLaVA recipes keep it null", training_args.max_length)
    training_args.resume_from_checkpoint = resolve_resume(
        training_args.resume_from_checkpoint, training_args.output_dir
    )
    return dataset, image_files


def build_trainer(script_args: ScriptArguments, training_args, model_args, make_model=None):
    """Check the inputs, then load model and processor and return the SFTTrainer (nothing trained yet).

    ``make_model()``, when given, builds the model instead of loading weights from ``model_name_or_path`` (the
    device benchmark builds a random LLaVA-1.5-7B from the config there).
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTTrainer

    dataset, _ = check_inputs(script_args, training_args, model_args)
    train_dataset = dataset.select_columns(["messages", "images"]).with_transform(
        image_transform(script_args.coco_root, pad=script_args.pad_to_square)
    )

    name, revision = model_args.model_name_or_path, model_args.model_revision
    try:  # the processor first: small, and a wrong name or revision fails here rather than after a 7B load
        processor = AutoProcessor.from_pretrained(name, revision=revision)
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
    if any(hasattr(param, "ds_numel") for param in model.parameters()):
        logger.info("parameters partitioned by ZeRO-3 at load")
    if script_args.freeze_vision_tower:
        freeze_vision_tower(model)

    class LlavaSFTTrainer(SFTTrainer):
        """SFTTrainer whose plain (non-DeepSpeed) resume loads the checkpoint's weights under their saved names."""

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
            if self.is_deepspeed_enabled or self.is_fsdp_enabled:  # their own checkpoint formats
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            load_checkpoint_weights(self.model if model is None else model, resume_from_checkpoint)

    return LlavaSFTTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=processor,
        callbacks=[canonical_checkpoint_callback(model.config)],
    )


def main(script_args: ScriptArguments, training_args, model_args) -> None:
    """Train, then save a checkpoint (weights, processor, chat template) with canonical key names."""
    if script_args.check_only:
        dataset, image_files = check_inputs(script_args, training_args, model_args)
        resume = training_args.resume_from_checkpoint
        images = f"{image_files} image files found" if image_files else "images embedded"
        print(
            f"ok: {len(dataset)} rows of {script_args.dataset_name} ({', '.join(script_args.dataset_configs)}), "
            f"{images}, model {model_args.model_name_or_path}, "
            + (f"resuming from {resume}" if resume else "a fresh run")
            + f", output to {training_args.output_dir}"
        )
        return
    trainer = build_trainer(script_args, training_args, model_args)
    plugin = trainer.accelerator.state.deepspeed_plugin
    where = f"DeepSpeed ZeRO-{plugin.zero_stage}" if plugin is not None else "plain"
    logger.info("training: %s on %d process(es)", where, trainer.accelerator.num_processes)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        fix_saved_keys(training_args.output_dir, trainer.model.config)
    trainer.accelerator.wait_for_everyone()
    logger.info("model saved to %s", training_args.output_dir)
    trainer.end()


def check_recipe_values(actions, config: dict, recipe_name: str) -> None:
    """Type-check recipe values the way argparse checks flags.

    TrlParser hands YAML values to argparse as defaults, and argparse converts (and so checks) only string defaults:
    ``max_steps: 2.5``, ``per_device_train_batch_size: [2]`` or ``dtype: bfloat`` would reach training unchecked.
    Options whose argparse type is str (paths, dict-valued options such as ``model_init_kwargs``) are left as they are.
    """
    import argparse

    by_dest = {}
    for action in actions:  # a bool option also has a `--no_<name>` action (no type) with the same dest
        if action.type is not None:
            by_dest.setdefault(action.dest, action)
    for key, value in config.items():
        action = by_dest.get(key)
        if action is None or value is None or (action.type is str and not action.nargs and not action.choices):
            continue
        many = action.nargs in ("+", "*")
        values = value if many and isinstance(value, list) else [value]
        kind = getattr(action.type, "__name__", "value").replace("string_to_bool", "bool")
        for item in values:
            if not isinstance(item, str) and (isinstance(item, list | dict) or action.type is str):
                raise TrainingConfigError(f"recipe {recipe_name}: {key}: {item!r} is not a valid {kind}")
            if isinstance(item, float) and action.type is int and not item.is_integer():
                raise TrainingConfigError(f"recipe {recipe_name}: {key}: {item!r} is not a valid int")
            if isinstance(item, bool) and action.type in (int, float):
                raise TrainingConfigError(f"recipe {recipe_name}: {key}: {item!r} is not a valid {kind}")
            try:
                converted = action.type(item if isinstance(item, str) else str(item))
            except (ValueError, TypeError, argparse.ArgumentTypeError):
                raise TrainingConfigError(f"recipe {recipe_name}: {key}: {item!r} is not a valid {kind}") from None
            if action.choices is not None and converted not in action.choices:
                choices = ", ".join(str(getattr(c, "value", c)) for c in action.choices)
                raise TrainingConfigError(f"recipe {recipe_name}: {key}: {item!r} is not one of {choices}")


def parse_args(argv: list[str] | None = None) -> tuple:
    """Recipe YAML + flags -> (ScriptArguments, SFTConfig, ModelConfig); a stale or bad key: TrainingConfigError."""
    from trl import ModelConfig, SFTConfig, TrlParser

    class OneLineParser(TrlParser):
        """A flag argparse cannot read (``--learning_rate abc``) is one error line, not the 150-line usage."""

        def error(self, message: str):
            raise TrainingConfigError(message)

        def set_defaults_with_config(self, **config) -> list[str]:
            check_recipe_values(self._actions, config, recipe_name)
            return super().set_defaults_with_config(**config)

    args = sys.argv[1:] if argv is None else list(argv)
    recipe_name = Path(args[args.index("--config") + 1]).name if "--config" in args[:-1] else "recipe"
    parser = OneLineParser((ScriptArguments, SFTConfig, ModelConfig))
    parser._option_string_actions["--chat_template_path"].help = CHAT_TEMPLATE_HELP
    try:
        return tuple(parser.parse_args_and_config(args))
    except KeypointInstructError:
        raise
    except (ValueError, OSError) as err:  # unknown YAML key, bad value, missing recipe file
        message = " ".join(str(err).split())
        raise TrainingConfigError(f"training config: {message}") from err


def run(argv: list[str] | None = None) -> int:
    """Entry point: one line on stderr and exit code 2 for bad input, never a traceback."""
    main_process = os.environ.get("RANK", "0") == "0"  # `accelerate launch` starts one process per rank
    level = logging.INFO if main_process else logging.WARNING  # progress once; every rank's warnings and errors
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        main(*parse_args(argv))
    except KeypointInstructError as err:
        if main_process:  # every launched process checks the same inputs: say it once
            print(f"train_sft: error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(run())
