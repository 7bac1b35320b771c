"""train_sft.py on the tiny LLaVA: what is trained (labels, images), that it learns, what it saves, bad input.

Plain runs happen in this process; the ZeRO-3 runs go through the real `accelerate launch` (marked slow).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from keypoint_instruct.training.images import CLIP_MEAN_RGB, resolve_image
from train_sft import build_trainer, parse_args, run

REPO = Path(__file__).resolve().parent.parent
CPU_RECIPE = REPO / "recipes" / "tiny-llava" / "sft" / "config_cpu.yaml"
ZERO3_CPU = REPO / "recipes" / "accelerate_configs" / "zero3_cpu.yaml"


def _argv(tiny_llava_dir, sft_dataset, output_dir, *extra) -> list[str]:
    dataset_dir, coco_root = sft_dataset
    return [
        "--config", str(CPU_RECIPE),
        "--model_name_or_path", str(tiny_llava_dir),
        "--dataset_name", str(dataset_dir),
        "--coco_root", str(coco_root),
        "--output_dir", str(output_dir),
        *extra,
    ]  # fmt: skip


def _expected_label_texts(trainer) -> set[str]:
    """For every row: the text its labels must decode to, the answers each followed by </s> (LLaVA-1.5)."""
    eos = trainer.processing_class.tokenizer.eos_token
    texts = set()
    for row in trainer.train_dataset.with_format(None).select_columns(["messages"]):
        answers = [m["content"][0]["text"] for m in row["messages"] if m["role"] == "assistant"]
        texts.add("".join(f" {answer}{eos}" for answer in answers))
    return texts


@pytest.fixture(scope="module")
def trainer(tiny_llava_dir, sft_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("labels")
    return build_trainer(*parse_args(_argv(tiny_llava_dir, sft_dataset, out, "--per_device_train_batch_size", "4")))


def test_first_batch_trains_only_answers_and_their_eos(trainer):
    tokenizer = trainer.processing_class.tokenizer
    image_token_id = trainer.model.config.image_token_id
    batch = next(iter(trainer.get_train_dataloader()))
    labels, input_ids = batch["labels"], batch["input_ids"]
    assert labels.shape == input_ids.shape
    expected = _expected_label_texts(trainer)
    for row_ids, row_labels in zip(input_ids, labels, strict=True):
        trained = row_labels != -100
        assert (row_labels[trained] == row_ids[trained]).all()
        assert not trained[row_ids == image_token_id].any(), "an image token carries a label"
        assert (row_ids == image_token_id).sum() == 16  # 56x56 tower, 14-pixel patches, CLS dropped
        decoded = tokenizer.decode(row_ids[trained])
        assert decoded in expected, decoded
        assert decoded.endswith(tokenizer.eos_token)
        assert "USER:" not in decoded and "ASSISTANT" not in decoded


def test_a_two_turn_conversation_trains_both_answers_and_both_eos(trainer):
    """What TRL's collator builds for a multi-turn row: LLaVA-1.5's text, labels on each answer and its </s> only."""
    from PIL import Image

    tokenizer = trainer.processing_class.tokenizer
    turns = [("What is the person doing?", "The person is standing."), ("Why?", "Ready to move.")]
    messages = []
    for index, (question, answer) in enumerate(turns):
        content = [{"type": "text", "text": question}]
        messages.append({"role": "user", "content": ([{"type": "image"}] if index == 0 else []) + content})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    batch = trainer.data_collator([{"messages": messages, "images": [Image.new("RGB", (56, 56), (9, 9, 9))]}])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    text = tokenizer.decode(ids).replace("<image>" * 16, "<image>")
    assert text == (
        "<s>A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
        "detailed, and polite answers to the user's questions. USER: <image>\nWhat is the person doing? "
        "ASSISTANT: The person is standing.</s>USER: Why? ASSISTANT: Ready to move.</s>"
    )
    assert tokenizer.decode(ids[labels != -100]) == " The person is standing.</s> Ready to move.</s>"
    assert (ids[labels != -100] == tokenizer.eos_token_id).sum() == 2


def test_images_arrive_padded_to_square_not_cropped(trainer, sft_dataset):
    dataset_images = trainer.train_dataset.with_format(None).select_columns(["images"])
    examples = [trainer.train_dataset[i] for i in range(min(16, len(trainer.train_dataset)))]
    checked = 0
    for index, example in enumerate(examples):
        original = resolve_image(dataset_images[index]["images"][0], sft_dataset[1])
        padded = example["images"][0]
        width, height = original.size
        assert padded.size == (max(width, height),) * 2
        if width != height:
            corner = padded.getpixel((0, 0))
            assert corner == CLIP_MEAN_RGB
            checked += 1
    assert checked, "no non-square image in the dataset to check"
    # The collator's pixels: a landscape image's top rows are CLIP's mean, i.e. ~0 after normalisation.
    batch = trainer.data_collator(examples[:2])
    pixels = batch["pixel_values"]
    for example, image_pixels in zip(examples[:2], pixels, strict=True):
        assert image_pixels.shape[-1] == image_pixels.shape[-2] == 56
        width, height = resolve_image(example["images"][0], None).size
        assert width == height  # the processor gets squares, so its centre crop removes nothing
        border = image_pixels[:, 0, :] if abs(image_pixels[:, 0, :]).max() < 0.05 else image_pixels[:, :, 0]
        assert abs(border).max() < 0.05


def test_loss_is_finite_and_falls_on_a_repeated_batch(tiny_llava_dir, sft_dataset, tmp_path):
    argv = _argv(
        tiny_llava_dir,
        sft_dataset,
        tmp_path,
        "--max_steps",
        "16",
        "--per_device_train_batch_size",
        "2",
        "--learning_rate",
        "5e-3",
    )
    trainer = build_trainer(*parse_args(argv))
    trainer.train_dataset = trainer.train_dataset.select([0, 1])  # one batch, seen 16 times
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 16 and all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < 0.5 * losses[0]


def _check_checkpoint(out: Path, initial: Path) -> None:
    """Full weights under canonical names, vision tower untouched, the rest trained; reloads and generates."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from keypoint_instruct.training.upstream import canonical_names

    saved, before = load_file(out / "model.safetensors"), load_file(initial / "model.safetensors")
    _, expected = canonical_names(AutoConfig.from_pretrained(out))
    assert set(saved) == expected == set(before)
    changed = {key for key in saved if not torch.equal(saved[key].float(), before[key].float())}
    assert not {key for key in changed if "vision_tower" in key}, "the frozen vision tower moved"
    assert any("multi_modal_projector" in key for key in changed)
    assert any("lm_head" in key for key in changed)
    model, info = AutoModelForImageTextToText.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    processor = AutoProcessor.from_pretrained(out)
    assert "{% generation %}" in processor.chat_template.replace("-", "")
    from PIL import Image

    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is the person doing?"}]}
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt.endswith("ASSISTANT:")
    inputs = processor(images=[Image.new("RGB", (56, 56), (9, 9, 9))], text=prompt, return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]


