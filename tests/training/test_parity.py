"""keypoint_instruct/training/parity.py: LLaVA-1.5's loss averaging, length-grouped batches, attention and settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keypoint_instruct.errors import TrainingConfigError
from keypoint_instruct.training.parity import (
    MICRO_BATCH,
    TOKENS,
    LengthGroupedSampler,
    even_micro_batches,
    llava_lengths,
    resolve_attention,
    settings_lines,
)
from train_sft import build_trainer, parse_args

REPO = Path(__file__).resolve().parents[2]
CPU_RECIPE = REPO / "recipes" / "tiny-llava" / "sft" / "config_cpu.yaml"
FULL_RECIPE = REPO / "recipes" / "llava-1.5-7b" / "sft" / "config_full.yaml"


def test_even_micro_batches_deal_the_longest_first_into_the_lightest_batch():
    lengths = [100, 90, 10, 10, 50, 40, 5, 5]
    batches = even_micro_batches(range(8), lengths, 2)
    assert sorted(i for batch in batches for i in batch) == list(range(8))
    assert [len(batch) for batch in batches] == [4, 4]
    totals = sorted(sum(lengths[i] for i in batch) for batch in batches)
    assert totals == [155, 155]  # a plain cut in index order gives 250 and 60
    assert even_micro_batches(range(5), lengths, 2) == [[0, 2, 4], [1, 3]]  # a short last step: round-robin


def test_the_sampler_keeps_each_steps_samples_random_and_evens_out_its_micro_batches():
    import torch

    lengths = [int(x) for x in torch.randint(5, 500, (96,), generator=torch.Generator().manual_seed(1))]
    sampler = LengthGroupedSampler(lengths, micro_batch_size=4, micro_batches_per_step=4, seed=7)
    order = list(sampler)
    assert sorted(order) == list(range(96)) and len(sampler) == 96
    shuffled = torch.randperm(96, generator=torch.Generator().manual_seed(7)).tolist()
    spread, random_spread = [], []
    for start in range(0, 96, 16):  # one optimizer step: the same samples plain shuffling would have put there
        assert set(order[start : start + 16]) == set(shuffled[start : start + 16])
        totals = [sum(lengths[i] for i in order[start + k : start + k + 4]) for k in range(0, 16, 4)]
        random_totals = [sum(lengths[i] for i in shuffled[start + k : start + k + 4]) for k in range(0, 16, 4)]
        spread.append(max(totals) - min(totals))
        random_spread.append(max(random_totals) - min(random_totals))
    assert sum(spread) < sum(random_spread) / 4
    assert list(sampler) == order  # the same epoch draws the same order (every rank, and a resumed run)
    sampler.set_epoch(1)
    assert list(sampler) != order


def test_llava_lengths_count_words_and_one_per_image():
    from datasets import Dataset

    text = [{"type": "text", "text": "What is the person doing?"}]
    rows = Dataset.from_list(
        [
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "text": None}, *text]},
                    {"role": "assistant", "content": [{"type": "text", "text": "Standing with arms up."}]},
                ]
            }
        ]
    )
    assert llava_lengths(rows) == [1 + 5 + 4]


def test_auto_attention_falls_back_to_sdpa_and_says_why():
    assert resolve_attention("eager", "bfloat16") == ("eager", "as set")
    attention, why = resolve_attention("auto", "float32")
    assert attention == "sdpa" and "16-bit" in why
    attention, why = resolve_attention("auto", "bfloat16")  # no flash-attn (nor GPU) in the test environment
    assert attention == "sdpa" and "flash-attn is not installed" in why


def _argv(tiny_llava_dir, sft_dataset, out, *extra) -> list[str]:
    dataset_dir, coco_root = sft_dataset
    base = ["--config", str(CPU_RECIPE), "--model_name_or_path", str(tiny_llava_dir)]
    base += ["--dataset_name", str(dataset_dir), "--coco_root", str(coco_root), "--output_dir", str(out)]
    return [*base, *extra]


def _reference_losses(model, batches) -> tuple[list, list]:
    """Per micro-batch: the summed next-token cross-entropy of its trained labels, and how many there are."""
    import torch.nn.functional as F

    sums, counts = [], []
    for batch in batches:
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
        labels = batch["labels"][:, 1:]
        sums.append(F.cross_entropy(logits[:, :-1].flatten(0, 1), labels.flatten(), reduction="sum"))
        counts.append(int((labels != -100).sum()))
    return sums, counts


@pytest.mark.parametrize("averaging", [MICRO_BATCH, TOKENS])
def test_the_loss_is_averaged_per_micro_batch_like_llava_or_over_all_tokens(
    averaging, tiny_llava_dir, sft_dataset, tmp_path
):
    """Two accumulated micro-batches through the Trainer's own training_step: the loss and the gradient it leaves."""
    import torch

    flags = ["--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2", "--loss_averaging", averaging]
    trainer = build_trainer(*parse_args(_argv(tiny_llava_dir, sft_dataset, tmp_path, *flags)))
    batches, num_items = trainer.get_batch_samples(iter(trainer.get_train_dataloader()), 2, trainer.args.device)
    trainer.current_gradient_accumulation_steps = len(batches)  # what the training loop sets before its steps
    model = trainer.model
    model.train()
    model.zero_grad()
    loss = sum(float(trainer.training_step(model, batch, num_items)) for batch in batches)
    weight = model.lm_head.weight
    grad = weight.grad.clone()

    model.zero_grad()
    sums, counts = _reference_losses(model, batches)
    assert counts[0] != counts[1] and int(num_items) == sum(counts)  # else both averages agree
    per_micro_batch = sum(s / n for s, n in zip(sums, counts, strict=True)) / 2
    per_token = sum(sums) / sum(counts)
    expected, other = (per_micro_batch, per_token) if averaging == MICRO_BATCH else (per_token, per_micro_batch)
    assert loss == pytest.approx(float(expected.detach()), rel=1e-4)
    assert loss != pytest.approx(float(other.detach()), rel=1e-4)
    expected.backward()
    assert torch.allclose(grad, weight.grad, rtol=1e-3, atol=1e-7)


