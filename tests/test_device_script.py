"""benchmarks/device_train_7b.sh and its worker on the CPU: what the one GPU call would run, before it runs there.

The script's PREPARE_ONLY path runs for real (data build, the LLaVA-1.5 skeleton, the offload fallback config), in
its REHEARSE form (tiny widths and depths, same classes and 576 image tokens); then the worker it launches,
``bench_train.py --worker --random-weights``, trains that skeleton for two steps with plain python and writes its
summary, and fails like an out-of-memory run when told to. benchmarks/device_check.py: the preflight names a missing or
too old requirement in one line, the memory plan puts the 7B where it fits, the carry list pins this environment.
(The full rehearsal under DeepSpeed takes minutes: ``REHEARSE=1 REHEARSE_FORCE_FALLBACK=1 bash
benchmarks/device_train_7b.sh 3``.)
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "device_train_7b.sh"
IMAGE_TOKENS = 576  # (336 / 14) ** 2


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, str]:
    """The work folder of a ``REHEARSE=1 PREPARE_ONLY=1`` run of the script, and what it printed."""
    tmp = tmp_path_factory.mktemp("device_script")
    env = {**os.environ, "PREPARE_ONLY": "1", "REHEARSE": "1", "PYTHON": sys.executable, "TMPDIR": str(tmp)}
    env["OUT"] = str(tmp / "out")
    proc = subprocess.run(["bash", str(SCRIPT), "2"], cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (work,) = tmp.glob("device_train_7b.*")
    return work, proc.stdout


def _worker(prepared, out: Path, *flags: str, env: dict | None = None) -> subprocess.CompletedProcess:
    work, _ = prepared
    command = [sys.executable, str(REPO / "benchmarks" / "bench_train.py"), "--worker", str(out / "summary.json")]
    command += ["--random-weights", "--setup", "full", "--warmup-steps", "0"]
    command += [
        "--config",
        "recipes/llava-1.5-7b/sft/config_full.yaml",
        "--model_name_or_path",
        str(work / "llava-1.5-7b"),
    ]
    command += ["--dataset_name", str(work / "dataset"), "--coco_root", str(work / "coco"), "--output_dir", str(out)]
    command += ["--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1", "--logging_steps", "1"]
    command += ["--bf16", "false", "--dtype", "float32", "--dataloader_num_workers", "0", "--save_strategy", "no"]
    command += ["--report_to", "none", *flags]
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_prepare_only_builds_the_data_the_skeleton_and_the_fallback_config(prepared):
    from datasets import load_dataset
    from PIL import Image
    from transformers import AutoConfig, AutoProcessor, LlavaConfig

    work, stdout = prepared
    assert "PREPARE_ONLY=1: no training" in stdout
    assert "preflight ok: " in stdout, stdout  # every requirement met, every module imported
    assert "PLAN=full FALLBACK=offload SMALL_BATCH=4" in stdout  # the CPU's memory stands in for the GPU's here
    rows = load_dataset(str(work / "dataset"), "all", split="train")
    assert len(rows) > 100 and f"{len(rows)} samples" in stdout

    config = AutoConfig.from_pretrained(work / "llava-1.5-7b")
    assert isinstance(config, LlavaConfig) and config.image_seq_length == IMAGE_TOKENS
    assert config.text_config.hidden_size == 64 and config.text_config.vocab_size == 32064  # tiny widths, 7B's vocab
    assert (config.vision_config.image_size, config.vision_config.patch_size) == (336, 14)
    processor = AutoProcessor.from_pretrained(work / "llava-1.5-7b")
    inputs = processor(images=[Image.new("RGB", (640, 480))], text="<image>\nhello", return_tensors="pt")
    assert int((inputs["input_ids"] == config.image_token_id).sum()) == IMAGE_TOKENS
    assert tuple(inputs["pixel_values"].shape[-2:]) == (336, 336)

    offload = json.loads((work / "ds_zero3_offload.json").read_text())
    stock = json.loads((REPO / "recipes" / "accelerate_configs" / "ds_zero3.json").read_text())
    assert offload["zero_optimization"].pop("offload_optimizer") == {"device": "cpu", "pin_memory": False}
    assert offload.pop("zero_force_ds_cpu_optimizer") is False and offload == stock
    accelerate = (work / "zero3_offload.yaml").read_text()
    stock_yaml = (REPO / "recipes" / "accelerate_configs" / "zero3_cpu.yaml").read_text()  # REHEARSE: the CPU one
    assert accelerate == stock_yaml.replace(
        "recipes/accelerate_configs/ds_zero3.json", str(work / "ds_zero3_offload.json")
    )


def test_worker_trains_the_random_skeleton_and_writes_its_summary(prepared, tmp_path):
    proc = _worker(prepared, tmp_path, "--max_steps", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "done" and summary["setup"] == "full" and summary["random_weights"]
    assert summary["deepspeed"] is None and summary["dtype"] == "float32"  # plain python here; ZeRO-3 under launch
    assert 0 < summary["trainable_parameters"] < summary["parameters"]  # the CLIP tower is frozen
    steps = summary["steps"]
    assert [step["step"] for step in steps] == [1, 2] and len(summary["step_times_s"]) == 1
    for step in steps:
        assert step["samples"] == 1 and step["image_tokens"] == IMAGE_TOKENS
        assert step["image_tokens"] < step["tokens"] <= step["padded_tokens"] and 0 < step["trained_tokens"]
        assert math.isfinite(step["loss"]) and step["loss"] > 0
    assert summary["samples_per_s"] > 0 and summary["tokens_per_s"] > summary["samples_per_s"]
    assert summary["versions"]["transformers"] and summary["memory"]["host_peak_rss_gib"] > 0
    (tmp_path / "summary.json").rename(tmp_path / "device_train_7b_full.json")  # what the script's summary reads
    assert summary["step_s_min"] == summary["step_s_max"] == summary["step_s_median"] == summary["step_s"]
    assert summary["step_s_sd"] == 0 and summary["loss_averaging"] == "micro_batch"
    assert summary["attention"] == "sdpa" and summary["group_by_modality_length"] is True
    out = _summary(tmp_path, 2)  # no warm-up interval here: one timed step
    spread = f"median {summary['step_s']:.3f}, min {summary['step_s']:.3f}, max {summary['step_s']:.3f}, sd 0.000"
    assert f"step s {summary['step_s']:.3f} over 1 steps ({spread}); samples/s {summary['samples_per_s']:.2f}" in out
    assert f"tokens/s {summary['tokens_per_s']:.0f}" in out and "peak GPU memory: none (no GPU)" in out, out
    assert "attention sdpa" in out and "not enough" not in out and "nan" not in out


def _summary(results: Path, steps: int, **env: str) -> str:
    command = ["bash", str(SCRIPT), "--summary", str(results), str(steps)]
    proc = subprocess.run(command, env={**os.environ, "PYTHON": sys.executable, **env}, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_the_summary_of_a_run_without_timed_steps_says_to_pass_more_not_nan(prepared, tmp_path):
    """`REHEARSE=1 ... 2`: the only interval is the warm-up one, and the summary printed 'step s nan over 0 steps'."""
    proc = _worker(prepared, tmp_path, "--max_steps", "2", "--warmup-steps", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps_timed"] == 0 and summary["step_s"] is None
    (tmp_path / "summary.json").rename(tmp_path / "device_train_7b_full.json")
    out = _summary(tmp_path, 2, REHEARSE="1")
    assert "nan" not in out, out
    assert "2/2 steps" in out and "not enough steps to time (the first is warm-up): pass 3 or more" in out, out
    summary.update(status="running", steps=summary["steps"][:1])  # the same run stopped by its time limit
    (tmp_path / "device_train_7b_full.json").write_text(json.dumps(summary))
    out = _summary(tmp_path, 2)
    assert "1/2 steps" in out and "not enough steps to time" in out and "pass 3" not in out, out


def test_the_summary_spread_agrees_with_its_step_time_at_a_rounding_edge(prepared, tmp_path):
    """The JSON lists step times rounded to 0.1 ms: 0.56648 s is listed as 0.5665, which prints as 0.567 while
    step_s prints 0.566. The spread comes from the worker's unrounded figures, so the two agree."""
    proc = _worker(prepared, tmp_path, "--max_steps", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    edge = 0.56648
    summary.update(step_times_s=[round(edge, 4)], step_s=edge, step_s_min=edge, step_s_max=edge, step_s_median=edge)
    (tmp_path / "device_train_7b_full.json").write_text(json.dumps(summary))
    out = _summary(tmp_path, 2)
    assert "step s 0.566 over 1 steps (median 0.566, min 0.566, max 0.566, sd 0.000)" in out, out


def test_worker_fails_like_an_out_of_memory_run_when_told(prepared, tmp_path):
    proc = _worker(prepared, tmp_path, "--max_steps", "3", env={"BENCH_FORCE_OOM": "1"})
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "oom" and summary["oom"] and "out of memory" in summary["error"]
    assert len(summary["steps"]) == 1


def test_random_weights_are_built_on_meta_and_initialised_like_a_fresh_model(prepared):
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    work, _ = prepared
    spec = importlib.util.spec_from_file_location("bench_train", REPO / "benchmarks" / "bench_train.py")
    bench_train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_train)
    model = bench_train.random_llava(str(work / "llava-1.5-7b"), torch.float32)
    fresh = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(work / "llava-1.5-7b"))
    buffers = dict(model.named_buffers())
    assert buffers.keys() == dict(fresh.named_buffers()).keys()
    for name, buffer in fresh.named_buffers():  # rotary inv_freq, CLIP position ids: not left as empty memory
        assert torch.equal(buffers[name], buffer), name
    params = dict(model.named_parameters())
    for name, param in fresh.named_parameters():
        built = params[name]
        assert built.device.type == "cpu" and torch.isfinite(built).all(), name
        if name.endswith(("norm.weight", "layernorm.weight", "layer_norm1.weight", "layer_norm2.weight")):
            assert torch.equal(built, param), name  # ones
        elif param.numel() > 1000:
            assert 0.8 < float(built.detach().std() / param.detach().std()) < 1.25, name  # same init, new draw