def test_plain_run_trains_and_saves_a_checkpoint_that_reloads(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    assert run(_argv(tiny_llava_dir, sft_dataset, tmp_path / "out", "--max_steps", "3")) == 0
    _check_checkpoint(tmp_path / "out", tiny_llava_dir)


def _only_config(dataset_dir: Path, out: Path, config: str) -> Path:
    shutil.copytree(dataset_dir / config, out / config)
    card = (
        f"---\nconfigs:\n- config_name: {config}\n  data_files:\n  - split: train\n    path: {config}/*.parquet\n---\n"
    )
    (out / "README.md").write_text(card)
    return out


def _assert_one_line_error(code, err: str, *needles: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("train_sft: error:")]
    assert len(errors) == 1, err
    assert "\n" not in errors[0]
    for needle in needles:
        assert needle in errors[0]


def test_dataset_without_the_requested_config_fails_before_training(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    dataset = _only_config(sft_dataset[0], tmp_path / "partial", "conversation")
    argv = _argv(tiny_llava_dir, (dataset, sft_dataset[1]), tmp_path / "out", "--dataset_configs", "complex_reasoning")
    code = run(argv)
    _assert_one_line_error(code, capsys.readouterr().err, "no config complex_reasoning", "conversation")
    assert not (tmp_path / "out").exists()


def test_missing_images_fail_before_training(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    empty_root = tmp_path / "coco"
    empty_root.mkdir()
    code = run(_argv(tiny_llava_dir, (sft_dataset[0], empty_root), tmp_path / "out"))
    _assert_one_line_error(code, capsys.readouterr().err, "missing under coco_root", str(empty_root))
    assert not (tmp_path / "out").exists()


def test_unknown_recipe_key_fails_through_the_real_script(tiny_llava_dir, sft_dataset, tmp_path):
    recipe = tmp_path / "stale.yaml"
    recipe.write_text(CPU_RECIPE.read_text() + "max_seq_length: 2048\n")
    argv = _argv(tiny_llava_dir, sft_dataset, tmp_path / "out")
    argv[1] = str(recipe)
    proc = subprocess.run(
        [sys.executable, str(REPO / "train_sft.py"), *argv], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    _assert_one_line_error(proc.returncode, proc.stderr, "max_seq_length")
    assert not (tmp_path / "out").exists()


def _accelerate(num_processes: int, argv: list[str]) -> subprocess.CompletedProcess:
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--config_file", str(ZERO3_CPU), "--num_processes", str(num_processes)]
    command += ["--num_cpu_threads_per_process", "1", str(REPO / "train_sft.py"), *argv]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=400, env=os.environ.copy())


@pytest.mark.slow
@pytest.mark.parametrize("num_processes", [1, 2])
def test_zero3_launch_trains_and_saves_canonical_full_weights(num_processes, tiny_llava_dir, sft_dataset, tmp_path):
    out = tmp_path / "out"
    argv = _argv(tiny_llava_dir, sft_dataset, out, "--logging_steps", "1")
    if num_processes == 2:  # save a resumable checkpoint at step 2, then resume from it (DeepSpeed's own format)
        save = ["--save_strategy", "steps", "--save_steps", "2", "--save_only_model", "false"]
        first = _accelerate(num_processes, [*argv, "--max_steps", "2", *save])
        assert first.returncode == 0, first.stderr[-3000:]
        assert list((out / "checkpoint-2").glob("global_step2"))
        argv += [*save, "--resume_from_checkpoint", "true"]
    proc = _accelerate(num_processes, [*argv, "--max_steps", "3"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"DeepSpeed ZeRO-3, gradient_clipping 0.0 on {num_processes} process" in proc.stderr  # "auto" filled
    assert "parameters partitioned by ZeRO-3 at load" in proc.stderr
    if num_processes == 2:
        assert f"resuming from {out / 'checkpoint-2'}" in proc.stderr
        log = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]
        assert [entry["step"] for entry in log if "loss" in entry] == [1, 2, 3]
        from safetensors import safe_open

        for step in (2, 3):  # checkpoints too, not only the final save (ZeRO-3 writes language_model.model.model.*)
            with safe_open(out / f"checkpoint-{step}" / "model.safetensors", "pt") as saved:
                assert not [key for key in saved.keys() if "language_model.model.model." in key]
    _check_checkpoint(out, tiny_llava_dir)


def test_missing_chat_template_fails_before_training(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    argv = _argv(tiny_llava_dir, sft_dataset, tmp_path / "out", "--chat_template_path", str(tmp_path / "x.jinja"))
    _assert_one_line_error(run(argv), capsys.readouterr().err, "chat_template_path", "x.jinja", "does not exist")
    assert not (tmp_path / "out").exists()


def test_a_recipe_run_from_another_folder_finds_its_chat_template_in_the_repository(
    tiny_llava_dir, sft_dataset, tmp_path, capsys, caplog, monkeypatch
):
    """Recipes name recipes/chat_templates/llava-1.5.jinja relative to the repository, not to the current folder."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with caplog.at_level("INFO"):
        assert run(_argv(tiny_llava_dir, sft_dataset, tmp_path / "out", "--check_only")) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    used = [r.getMessage() for r in caplog.records if "chat_template_path" in r.getMessage()]
    assert len(used) == 1 and str(REPO / "recipes/chat_templates/llava-1.5.jinja") in used[0], used
    assert str(elsewhere) in used[0]


def test_a_chat_template_found_nowhere_says_where_it_was_looked_for(
    tiny_llava_dir, sft_dataset, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    argv = _argv(tiny_llava_dir, sft_dataset, tmp_path / "out", "--check_only")
    code = run([*argv, "--chat_template_path", "recipes/chat_templates/llava-9.jinja"])
    err = capsys.readouterr().err
    _assert_one_line_error(code, err, "does not exist", str(tmp_path), str(REPO), "absolute path")
    assert "not a .jinja file" not in err
    (tmp_path / "template.txt").write_text("{{ messages }}")
    code = run([*argv, "--chat_template_path", "template.txt"])
    _assert_one_line_error(code, capsys.readouterr().err, "template.txt is not a .jinja file")


def test_check_only_validates_without_loading_or_training(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    assert run(_argv(tiny_llava_dir, sft_dataset, out, "--check_only")) == 0
    captured = capsys.readouterr()
    line = captured.out.strip()
    assert line.startswith("ok: ") and str(sft_dataset[0]) in line and "fresh run" in line
    assert " image files found" in line
    assert not out.exists()
    empty_root = tmp_path / "coco"
    empty_root.mkdir()
    code = run(_argv(tiny_llava_dir, (sft_dataset[0], empty_root), out, "--check_only"))
    _assert_one_line_error(code, capsys.readouterr().err, "missing under coco_root")


def test_check_only_prints_the_effective_settings_beside_llavas(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    argv = _argv(tiny_llava_dir, sft_dataset, tmp_path / "out", "--check_only", "--gradient_accumulation_steps", "2")
    assert run(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok: ") and out[1] == "settings (* differs from LLaVA-1.5):"
    rows = {line[2:].split("  ")[0]: line for line in out[2:]}
    assert rows["gradient clipping"] == "  gradient clipping  off (max_grad_norm 0)"
    assert rows["loss averaging"].startswith("  loss averaging     micro_batch")
    assert "group_by_modality_length" in rows["batches"] and "2 per device x 2 accumulation" in rows["global batch"]
    assert {"tf32", "attention", "Llama tokenizer", "max_length", "images", "vision tower"} <= set(rows)
    assert run([*argv, "--max_grad_norm", "1", "--loss_averaging", "tokens"]) == 0
    out = capsys.readouterr().out
    assert "* gradient clipping  at norm 1 (max_grad_norm)" in out and "* loss averaging     tokens" in out


def test_a_revision_of_a_local_folder_is_refused(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    code = run(_argv(tiny_llava_dir, sft_dataset, tmp_path / "out", "--dataset_revision", "v1.0.0", "--check_only"))
    _assert_one_line_error(code, capsys.readouterr().err, "dataset_revision v1.0.0", "local folder")


@pytest.mark.parametrize("package", [False, True])
def test_a_folder_that_is_not_a_dataset_folder_says_so(
    tiny_llava_dir, sft_dataset, tmp_path, capsys, monkeypatch, package
):
    """`--dataset_name keypoint_instruct` from the repository root found the package folder: 'No data files found'."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "keypoint_instruct"
    folder.mkdir()
    (folder / ("__init__.py" if package else "notes.txt")).write_text("")
    argv = _argv(tiny_llava_dir, sft_dataset, tmp_path / "out", "--check_only")
    argv[argv.index("--dataset_name") + 1] = "keypoint_instruct"
    code = run(argv)
    err = capsys.readouterr().err
    needle = "keypoint_instruct is a folder but not a dataset folder"
    _assert_one_line_error(code, err, needle, "keypoint-instruct build")
    assert "No (supported) data files" not in err
    assert ("collides" in err) is package, err


def test_a_model_folder_without_config_is_refused_before_the_data(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    code = run(_argv(tmp_path, sft_dataset, tmp_path / "out"))
    _assert_one_line_error(code, capsys.readouterr().err, "has no config.json", str(tmp_path))


def test_only_rank_zero_reports_a_bad_input(tiny_llava_dir, sft_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    code = run(_argv(tmp_path, sft_dataset, tmp_path / "out"))
    assert code == 2 and "train_sft: error" not in capsys.readouterr().err


def _global_step(checkpoint: Path) -> int:
    return json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]


def test_resume_from_the_newest_checkpoint(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    save = ["--save_strategy", "steps", "--save_steps", "2", "--save_only_model", "false"]
    assert run(_argv(tiny_llava_dir, sft_dataset, out, "--max_steps", "2", *save)) == 0
    assert (out / "checkpoint-2" / "optimizer.pt").is_file()
    resume = ["--max_steps", "4", "--resume_from_checkpoint", "true"]
    assert run(_argv(tiny_llava_dir, sft_dataset, out, *resume, *save)) == 0
    assert _global_step(out / "checkpoint-4") == 4
    log = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
    steps = [entry["step"] for entry in log if "loss" in entry]
    assert steps == [1, 2, 3, 4]  # steps 1-2 restored from checkpoint-2, 3-4 trained after the resume
    _check_checkpoint(out, tiny_llava_dir)


def _losses(checkpoint: Path) -> dict[int, float]:
    log = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in log if "loss" in entry}


def test_a_resumed_plain_run_starts_from_the_checkpoint_weights_and_continues_its_loss(
    tiny_llava_dir, sft_dataset, tmp_path
):
    """The Trainer's own plain resume loads none of a LLaVA checkpoint's saved keys; ours loads them all."""
    import torch
    from transformers import AutoModelForImageTextToText, TrainerCallback

    save = ["--save_strategy", "steps", "--save_steps", "2", "--save_only_model", "false"]
    assert run(_argv(tiny_llava_dir, sft_dataset, tmp_path / "ref", *save, "--max_steps", "4")) == 0
    out = tmp_path / "out"
    assert run(_argv(tiny_llava_dir, sft_dataset, out, *save, "--max_steps", "2")) == 0

    class FirstWeights(TrainerCallback):
        weights: dict = {}

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.weights.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    resume = ["--max_steps", "4", "--resume_from_checkpoint", "true"]
    trainer = build_trainer(*parse_args(_argv(tiny_llava_dir, sft_dataset, out, *save, *resume)))
    trainer.add_callback(FirstWeights)
    trainer.train(resume_from_checkpoint=trainer.args.resume_from_checkpoint)
    saved = AutoModelForImageTextToText.from_pretrained(out / "checkpoint-2").state_dict()
    initial = AutoModelForImageTextToText.from_pretrained(tiny_llava_dir).state_dict()
    assert set(FirstWeights.weights) == set(saved)
    assert all(torch.equal(FirstWeights.weights[k], saved[k]) for k in saved), "resumed from other weights"
    assert not all(torch.equal(initial[k], saved[k]) for k in saved)  # the checkpoint did train
    reference, resumed = _losses(tmp_path / "ref" / "checkpoint-4"), _losses(out / "checkpoint-4")
    assert sorted(resumed) == [1, 2, 3, 4]
    for step in (3, 4):  # what an uninterrupted run logs, not a restart from the initial weights
        assert resumed[step] == pytest.approx(reference[step], rel=1e-4), (step, resumed, reference)


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--per_device_train_batch_size", "0"], "per_device_train_batch_size 0"),
        (["--gradient_accumulation_steps", "0"], "gradient_accumulation_steps 0"),
        (["--learning_rate", "-0.001"], "learning_rate -0.001"),
        (["--max_steps", "-3", "--num_train_epochs", "0"], "max_steps -3"),
        (["--max_steps", "-1", "--num_train_epochs", "0"], "trains nothing"),
        (["--dataloader_num_workers", "-1"], "dataloader_num_workers -1"),
        (["--adam_beta1", "1.5"], "adam_beta1 1.5"),
        (["--save_strategy", "steps", "--save_steps", "0"], "save_steps 0"),
        (["--learning_rate", "abc"], "invalid float value: 'abc'"),
    ],
)
def test_training_numbers_that_crash_or_train_nothing_are_refused_up_front(
    flags, needle, tiny_llava_dir, sft_dataset, tmp_path, capsys
):
    code = run(_argv(tiny_llava_dir, sft_dataset, tmp_path / "out", *flags, "--check_only"))
    err = capsys.readouterr().err
    _assert_one_line_error(code, err, needle)
    assert len(err.strip().splitlines()) == 1, err  # no argparse usage block
    assert not (tmp_path / "out").exists()


def test_a_run_that_would_train_nothing_saves_nothing(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    code = run(_argv(tiny_llava_dir, sft_dataset, tmp_path / "out", "--max_steps", "-3", "--num_train_epochs", "0"))
    _assert_one_line_error(code, capsys.readouterr().err, "max_steps -3")
    assert not (tmp_path / "out").exists()


def test_other_ranks_log_warnings_but_not_progress(tiny_llava_dir, sft_dataset, tmp_path):
    """Under `accelerate launch` every rank runs the script: INFO lines come from rank 0 only."""
    argv = _argv(tiny_llava_dir, sft_dataset, tmp_path / "out", "--max_length", "512", "--check_only")
    script = [sys.executable, str(REPO / "train_sft.py"), *argv]
    env = {**os.environ, "RANK": "1"}
    proc = subprocess.run(script, capture_output=True, text=True, cwd=REPO, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "max_length=512 can cut image tokens" in proc.stderr
    assert not [line for line in proc.stderr.splitlines() if line.startswith("INFO ")], proc.stderr


def test_resume_refuses_weights_only_and_missing_checkpoints(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    out = tmp_path / "out"
    code = run(_argv(tiny_llava_dir, sft_dataset, out, "--resume_from_checkpoint", "true", "--check_only"))
    _assert_one_line_error(code, capsys.readouterr().err, "no checkpoint-<step> folder", str(out))
    code = run(_argv(tiny_llava_dir, sft_dataset, out, "--resume_from_checkpoint", str(tmp_path)))
    _assert_one_line_error(code, capsys.readouterr().err, "is not a checkpoint folder")
    save = ["--save_strategy", "steps", "--save_steps", "1", "--max_steps", "1"]  # the recipe's save_only_model
    assert run(_argv(tiny_llava_dir, sft_dataset, out, *save)) == 0
    capsys.readouterr()
    code = run(_argv(tiny_llava_dir, sft_dataset, out, "--max_steps", "2", "--resume_from_checkpoint", "true"))
    _assert_one_line_error(code, capsys.readouterr().err, "holds weights only", "save_only_model")
    assert not (out / "checkpoint-2").exists()


def _edited_first_row(dataset_dir: Path, out: Path, edit) -> Path:
    """A one-config dataset folder (`all`) whose first row went through ``edit(row)``."""
    from datasets import load_dataset

    rows = load_dataset(str(dataset_dir), "all", split="train")
    rows = rows.map(
        lambda row, index: edit(row) if index == 0 else row,
        with_indices=True,
        keep_in_memory=True,
        load_from_cache_file=False,
    )
    (out / "all").mkdir(parents=True)
    rows.to_parquet(str(out / "all" / "train-00000-of-00001.parquet"))
    (out / "README.md").write_text(
        "---\nconfigs:\n- config_name: all\n  data_files:\n  - split: train\n    path: all/*\n---\n"
    )
    return out


def _two_images(row):
    return {**row, "images": row["images"] * 2}


def _no_image(row):
    return {**row, "images": []}


@pytest.mark.parametrize(
    ("edit", "needle"), [(_two_images, "2 images, 1 <image>"), (_no_image, "0 images, 1 <image>")]
)
def test_rows_whose_images_do_not_match_their_placeholders_fail_before_training(
    edit, needle, tiny_llava_dir, sft_dataset, tmp_path, capsys
):
    """The processor refuses such a row only when its batch comes up, mid-run; check_only must say so first."""
    dataset = _edited_first_row(sft_dataset[0], tmp_path / "odd", edit)
    for extra in (["--check_only"], []):
        code = run(_argv(tiny_llava_dir, (dataset, sft_dataset[1]), tmp_path / "out", *extra))
        _assert_one_line_error(code, capsys.readouterr().err, "1 of ", needle, "row 0")
    assert not (tmp_path / "out").exists()


def test_a_text_only_row_without_image_or_placeholder_is_accepted(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    def text_only(row):
        first = {**row["messages"][0], "content": [p for p in row["messages"][0]["content"] if p["type"] != "image"]}
        return {**row, "images": [], "messages": [first, *row["messages"][1:]]}

    dataset = _edited_first_row(sft_dataset[0], tmp_path / "text", text_only)
    code = run(_argv(tiny_llava_dir, (dataset, sft_dataset[1]), tmp_path / "out", "--check_only"))
    assert code == 0, capsys.readouterr().err


def _without_template(tiny_llava_dir: Path, out: Path) -> Path:
    shutil.copytree(tiny_llava_dir, out)
    for name in ("chat_template.jinja", "chat_template.json"):
        (out / name).unlink(missing_ok=True)
    for name in ("tokenizer_config.json", "processor_config.json"):
        config = json.loads((out / name).read_text())
        config.pop("chat_template", None)
        (out / name).write_text(json.dumps(config))
    return out


def test_a_model_without_a_chat_template_fails_before_training(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    model = _without_template(tiny_llava_dir, tmp_path / "bare")
    recipe = tmp_path / "no_template.yaml"
    recipe.write_text(CPU_RECIPE.read_text().replace("chat_template_path:", "# chat_template_path:"))
    for extra in (["--check_only"], []):
        argv = _argv(model, sft_dataset, tmp_path / "out", *extra)
        argv[1] = str(recipe)
        _assert_one_line_error(run(argv), capsys.readouterr().err, "no chat template", "chat_template_path")
    assert not (tmp_path / "out").exists()
    argv = _argv(model, sft_dataset, tmp_path / "out", "--check_only")  # the recipe's template is enough
    assert run(argv) == 0, capsys.readouterr().err


def test_a_template_without_generation_markers_is_refused_with_assistant_only_loss(
    tiny_llava_dir, sft_dataset, tmp_path, capsys
):
    """Without {% generation %} every label is -100: the loss is 0 or nan and nothing trains, with only a warning."""
    template = tmp_path / "plain.jinja"
    text = (REPO / "recipes/chat_templates/llava-1.5.jinja").read_text()
    template.write_text(text.replace("{%- generation -%}", "").replace("{%- endgeneration -%}", ""))
    for extra in (["--check_only"], []):
        argv = _argv(tiny_llava_dir, sft_dataset, tmp_path / "out", "--chat_template_path", str(template), *extra)
        _assert_one_line_error(run(argv), capsys.readouterr().err, "generation", str(template), "assistant_only_loss")
    assert not (tmp_path / "out").exists()
    argv = _argv(tiny_llava_dir, sft_dataset, tmp_path / "out", "--chat_template_path", str(template))
    assert run([*argv, "--assistant_only_loss", "false", "--check_only"]) == 0


def test_exclude_bench_refuses_a_dataset_holding_a_benchmark_image(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    """Issue 13: a model trained on a benchmark's images measures nothing on it; refused in one line, exit 2."""
    from keypoint_instruct.dataset.exclusion import dataset_image_ids
    from tests.dataset.test_exclusion import write_bench

    held = sorted(dataset_image_ids(sft_dataset[0]))
    argv = _argv(tiny_llava_dir, sft_dataset, tmp_path / "out", "--check_only", "--exclude_bench")
    code = run([*argv, str(write_bench(tmp_path / "overlapping", held[:2]))])
    _assert_one_line_error(code, capsys.readouterr().err, "holds 2 of the 2 images of benchmark", "--exclude-bench")
    assert run([*argv, str(write_bench(tmp_path / "apart", [max(held) + 1]))]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="bf16 is refused only where there is no GPU")
def test_the_7b_recipe_on_a_cpu_says_which_flag_lets_it_run(tiny_llava_dir, sft_dataset, tmp_path, capsys):
    argv = _argv(tiny_llava_dir, sft_dataset, tmp_path / "out", "--check_only")
    argv[argv.index("--config") + 1] = str(REPO / "recipes" / "llava-1.5-7b" / "sft" / "config_full.yaml")
    code = run(argv)
    _assert_one_line_error(code, capsys.readouterr().err, "bf16 needs a GPU", "--bf16 false")


def test_help_leads_with_the_recipe_flag():
    done = subprocess.run([sys.executable, "train_sft.py", "--help"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: train_sft.py [-h] --config RECIPE.yaml")
    assert "  --config FILE" in done.stdout