def _sampler(trainer):
    """The sampler under accelerate's prepared training dataloader (single process: its batch sampler's)."""
    return trainer.get_train_dataloader().base_dataloader.batch_sampler.sampler


def test_the_trainer_draws_llavas_length_grouped_batches(tiny_llava_dir, sft_dataset, tmp_path):
    flags = ["--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "3"]
    trainer = build_trainer(*parse_args(_argv(tiny_llava_dir, sft_dataset, tmp_path, *flags)))
    sampler = _sampler(trainer)
    assert isinstance(sampler, LengthGroupedSampler)
    assert (sampler.micro_batch_size, sampler.micro_batches_per_step) == (2, 3)
    assert sampler.lengths == llava_lengths(trainer.train_dataset.with_format(None))
    off = _argv(tiny_llava_dir, sft_dataset, tmp_path, "--group_by_modality_length", "false")
    off = build_trainer(*parse_args(off))
    assert not isinstance(_sampler(off), LengthGroupedSampler)


def test_two_samplers_at_once_are_refused(tiny_llava_dir, sft_dataset, tmp_path):
    flags = ["--train_sampling_strategy", "group_by_length", "--check_only"]
    with pytest.raises(TrainingConfigError, match="group_by_modality_length .* both choose"):
        build_trainer(*parse_args(_argv(tiny_llava_dir, sft_dataset, tmp_path, *flags)))


def _settings(tmp_path, *extra: str) -> dict[str, str]:
    args = parse_args(["--config", str(FULL_RECIPE), "--dataset_name", "org/data", "--bf16", "false", *extra])
    lines = settings_lines(*args, processes=2)
    return {line[2:].split("  ")[0].strip(): line for line in lines}


def test_the_paper_recipe_shows_llavas_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    rows = _settings(tmp_path, "--output_dir", str(tmp_path))
    assert rows["gradient clipping"].startswith("  ") and "off (max_grad_norm 0)" in rows["gradient clipping"]
    assert rows["loss averaging"].startswith("  ") and "micro_batch" in rows["loss averaging"]
    assert rows["batches"].startswith("  ") and "group_by_modality_length" in rows["batches"]
    assert rows["tf32"].startswith("  ") and "tf32: true" in rows["tf32"]  # asked for; no GPU in the tests
    assert "= 32 (LLaVA-1.5: 128" in rows["global batch"] and rows["global batch"].startswith("*")
    assert rows["max_length"].startswith("*") and "null" in rows["max_length"]
    assert rows["Llama tokenizer"].startswith("  ") and rows["vision tower"].startswith("  ")
    changed = _settings(
        tmp_path,
        *("--output_dir", str(tmp_path), "--max_grad_norm", "1.0", "--loss_averaging", "tokens"),
        *("--group_by_modality_length", "false", "--tf32", "false", "--tokenizer_legacy", "false"),
    )
    for name in ("gradient clipping", "loss averaging", "batches", "tf32", "Llama tokenizer"):
        assert changed[name].startswith("*"), changed[name]


@pytest.mark.parametrize(
    ("value", "needle", "same"),
    [("auto", 'gradient_clipping "auto" takes max_grad_norm 0', True), (None, "clips at 1.0", False)],
)
def test_clipping_under_deepspeed_is_what_its_json_gives(value, needle, same, tmp_path, monkeypatch):
    """DeepSpeed 0.19 clips at 1.0 when its json has no gradient_clipping key (DeepSpeed 0.12, LLaVA's, at 0)."""
    config = json.loads((REPO / "recipes/accelerate_configs/ds_zero3.json").read_text())
    assert config["gradient_clipping"] == "auto"
    if value is None:
        del config["gradient_clipping"]
    (tmp_path / "ds.json").write_text(json.dumps(config))
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", str(tmp_path / "ds.json"))
    row = _settings(tmp_path, "--output_dir", str(tmp_path))["gradient clipping"]
    assert needle in row and row.startswith("  " if same else "*"), row