def _device_check():
    spec = importlib.util.spec_from_file_location("device_check", REPO / "benchmarks" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_distribution(site: Path, name: str, version: str, *requires: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_the_preflight_names_what_is_missing_or_too_old_in_one_line(tmp_path):
    """An image with huggingface_hub 1.33 (transformers 5.25 needs >= 2.4) and a trl that needs an absent package."""
    site = tmp_path / "site"
    _fake_distribution(site, "huggingface_hub", "1.33.0")
    _fake_distribution(site, "trl", "1.16.0", "no-such-package-ki>=1", "transformers>=4.56.2")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"}
    command = [sys.executable, str(REPO / "benchmarks" / "device_check.py"), "preflight", "--rehearse"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stdout.splitlines()
    assert line.startswith("preflight: ") and "--fetch-wheels" in line
    assert "huggingface-hub 1.33.0 does not satisfy" in line and "no-such-package-ki missing (needed by trl)" in line
    assert "Traceback" not in proc.stderr


def test_the_memory_plan_puts_the_7b_where_it_fits(prepared):
    """Full state on an H200; the optimizer in host memory on an H100 only when the host has ~111 GiB; else none."""
    check = _device_check()
    total, trained = 7_063_000_000, 6_760_000_000  # llava-1.5-7b-hf, vision tower frozen
    h200 = check.memory_plan(total, trained, 8, gpu_gib=139.8, host_gib=120)
    assert (h200["plan"], h200["fallback"]) == ("full", "offload")
    assert 110 < h200["need_gib"]["full"] < 125  # DeepSpeed's estimator: ~119 GiB
    assert check.memory_plan(total, trained, 8, gpu_gib=139.8, host_gib=60)["fallback"] == "small"
    assert check.memory_plan(total, trained, 8, gpu_gib=79.6, host_gib=120)["plan"] == "offload"
    assert check.memory_plan(total, trained, 8, gpu_gib=79.6, host_gib=100)["plan"] == "none"
    assert check.memory_plan(total, trained, 1, gpu_gib=139.8, host_gib=60)["fallback"] == "none"  # no half of 1
    work, _ = prepared
    total, trained = check.parameter_counts(str(work / "llava-1.5-7b"))  # the tiny skeleton, on the meta device
    assert 0 < trained < total < 10_000_000


def test_the_carry_list_pins_this_environment_and_leaves_the_image_its_cuda_stack():
    carried = dict(pin.split("==") for pin in _device_check().carry_list())
    for name in ("transformers", "trl", "deepspeed", "datasets", "huggingface-hub", "kernels", "msgspec"):
        assert carried[name] == importlib.metadata.version(name), name
    assert not {"torch", "numpy", "pyarrow", "triton"} & set(carried)


def test_the_summary_of_a_folder_that_is_not_there_is_an_error(tmp_path):
    script = REPO / "benchmarks" / "device_train_7b.sh"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", str(script), "--summary", str(tmp_path / "nothing"), "3"], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().endswith("is not a results folder of device_train_7b.sh")
    (tmp_path / "empty").mkdir()
    done = subprocess.run(["bash", str(script), "--summary", str(tmp_path / "empty"), "3"], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("no results in ")
