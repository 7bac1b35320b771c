"""Every workaround for upstream behaviour that uses private or internal APIs (transformers, TRL, DeepSpeed, argparse).

Nothing else in the training stage touches an underscore-private name or an internal module of these libraries:
when one of them changes, this is the one file to read. Each workaround says which behaviour of which version it works
around and how to tell when it can go. Checked against: transformers 5.25.0, trl 1.16.0, deepspeed 0.19.8,
torch 2.13.0, Python 3.11. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def quiet_deprecated_collectives() -> None:
    """Hide the deprecation warning torch gives on every collective call DeepSpeed makes.

    Works around: DeepSpeed 0.19 (ZeRO-3) calls ``torch.distributed.all_gather_into_tensor`` and
    ``reduce_scatter_tensor``, which torch 2.13 deprecates: one identical warning per gathered or reduced parameter,
    thousands of lines that bury the training log. Can go when a ZeRO-3 launch without this filter
    (``pytest tests/test_train_sft.py -k zero3``, stderr) shows no "is deprecated" line for them.
    """
    warnings.filterwarnings(
        "ignore", message=r"`torch\.distributed\.(all_gather_into_tensor|reduce_scatter_tensor)` is deprecated"
    )


@contextmanager
def without_zero3_init() -> Iterator[None]:
    """Build a model normally even inside a ZeRO-3 run: zero.Init is collective, and only rank 0 builds here.

    Works around: transformers 5.25 decides whether ``from_config``/``from_pretrained`` wrap the build in DeepSpeed's
    ``zero.Init`` from a module global, the private
    ``transformers.integrations.deepspeed._hf_deepspeed_config_weak_ref`` (set when TrainingArguments or accelerate's
    DeepSpeed plugin is built for ZeRO-3); its public ``unset_hf_deepspeed_config`` cannot restore it afterwards.
    Can go when transformers offers a public switch (a context manager or a ``from_config`` argument) to build one
    model without zero.Init; tests/training/test_upstream.py fails when the private name disappears.
    """
    from transformers.integrations import deepspeed as hf_deepspeed

    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


def module_key_map(model) -> Callable[[str], str]:
    """Map any key transformers can load into ``model`` (a saved name, the legacy llava-hf layout, a ZeRO-3 save's
    doubled ``model.``) to the name of the module it fills, as ``model.state_dict()`` names it.

    Works around: transformers 5.24-5.25 renames keys on load and on save (``save_pretrained`` writes LLaVA in the
    legacy llava-hf layout) through its internal modules ``transformers.conversion_mapping`` and
    ``transformers.core_model_loading``; no public function maps one key. Can go when transformers exposes that map,
    or when saves use ``state_dict()`` names and ZeRO-3 saves stop doubling ``model.`` (then checkpoints.py needs no
    renaming at all: tests/training/test_checkpoints.py shows it).
    """
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    keys = dict.fromkeys(model.state_dict())  # names only: rename_source_key reads the keys of its meta state dict
    transforms = get_model_conversion_mapping(model, add_legacy=True)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]

    def module_key(key: str) -> str:
        return rename_source_key(key, renamings, converters, model.base_model_prefix, keys)[0]

    return module_key


def canonical_names(config) -> tuple[Callable[[str], str | None], set[str]]:
    """How transformers names the weights of a fresh model of ``config`` on disk, and a map to those names.

    The map takes any key transformers can load (see :func:`module_key_map`) to the module it fills and back to that
    module's canonical saved name; None for a key that fills nothing. Built on the meta device: no memory, no weights.

    Works around: the same renaming as :func:`module_key_map`, the other way: ``save_pretrained`` names come from the
    internal ``transformers.core_model_loading.revert_weight_conversion`` (transformers 5.24-5.25). Can go with it.
    """
    import torch
    from transformers import AutoModelForImageTextToText
    from transformers.core_model_loading import revert_weight_conversion

    with torch.device("meta"), without_zero3_init():
        reference = AutoModelForImageTextToText.from_config(config)
    meta = reference.state_dict()
    module_key = module_key_map(reference)
    saved_name = {key: next(iter(revert_weight_conversion(reference, {key: meta[key]}))) for key in meta}

    def canonical(key: str) -> str | None:
        return saved_name.get(module_key(key))

    expected = set(saved_name.values())
    if getattr(config.get_text_config(), "tie_word_embeddings", False):
        expected = {key for key in expected if not key.endswith("lm_head.weight")}
    return canonical, expected


def resuming_by_saved_names(trainer_class: type, load_weights: Callable[[Any, str], Any]) -> type:
    """``trainer_class`` whose plain (not DeepSpeed, not FSDP) resume loads weights with ``load_weights(model, dir)``.

    Works around: transformers 5.25's ``Trainer._load_from_checkpoint`` (private) resumes a plain run with a bare
    ``load_state_dict`` of the checkpoint's file, whose keys ``save_pretrained`` wrote in the legacy llava-hf layout:
    for LLaVA it matches no key, warns, and trains on from the initial weights. DeepSpeed and FSDP resume from their
    own formats and keep the Trainer's code. Can go when a plain resume without it continues the loss of an
    uninterrupted run (the resumed plain run test of tests/test_train_sft.py).
    """

    class LlavaSFTTrainer(trainer_class):
        """SFTTrainer whose plain (non-DeepSpeed) resume loads the checkpoint's weights under their saved names."""

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
            if self.is_deepspeed_enabled or self.is_fsdp_enabled:  # their own checkpoint formats
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            load_weights(self.model if model is None else model, resume_from_checkpoint)

    return LlavaSFTTrainer


