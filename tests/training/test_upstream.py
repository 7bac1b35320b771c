"""keypoint_instruct/training/upstream.py: the workarounds still reach the upstream internals they rely on."""

from __future__ import annotations

import argparse

from keypoint_instruct.training.upstream import canonical_names, parser_actions, set_option_help, without_zero3_init


def test_canonical_names_are_what_a_fresh_save_writes(tiny_llava_dir):
    from safetensors.torch import load_file
    from transformers import AutoConfig

    canonical, expected = canonical_names(AutoConfig.from_pretrained(tiny_llava_dir))
    assert expected == set(load_file(tiny_llava_dir / "model.safetensors"))
    assert canonical("language_model.model.model.norm.weight") == "language_model.model.norm.weight"
    assert canonical("no.such.weight") is None


def test_without_zero3_init_hides_the_zero3_config_and_puts_it_back():
    """Inside, transformers sees no ZeRO-3 config (no collective zero.Init); after, the run's config is back."""
    from transformers.integrations import deepspeed as hf_deepspeed

    class Config:
        def is_zero3(self) -> bool:
            return True

    config = Config()
    hf_deepspeed.set_hf_deepspeed_config(config)
    try:
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
        with without_zero3_init():
            assert not hf_deepspeed.is_deepspeed_zero3_enabled()
        assert hf_deepspeed.is_deepspeed_zero3_enabled()
    finally:
        hf_deepspeed.unset_hf_deepspeed_config()


def test_parser_options_are_listed_and_one_help_text_replaced():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, help="old")
    assert [a.type for a in parser_actions(parser) if a.dest == "steps"] == [int]
    set_option_help(parser, "--steps", "new words")
    assert "new words" in parser.format_help() and "old" not in parser.format_help()


def test_the_trainer_still_draws_its_training_sampler_from_get_train_sampler():
    """with_train_sampler overrides this private method; parity's trainer test checks the sampler really is used."""
    import inspect

    from transformers import Trainer

    assert list(inspect.signature(Trainer._get_train_sampler).parameters) == ["self", "train_dataset"]
