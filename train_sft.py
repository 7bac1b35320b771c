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
from pathlib import Path

from trl import ModelConfig, SFTConfig

from keypoint_instruct.errors import KeypointInstructError
from keypoint_instruct.training import sft
from keypoint_instruct.training.checkpoints import fix_saved_keys
from keypoint_instruct.training.recipe import RecipeParser, ScriptArguments, one_line_errors, say_error, start_logging
from keypoint_instruct.training.upstream import leave_distributed_run, quiet_deprecated_collectives

logger = logging.getLogger("train_sft")
quiet_deprecated_collectives()  # DeepSpeed's thousands of identical torch deprecation lines

REPO = Path(__file__).resolve().parent  # recipes name files (chat templates) relative to it


def build_trainer(script_args: ScriptArguments, training_args: SFTConfig, model_args: ModelConfig, make_model=None):
    """Check the inputs, then load model and processor and return the SFTTrainer (nothing trained yet).

    ``make_model()``, when given, builds the model instead of loading weights from ``model_name_or_path`` (the
    device benchmark builds a random LLaVA-1.5-7B from the config there).
    """
    return sft.build_trainer(script_args, training_args, model_args, repo_dir=REPO, make_model=make_model)


def main(script_args: ScriptArguments, training_args: SFTConfig, model_args: ModelConfig) -> None:
    """Train, then save a checkpoint (weights, processor, chat template) with canonical key names."""
    if script_args.check_only:
        dataset, image_files = sft.check_inputs(script_args, training_args, model_args, repo_dir=REPO)
        resume = training_args.resume_from_checkpoint
        images = f"{image_files} image files found" if image_files else "images embedded"
        print(
            f"ok: {len(dataset)} rows of {script_args.dataset_name} ({', '.join(script_args.dataset_configs)}), "
            f"{images}, model {model_args.model_name_or_path}, "
            + (f"resuming from {resume}" if resume else "a fresh run")
            + f", output to {training_args.output_dir}"
        )
        print("settings (* differs from LLaVA-1.5):")
        print("\n".join(sft.settings_lines(script_args, training_args, model_args)))
        return
    trainer = build_trainer(script_args, training_args, model_args)
    plugin = trainer.accelerator.state.deepspeed_plugin
    where = f"DeepSpeed ZeRO-{plugin.zero_stage}" if plugin is not None else "plain"
    if plugin is not None:  # the value DeepSpeed runs with, "auto" filled in from max_grad_norm
        where += f", gradient_clipping {plugin.deepspeed_config.get('gradient_clipping', 'unset (1.0)')}"
    logger.info("training: %s on %d process(es)", where, trainer.accelerator.num_processes)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        fix_saved_keys(training_args.output_dir, trainer.model.config)
    trainer.accelerator.wait_for_everyone()
    logger.info("model saved to %s", training_args.output_dir)
    trainer.end()


def parse_args(argv: list[str] | None = None) -> tuple:
    """Recipe YAML + flags -> (ScriptArguments, SFTConfig, ModelConfig); a stale or bad key: TrainingConfigError."""
    return RecipeParser((ScriptArguments, SFTConfig, ModelConfig)).parse_args_and_config(argv)


def run(argv: list[str] | None = None) -> int:
    """What ``python train_sft.py ARGV`` does, in this process: 0, or the exit code of bad input (said in one line)."""
    start_logging()
    try:
        main(*parse_args(argv))
    except KeypointInstructError as err:
        return say_error(err, "train_sft")
    return 0


if __name__ == "__main__":
    with one_line_errors("train_sft"):  # bad input: one line on stderr and exit code 2, never a traceback
        parser = RecipeParser((ScriptArguments, SFTConfig, ModelConfig))  # a trl.TrlParser (training/recipe.py)
        main(*parser.parse_args_and_config())
    leave_distributed_run()  # a finished multi-process run: exit 0 without Gloo's exit-time abort (upstream.py)
