"""Every recipe parses through the real TrlParser, says what the paper's Table 2 says, and stale keys fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from keypoint_instruct.errors import TrainingConfigError
from train_sft import parse_args

REPO = Path(__file__).resolve().parent.parent
RECIPES = sorted((REPO / "recipes").glob("*/sft/config_*.yaml"))
LLAVA_RECIPES = sorted((REPO / "recipes" / "llava-1.5-7b" / "sft").glob("config_*.yaml"))


def _parse(recipe: Path, *extra: str):
    # The COCO root must exist for ScriptArguments' checks (the recipe's is a cluster path); bf16 needs a GPU.
    base = ["--config", str(recipe), "--dataset_name", "org/data", "--coco_root", str(REPO), "--bf16", "false"]
    return parse_args([*base, *extra])


def test_there_is_a_recipe_per_ablation_and_a_cpu_one():
    names = {p.relative_to(REPO / "recipes").as_posix() for p in RECIPES}
    assert names == {
        "llava-1.5-7b/sft/config_full.yaml",
        "llava-1.5-7b/sft/config_conversation.yaml",
        "llava-1.5-7b/sft/config_detailed_description.yaml",
        "llava-1.5-7b/sft/config_complex_reasoning.yaml",
        "tiny-llava/sft/config_cpu.yaml",
    }


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.relative_to(REPO / "recipes").as_posix())
def test_every_recipe_parses_and_keeps_llava_fidelity(recipe, tmp_path):
    script_args, training_args, model_args = _parse(recipe, "--output_dir", str(tmp_path))
    assert training_args.assistant_only_loss is True
    assert training_args.max_length is None
    assert script_args.freeze_vision_tower and script_args.pad_to_square
    assert (REPO / training_args.chat_template_path).is_file()
    assert "{% generation %}" in (REPO / training_args.chat_template_path).read_text().replace("-", "")
    assert training_args.save_only_model is True
    # every key of the YAML reached a dataclass with the YAML's value (nothing silently dropped)
    values = yaml.safe_load(recipe.read_text())
    parsed = {**vars(model_args), **vars(script_args)}
    for key, value in values.items():
        if key in parsed and key not in ("dataset_name", "coco_root"):  # given on the command line above
            assert parsed[key] == value, key


@pytest.mark.parametrize("recipe", LLAVA_RECIPES, ids=lambda p: p.name)
def test_llava_recipes_are_the_papers_table_2(recipe, tmp_path):
    script_args, args, model_args = _parse(recipe, "--output_dir", str(tmp_path))
    assert model_args.model_name_or_path == "llava-hf/llava-1.5-7b-hf"
    assert args.per_device_train_batch_size == 8
    assert args.gradient_accumulation_steps == 2
    assert args.learning_rate == pytest.approx(2e-5)
    assert args.lr_scheduler_type.value == "cosine"
    assert args.warmup_steps == pytest.approx(0.03)  # a ratio: transformers 5 reads floats below 1 that way
    assert args.optim.value.startswith("adamw")
    assert args.num_train_epochs == 1
    assert args.weight_decay == 0
    assert args.activation_checkpointing is True
    assert yaml.safe_load(recipe.read_text())["bf16"] is True


@pytest.mark.parametrize("recipe", LLAVA_RECIPES, ids=lambda p: p.name)
def test_llava_recipes_train_as_llava_15_did(recipe, tmp_path):
    """No clipping, loss per micro-batch, LLaVA's length grouping, tf32, flash-attention where installed."""
    script_args, args, model_args = _parse(recipe, "--output_dir", str(tmp_path))
    assert args.max_grad_norm == 0
    assert script_args.loss_averaging == "micro_batch" and script_args.group_by_modality_length
    assert script_args.tokenizer_legacy and model_args.attn_implementation == "auto"
    assert yaml.safe_load(recipe.read_text())["tf32"] is True
    # no CUDA GPU in the tests: the recipe's tf32 is left off rather than refused (transformers refuses it)
    assert args.tf32 is None and script_args.recipe_tf32_left_off
    script_args, args, _ = _parse(recipe, "--output_dir", str(tmp_path), "--tf32", "false")
    assert args.tf32 is False and not script_args.recipe_tf32_left_off
    with pytest.raises(TrainingConfigError, match="tf32"):  # asked for on the command line: refused, in one line
        _parse(recipe, "--output_dir", str(tmp_path), "--tf32", "true")


