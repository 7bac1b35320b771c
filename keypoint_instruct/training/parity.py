"""LLaVA-1.5's own training choices where TRL and transformers default to others, made explicit and switchable.

Takes the parsed ScriptArguments, SFTConfig and ModelConfig; gives what ``sft.py`` puts into the trainer (loss averaged
per micro-batch, LLaVA's length-grouped sampler, the attention implementation) and :func:`settings_lines`, the
effective settings that ``--check_only`` prints and the training log repeats, each marked where it differs from
LLaVA-1.5. The reference is haotian-liu/LLaVA at LLaVA-1.5 (``llava/train/train.py``, ``llava_trainer.py``,
``scripts/v1_5/finetune.sh``, ``scripts/zero3.json``; transformers 4.31-4.37, DeepSpeed 0.12).

- Gradient clipping: LLaVA's ZeRO-3 json has no ``gradient_clipping`` key and DeepSpeed 0.12 defaulted it to 0 (off);
  DeepSpeed 0.19 defaults a missing key to 1.0, so the recipes set ``max_grad_norm: 0`` and ds_zero3.json keeps
  ``"auto"``, which transformers fills from it.
- Loss averaging: transformers 5 and TRL divide the summed loss of the whole accumulated (and gathered) batch by its
  number of trained tokens; LLaVA (transformers 4.37) averaged the tokens of each micro-batch, then the micro-batches.
- Batches: LLaVA's ``group_by_modality_length`` cut every optimizer step's samples (drawn at random as usual) into
  micro-batches of about the same total length. transformers' own ``group_by_length`` does something else (it sorts
  50 optimizer steps' worth of samples together), so it is not used for this.
- tf32 and flash-attention 2: LLaVA trained with both; sdpa computes the same attention where flash-attn is missing.
Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from keypoint_instruct.errors import TrainingConfigError

MICRO_BATCH = "micro_batch"  # LLaVA-1.5: mean over each micro-batch's trained tokens, then over the micro-batches
TOKENS = "tokens"  # transformers 5 / TRL: one mean over every trained token of the global batch
LOSS_AVERAGING = (MICRO_BATCH, TOKENS)
AUTO_ATTENTION = "auto"  # flash_attention_2 where flash-attn is installed (and a CUDA GPU), else sdpa
LLAVA_GLOBAL_BATCH = 128  # scripts/v1_5/finetune.sh: 16 per device x 8 GPUs, no accumulation
LLAVA_MAX_TOKENS = 2048  # its model_max_length: longer sequences were cut after the image tokens were inserted


def check_parity_settings(script_args, training_args) -> None:
    """Refuse settings that contradict each other (both pick the sampler)."""
    strategy = str(getattr(training_args, "train_sampling_strategy", "random"))
    if script_args.group_by_modality_length and strategy != "random":
        raise TrainingConfigError(
            f"group_by_modality_length (LLaVA-1.5's sampler) and train_sampling_strategy {strategy} both choose the "
            "batches: set group_by_modality_length false to use train_sampling_strategy"
        )


def averaging_per_micro_batch(trainer_class: type) -> type:
    """``trainer_class`` whose loss is LLaVA-1.5's: the mean over each micro-batch's own trained tokens, divided by
    the accumulation steps (and averaged across devices by DDP/DeepSpeed), i.e. the mean of the micro-batch means.

    transformers 5.25 documents this route: a ``compute_loss`` that returns a per-batch mean sets
    ``loss_is_scaled_for_ga = False`` and the Trainer divides by the accumulation steps. Without
    ``num_items_in_batch`` TRL 1.16's ``compute_loss`` divides by the micro-batch's own token count and skips its
    multiplication by the number of devices.
    """

    class MicroBatchMeanTrainer(trainer_class):
        loss_is_scaled_for_ga = False

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=None)

    return MicroBatchMeanTrainer


def llava_lengths(dataset) -> list[int]:
    """LLaVA's ``modality_lengths`` of every row: the whitespace-separated words of all turns, an image counting as
    one word (LLaVA's text held ``<image>``). Every keypoint-instruct row has an image, so the sign LLaVA gave
    text-only rows to group them apart is not needed."""
    lengths = []
    for batch in dataset.select_columns(["messages"]).iter(batch_size=1000):
        for messages in batch["messages"]:
            words = 0
            for message in messages:
                content = message["content"]
                parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
                for part in parts:
                    words += len((part.get("text") or "").split()) if part.get("type") == "text" else 1
            lengths.append(max(words, 1))
    return lengths


def even_micro_batches(indices: Sequence[int], lengths: Sequence[int], parts: int) -> list[list[int]]:
    """Split one optimizer step's ``indices`` into ``parts`` micro-batches of equal size and about equal total length:
    longest first, each to the open micro-batch with the least length so far (LLaVA's ``split_to_even_chunks``).
    A step that does not divide evenly (the last one) is dealt round-robin."""
    if len(indices) % parts:
        return [list(indices[start::parts]) for start in range(parts)]
    size = len(indices) // parts
    batches: list[list[int]] = [[] for _ in range(parts)]
    totals = [0.0] * parts
    for index in sorted(indices, key=lambda i: lengths[i], reverse=True):
        lightest = totals.index(min(totals))
        batches[lightest].append(index)
        totals[lightest] += lengths[index]
        if len(batches[lightest]) == size:
            totals[lightest] = float("inf")  # full
    return batches


class LengthGroupedSampler:
    """LLaVA-1.5's ``group_by_modality_length`` order: a fresh random permutation each epoch, cut into optimizer
    steps of ``micro_batch_size * micro_batches_per_step`` samples (``micro_batches_per_step`` = processes x
    accumulation steps), each step's samples dealt into micro-batches of about equal length.

    Which samples share an optimizer step is as random as plain shuffling; only their split into micro-batches (and
    devices) changes, so the padding and the work per device even out. Seeded by ``seed + epoch``, so every rank
    draws the same order and a resumed run the same batches.
    """

    def __init__(self, lengths: Sequence[int], micro_batch_size: int, micro_batches_per_step: int, seed: int = 0):
        self.lengths = list(lengths)
        self.micro_batch_size = micro_batch_size
        self.micro_batches_per_step = micro_batches_per_step
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        import torch

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        step = self.micro_batch_size * self.micro_batches_per_step
        for start in range(0, len(order), step):
            for batch in even_micro_batches(order[start : start + step], self.lengths, self.micro_batches_per_step):
                yield from batch


def length_grouped_sampler(trainer, dataset) -> LengthGroupedSampler:
    """The sampler for ``trainer`` over ``dataset`` (lengths read from its ``messages``, without its transform)."""
    args = trainer.args
    parts = args.gradient_accumulation_steps * trainer.accelerator.num_processes
    lengths = llava_lengths(dataset.with_format(None))
    return LengthGroupedSampler(lengths, args.per_device_train_batch_size, parts, seed=args.seed)


def resolve_attention(requested: str | None, dtype: str | None) -> tuple[str | None, str]:
    """The attention implementation to load the model with, and why. ``auto``: flash-attention 2 when the flash-attn
    package works here (a CUDA GPU) and the weights are 16-bit, else PyTorch's sdpa; anything else as given."""
    if requested != AUTO_ATTENTION:
        return requested, "as set" if requested else "transformers' default (sdpa)"
    from transformers.utils import is_flash_attn_2_available

    if dtype not in ("bfloat16", "float16"):
        return "sdpa", f"auto: flash-attention 2 needs 16-bit weights, dtype is {dtype}"
    if is_flash_attn_2_available():
        return "flash_attention_2", "auto: flash-attn is installed, as LLaVA-1.5 trained"
    return "sdpa", "auto: flash-attn is not installed here (or no CUDA GPU); sdpa computes the same attention"


def tf32_available() -> bool:
    """True on a CUDA GPU with TF32 (compute capability 8.0 or newer)."""
    from transformers.utils import is_torch_tf32_available

    return is_torch_tf32_available()


def _deepspeed_clipping(max_grad_norm: float) -> tuple[float, str] | None:
    """The gradient clipping DeepSpeed will use under ``accelerate launch`` (its json named in the environment)."""
    path = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() not in ("1", "true") or not path:
        return None
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("gradient_clipping")
    if value == "auto":
        return max_grad_norm, f'{Path(path).name} gradient_clipping "auto" takes max_grad_norm'
    if value is None:
        return 1.0, f"{Path(path).name} has no gradient_clipping key: DeepSpeed 0.19 then clips at 1.0"
    return float(value), f"{Path(path).name} sets gradient_clipping {value}"


def _clipping_row(training_args) -> tuple[str, str, bool]:
    clip, where = float(training_args.max_grad_norm or 0), "max_grad_norm"
    deepspeed = _deepspeed_clipping(clip)
    if deepspeed is not None:
        clip, where = deepspeed
    text = f"off ({where} 0)" if clip <= 0 else f"at norm {clip:g} ({where})"
    return "gradient clipping", text, clip <= 0


def _batch_rows(script_args, training_args, processes: int) -> list[tuple[str, str, bool]]:
    averaging = {
        MICRO_BATCH: "each micro-batch's trained tokens averaged, then the micro-batches",
        TOKENS: "one mean over every trained token of the global batch (transformers 5 / TRL)",
    }[script_args.loss_averaging]
    if script_args.group_by_modality_length:
        batches = "group_by_modality_length: each step's random samples dealt into micro-batches of even length"
    else:
        batches = f"train_sampling_strategy {training_args.train_sampling_strategy}"
    per_device, accumulation = training_args.per_device_train_batch_size, training_args.gradient_accumulation_steps
    total = per_device * accumulation * processes
    return [
        ("loss averaging", f"{script_args.loss_averaging}: {averaging}", script_args.loss_averaging == MICRO_BATCH),
        ("batches", batches, bool(script_args.group_by_modality_length)),
        (
            "global batch",
            f"{per_device} per device x {accumulation} accumulation x {processes} process(es) = {total} "
            f"(LLaVA-1.5: {LLAVA_GLOBAL_BATCH}; the paper's Table 2: 8 x 2 x 2 GPUs = 32)",
            total == LLAVA_GLOBAL_BATCH,
        ),
    ]


def _numerics_rows(script_args, training_args, model_args) -> list[tuple[str, str, bool]]:
    asked = bool(training_args.tf32 or getattr(script_args, "recipe_tf32_left_off", False))
    if training_args.tf32 and tf32_available():
        tf32 = "on"
    elif asked:
        tf32 = "off here: no CUDA GPU with TF32 (the recipe's tf32: true turns it on where there is one)"
    else:
        tf32 = "off (tf32 not set)"
    attention, why = resolve_attention(model_args.attn_implementation, model_args.dtype)
    legacy = script_args.tokenizer_legacy
    return [
        ("tf32", tf32, asked),
        ("attention", f"{attention} ({why})", model_args.attn_implementation == AUTO_ATTENTION),
        (
            "Llama tokenizer",
            f"tokenizer_legacy {str(legacy).lower()}: "
            + ("a ▁ after every special token, LLaVA-1.5's ids" if legacy else "as the model folder says"),
            bool(legacy),
        ),
    ]


def _data_rows(script_args, training_args) -> list[tuple[str, str, bool]]:
    max_length = training_args.max_length
    cut = f"LLaVA-1.5 cut at {LLAVA_MAX_TOKENS} tokens, image tokens included"
    return [
        ("max_length", f"{max_length} ({cut})" if max_length else f"null: nothing is cut ({cut})", False),
        (
            "trained tokens",
            "the answers and their </s>" if training_args.assistant_only_loss else "the whole text",
            bool(training_args.assistant_only_loss),
        ),
        (
            "images",
            "padded to a square of CLIP's mean colour" if script_args.pad_to_square else "the processor's centre crop",
            bool(script_args.pad_to_square),
        ),
        ("vision tower", "frozen" if script_args.freeze_vision_tower else "trained", script_args.freeze_vision_tower),
    ]


def settings_lines(script_args, training_args, model_args, *, processes: int | None = None) -> list[str]:
    """The effective training settings, one line each; a leading ``*`` marks one that differs from LLaVA-1.5."""
    processes = processes or int(os.environ.get("WORLD_SIZE", "1"))
    rows = [
        _clipping_row(training_args),
        *_batch_rows(script_args, training_args, processes),
        *_numerics_rows(script_args, training_args, model_args),
        *_data_rows(script_args, training_args),
    ]
    width = max(len(name) for name, _, _ in rows)
    return [f"{' ' if same else '*'} {name:<{width}}  {value}" for name, value, same in rows]