def with_train_sampler(trainer_class: type, make_sampler: Callable[[Any, Any], Any]) -> type:
    """``trainer_class`` whose training batches are drawn by ``make_sampler(trainer, train_dataset)``.

    Works around: transformers 5.25's Trainer takes its training sampler from the private ``_get_train_sampler``
    only; ``train_sampling_strategy`` offers random, sequential, group_by_length and batch_rebalance, none of which is
    LLaVA-1.5's order (parity.LengthGroupedSampler). Can go when the Trainer takes a sampler as an argument;
    tests/training/test_upstream.py fails when the private name disappears.
    """

    class SampledTrainer(trainer_class):
        def _get_train_sampler(self, train_dataset=None):
            return make_sampler(self, self.train_dataset if train_dataset is None else train_dataset)

    return SampledTrainer


def parser_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """Every option of ``parser``, with the type argparse converts its value with.

    Works around: TRL 1.16's ``TrlParser.parse_args_and_config`` hands the recipe YAML's values to argparse as
    defaults (``set_defaults_with_config``), and argparse converts, and so checks, only string defaults; checking
    the others needs each option's type, which argparse (Python 3.11) keeps only in the private ``_actions``. Can go
    when TrlParser checks YAML values itself: tests/test_recipes.py::test_a_recipe_value_of_the_wrong_type_fails
    then passes without recipe.check_recipe_values.
    """
    return list(parser._actions)


def set_option_help(parser: argparse.ArgumentParser, option: str, text: str) -> None:
    """Replace the ``--help`` text of one option of a built parser.

    Works around: TRL 1.16's help for ``SFTConfig.chat_template_path`` does not say how this project reads a
    relative path (from the current folder, else from the repository); HfArgumentParser copies the dataclass field's
    help, and argparse (Python 3.11) has no public way to reach one option's action but the private
    ``_option_string_actions``. Can go when the project stops resolving recipe paths against the repository.
    """
    parser._option_string_actions[option].help = text


def leave_distributed_run() -> None:
    """End a finished multi-process run without meeting Gloo's exit-time abort; call it last, after saving.

    Works around: with the gloo backend (DeepSpeed's CPU accelerator), a rank could abort while the interpreter shut
    down after a successful run ("terminate called without an active exception", SIGABRT, exit status 1 from
    `accelerate launch`): Gloo's worker threads still held work whose tensors reach back into Python once it is
    being torn down (torch 2.13; upstream's fix, an atexit handler destroying the process groups,
    pytorch/pytorch#179291, was abandoned). Seen once here, in a fresh clone's CI run; the same test passed the runs
    before and after. So: destroy the process groups while the interpreter is whole, flush, and leave through
    ``os._exit`` with status 0 - the checkpoint is saved and every rank has passed the last barrier. Can go when
    torch destroys its groups before finalization (then 2-process launches never end in SIGABRT without this).
    """
    import logging
    import os
    import sys

    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