def test_ablation_recipes_differ_from_the_full_one_only_in_data_and_output():
    full = yaml.safe_load((REPO / "recipes/llava-1.5-7b/sft/config_full.yaml").read_text())
    for task in ("conversation", "detailed_description", "complex_reasoning"):
        ablation = yaml.safe_load((REPO / f"recipes/llava-1.5-7b/sft/config_{task}.yaml").read_text())
        assert ablation["dataset_configs"] == [task]
        diff = {k for k in full if full[k] != ablation.get(k)}
        assert diff == {"dataset_configs", "output_dir"}


def test_zero3_configs_gather_16bit_weights_on_save():
    ds = json.loads((REPO / "recipes/accelerate_configs/ds_zero3.json").read_text())
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    for name in ("zero3.yaml", "zero3_cpu.yaml"):
        accelerate = yaml.safe_load((REPO / "recipes/accelerate_configs" / name).read_text())
        assert accelerate["distributed_type"] == "DEEPSPEED"
        assert (REPO / accelerate["deepspeed_config"]["deepspeed_config_file"]).is_file()
        assert accelerate["deepspeed_config"]["zero3_init_flag"] is True
    assert yaml.safe_load((REPO / "recipes/accelerate_configs/zero3_cpu.yaml").read_text())["use_cpu"] is True


def test_a_stale_key_fails(tmp_path):
    recipe = tmp_path / "stale.yaml"
    recipe.write_text((REPO / "recipes/tiny-llava/sft/config_cpu.yaml").read_text() + "warmup_ratio: 0.03\n")
    with pytest.raises(TrainingConfigError, match="warmup_ratio"):
        _parse(recipe, "--output_dir", str(tmp_path))


def test_script_arguments_validate_the_dataset_configs(tmp_path):
    recipe = REPO / "recipes/tiny-llava/sft/config_cpu.yaml"
    with pytest.raises(TrainingConfigError, match=r"expected a list drawn from"):
        _parse(recipe, "--output_dir", str(tmp_path), "--dataset_configs", "conversations")
    with pytest.raises(TrainingConfigError, match="list it alone"):
        _parse(recipe, "--output_dir", str(tmp_path), "--dataset_configs", "all", "conversation")
    args, _, _ = _parse(
        recipe, "--output_dir", str(tmp_path), "--dataset_configs", "conversation", "complex_reasoning"
    )
    assert args.dataset_configs == ["conversation", "complex_reasoning"]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("max_steps: 2.5", "max_steps: 2.5 is not a valid int"),
        ("per_device_train_batch_size: [2]", "per_device_train_batch_size: [2] is not a valid int"),
        ("learning_rate: true", "learning_rate: True is not a valid float"),
        ("freeze_vision_tower: 2", "freeze_vision_tower: 2 is not a valid bool"),
        ("dtype: bfloat", "dtype: 'bfloat' is not one of"),
        ("optim: adamw", "optim: 'adamw' is not one of"),
        ("dataset_configs: [conversation, 3]", "dataset_configs: 3 is not a valid str"),
    ],
)
def test_a_recipe_value_of_the_wrong_type_fails(line, needle, tmp_path):
    """YAML values reach the dataclasses as argparse defaults, which argparse never type-checks unless strings."""
    key = line.split(":")[0]
    source = (REPO / "recipes/tiny-llava/sft/config_cpu.yaml").read_text()
    kept = [row for row in source.splitlines() if not row.startswith(f"{key}:")]
    recipe = tmp_path / "typed.yaml"
    recipe.write_text("\n".join([*kept, line]) + "\n")
    with pytest.raises(TrainingConfigError, match=f"recipe {recipe.name}: " + needle.replace("[", r"\[")):
        _parse(recipe, "--output_dir", str(tmp_path))


def test_recipe_values_argparse_reads_are_still_accepted(tmp_path):
    """Quoted numbers, 1e-3 (a string to YAML 1.1), ints for floats, null, lists for nargs options: all fine."""
    source = (REPO / "recipes/tiny-llava/sft/config_cpu.yaml").read_text()
    changed = {
        "max_steps": 'max_steps: "4"',
        "learning_rate": "learning_rate: 1e-3",
        "weight_decay": "weight_decay: 0",
        "freeze_vision_tower": "freeze_vision_tower: false",
        "dataset_configs": "dataset_configs: [conversation, complex_reasoning]",
    }
    kept = [row for row in source.splitlines() if row.split(":")[0] not in changed]
    recipe = tmp_path / "ok.yaml"
    recipe.write_text("\n".join([*kept, *changed.values()]) + "\n")
    script_args, training_args, _ = _parse(recipe, "--output_dir", str(tmp_path))
    assert training_args.max_steps == 4 and training_args.learning_rate == 1e-3 and training_args.weight_decay == 0
    assert script_args.freeze_vision_tower is False
    assert script_args.dataset_configs == ["conversation", "complex_reasoning"]
    assert training_args.max_length is None
