"""The training script's command line: recipe YAML + flags -> checked dataclasses, and bad input as one line.

Takes ``--config <recipe>.yaml`` and flags; gives (ScriptArguments, SFTConfig, ModelConfig) through
:class:`RecipeParser`, a ``trl.TrlParser`` whose every refusal (an unknown key, a value of the wrong type, a number
that would crash mid-launch or train nothing) is one :class:`TrainingConfigError`. :func:`one_line_errors` turns
such errors into one ``<prog>: error: ...`` line on stderr and exit code 2, said once across ranks.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from trl import TrlParser

from keypoint_instruct.errors import KeypointInstructError, TrainingConfigError
from keypoint_instruct.training.parity import LOSS_AVERAGING, MICRO_BATCH, TOKENS, tf32_available
from keypoint_instruct.training.upstream import parser_actions, set_option_help
from keypoint_instruct.vocab import ALL, DATASET_CONFIGS, TASKS

logger = logging.getLogger(__name__)

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
        default_factory=lambda: [ALL],
        metadata={"help": f"Dataset configs to mix: {', '.join(TASKS)}, or {ALL}.", "nargs": "+"},
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
    exclude_bench: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Benchmark folders (written by `keypoint-instruct bench build`) the model will be judged on: "
            "training is refused when the dataset holds one of their images, unless it was built with "
            "`build --exclude-bench` of that benchmark.",
            "nargs": "+",
        },
    )
    loss_averaging: str = field(
        default=MICRO_BATCH,
        metadata={
            "help": f"{MICRO_BATCH}: each micro-batch's loss is the mean over its trained tokens, then the "
            f"micro-batches (and devices) are averaged, as LLaVA-1.5 (transformers 4.37) trained; {TOKENS}: one mean "
            "over every trained token of the global batch (transformers 5 / TRL), so long answers weigh more.",
            "choices": list(LOSS_AVERAGING),
        },
    )
    group_by_modality_length: bool = field(
        default=True,
        metadata={
            "help": "LLaVA-1.5's sampler: each optimizer step's samples, drawn at random, are dealt into "
            "micro-batches of about equal length (words). false: train_sampling_strategy picks the order (random)."
        },
    )
    tokenizer_legacy: bool = field(
        default=True,
        metadata={
            "help": "Load a Llama tokenizer with legacy=True (a \u2581 word-start after every special token), which "
            "gives the prompt ids LLaVA-1.5 trained on; false keeps what the model folder says (llava-hf: false)."
        },
    )
    check_only: bool = field(
        default=False,
        metadata={
            "help": "Check recipe, dataset configs, images, chat template, model folder and resume checkpoint, print "
            "what would be trained, and exit without loading the model (run with plain python before a launch)."
        },
    )

    # Set by RecipeParser when the recipe's tf32: true was left off for want of a CUDA GPU with TF32 (not a flag).
    recipe_tf32_left_off: bool = field(default=False, init=False, repr=False)

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
                f"e.g. [conversation, complex_reasoning] or [{ALL}]"
            )
        if ALL in self.dataset_configs and len(self.dataset_configs) > 1:
            raise TrainingConfigError(
                f"dataset_configs {self.dataset_configs}: `{ALL}` already holds every task; list it alone"
            )
        if len(set(self.dataset_configs)) != len(self.dataset_configs):
            raise TrainingConfigError(f"dataset_configs {self.dataset_configs}: a config is listed twice")
        if isinstance(self.exclude_bench, str):
            self.exclude_bench = [self.exclude_bench]
        self.exclude_bench = list(self.exclude_bench or [])
        if self.coco_root is not None and not Path(self.coco_root).is_dir():
            raise TrainingConfigError(f"coco_root {self.coco_root} is not a folder (expected the COCO root)")


def check_training_numbers(args) -> None:
    """Refuse the SFTConfig numbers that would crash mid-launch or train nothing, before anything is loaded."""
    positive = ("per_device_train_batch_size", "gradient_accumulation_steps")
    for name in positive:
        value = getattr(args, name)
        if value < 1:
            raise TrainingConfigError(f"{name} {value}: expected a whole number of at least 1")
    if not args.learning_rate > 0:
        raise TrainingConfigError(f"learning_rate {args.learning_rate}: expected a positive number such as 2e-5")
    for name in ("weight_decay", "adam_epsilon", "num_train_epochs", "dataloader_num_workers"):
        value = getattr(args, name)
        if value < 0:
            raise TrainingConfigError(f"{name} {value}: expected 0 or more")
    for name in ("adam_beta1", "adam_beta2"):
        value = getattr(args, name)
        if not 0 <= value < 1:
            raise TrainingConfigError(f"{name} {value}: expected a number in [0, 1)")
    if args.max_steps == 0 or args.max_steps < -1:
        raise TrainingConfigError(
            f"max_steps {args.max_steps}: expected a positive number of optimizer steps, or -1 to train "
            "num_train_epochs epochs"
        )
    if args.max_steps == -1 and args.num_train_epochs <= 0:
        raise TrainingConfigError(
            f"num_train_epochs {args.num_train_epochs} with max_steps -1 trains nothing: set num_train_epochs "
            "above 0 or max_steps to a positive number of steps"
        )
    if str(getattr(args.save_strategy, "value", args.save_strategy)) == "steps" and not args.save_steps > 0:
        raise TrainingConfigError(f"save_steps {args.save_steps}: expected a positive number with save_strategy steps")


def check_recipe_values(actions: list[argparse.Action], config: dict, recipe_name: str) -> None:
    """Type-check recipe values the way argparse checks flags.

    TrlParser hands YAML values to argparse as defaults, and argparse converts (and so checks) only string defaults:
    ``max_steps: 2.5``, ``per_device_train_batch_size: [2]`` or ``dtype: bfloat`` would reach training unchecked.
    Options whose argparse type is str (paths, dict-valued options such as ``model_init_kwargs``) are left as they are.
    """
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


RECIPE_USAGE = (
    "Fine-tune LLaVA-1.5 on keypoint-instruct data: python train_sft.py --config RECIPE.yaml [--FLAG VALUE ...] "
    "(or under `accelerate launch`). The recipe sets any of the flags below; a flag on the command line wins over "
    "the recipe. The ones a run usually changes: --dataset_name, --coco_root, --output_dir, --model_name_or_path, "
    "--check_only (check the recipe, data and images in seconds, print the effective settings, train nothing)."
)


class RecipeParser(TrlParser):
    """A TrlParser whose refusals are one TrainingConfigError: a flag argparse cannot read (``--learning_rate abc``)
    is one error line, not the 150-line usage; a recipe value of the wrong type or an unknown key is refused."""

    recipe_name = "recipe"  # the --config file's name, for messages about its values

    def __init__(self, dataclass_types, **kwargs) -> None:
        super().__init__(dataclass_types, **kwargs)
        set_option_help(self, "--chat_template_path", CHAT_TEMPLATE_HELP)
        self.description = RECIPE_USAGE
        self.usage = "train_sft.py [-h] --config RECIPE.yaml [--FLAG VALUE ...] (every flag below)"
        # for --help only: TrlParser takes --config out of the arguments before they are parsed
        self.add_argument(
            "--config", metavar="FILE", default=argparse.SUPPRESS, help="the recipe: a YAML file of the flags below"
        )  # SUPPRESS: no `config` left in the namespace, which HfArgumentParser would return as a fourth item

    def error(self, message: str):
        raise TrainingConfigError(message)

    tf32_left_off = False  # the recipe's tf32: true, dropped on a machine without a CUDA GPU with TF32

    def set_defaults_with_config(self, **config) -> list[str]:
        check_recipe_values(parser_actions(self), config, self.recipe_name)
        if config.get("tf32") is True and not tf32_available():
            # transformers refuses tf32 without such a GPU; the recipes ask for it as LLaVA-1.5 did, for GPU runs
            config = {**config, "tf32": None}
            self.tf32_left_off = True
            logger.info("tf32: true in %s left off: no CUDA GPU with TF32 here", self.recipe_name)
        return super().set_defaults_with_config(**config)

    def parse_args_and_config(self, args=None, **kwargs) -> tuple:
        """The dataclasses of ``args`` (default: ``sys.argv[1:]``); unknown keys, bad values, a missing recipe file:
        TrainingConfigError."""
        args = sys.argv[1:] if args is None else list(args)
        self.recipe_name = Path(args[args.index("--config") + 1]).name if "--config" in args[:-1] else "recipe"
        try:
            parsed = tuple(super().parse_args_and_config(args, **kwargs))
        except KeypointInstructError:
            raise
        except (ValueError, OSError) as err:  # unknown YAML key, bad value, missing recipe file
            message = " ".join(str(err).split())
            if "bf16" in message and "use_cpu" in message:  # transformers' text names a fix that is not ours
                message = "bf16 needs a GPU and this machine has none; add --bf16 false to train or check on the CPU"
            raise TrainingConfigError(f"training config: {message}") from err
        for item in parsed:
            if isinstance(item, ScriptArguments):
                item.recipe_tf32_left_off = self.tf32_left_off and not any(a.startswith("--tf32") for a in args)
        return parsed


def is_main_process() -> bool:
    """True in the process of rank 0 (``accelerate launch`` starts one process per rank; plain python is rank 0)."""
    return os.environ.get("RANK", "0") == "0"


def start_logging() -> None:
    """Progress (INFO) from rank 0 only; every rank's warnings and errors; all on stderr."""
    level = logging.INFO if is_main_process() else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def say_error(err: KeypointInstructError, prog: str) -> int:
    """``<prog>: error: <err>`` on stderr, from rank 0 only (every rank checks the same inputs); the exit code."""
    if is_main_process():
        print(f"{prog}: error: {err}", file=sys.stderr)
    return err.exit_code


@contextmanager
def one_line_errors(prog: str) -> Iterator[None]:
    """Around a script's whole run: logging started, and bad input said in one line with its exit code (2), never
    a traceback."""
    start_logging()
    try:
        yield
    except KeypointInstructError as err:
        raise SystemExit(say_error(err, prog)) from None
