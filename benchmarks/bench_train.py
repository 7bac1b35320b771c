"""Training throughput of train_sft.py on the tiny LLaVA (CPU): plain vs DeepSpeed ZeRO-3 at 1 and 2 processes.

Builds everything offline in a temporary folder (synthetic COCO -> offline teacher -> `keypoint-instruct build` ->
tiny LLaVA), then runs the real script the way a user would (`python train_sft.py`, `accelerate launch`) and prints
samples/s and the mean step time after the first (warm-up) steps, read from the trainer's per-step log.

    .venv/bin/python benchmarks/bench_train.py [--steps 30] [--batch-size 4] [--images 40]

Figures are for comparing set-ups on one machine, not absolute speeds: the tiny model is ~0.2M parameters, so the
time goes to data loading, image processing and (under ZeRO-3) gather/scatter of parameters.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RECIPE = REPO / "recipes" / "tiny-llava" / "sft" / "config_cpu.yaml"
ZERO3_CPU = REPO / "recipes" / "accelerate_configs" / "zero3_cpu.yaml"
WARMUP_STEPS = 2  # intervals between step ends dropped from the mean (first-step compilation, caches)


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, **kwargs)
    if proc.returncode != 0:
        sys.exit(f"bench_train: command failed: {' '.join(command)}\n{proc.stderr[-3000:]}")
    return proc


def prepare(work: Path, n_images: int) -> tuple[Path, Path, Path]:
    """Synthetic COCO, offline-teacher responses, the dataset folder and the tiny model, all under ``work``."""
    coco, cache, dataset, model = work / "coco", work / "responses.sqlite", work / "dataset", work / "tiny_llava"
    ki = str(BIN / "keypoint-instruct")
    _run(
        [sys.executable, "scripts/make_coco_fixture.py", str(coco), "--split", "train2017", "--images", str(n_images)]
    )
    common = ["--coco-root", str(coco), "--split", "train2017", "--cache", str(cache)]
    _run([ki, "generate", "--teacher", "offline", "--task", "all", *common])
    _run([ki, "build", *common, "--out", str(dataset), "--version", "1.0.0"])
    _run([sys.executable, "scripts/make_tiny_llava.py", str(model)])
    return coco, dataset, model


def measure(name: str, launcher: list[str], argv: list[str], out: Path, processes: int) -> dict:
    """Run one training through the worker; return its summary plus the wall time of the whole launch."""
    summary_file = out / "summary.json"
    started = time.perf_counter()
    _run([*launcher, __file__, "--worker", str(summary_file), "--setup", name, *argv, "--output_dir", str(out)])
    return {**json.loads(summary_file.read_text()), "processes": processes, "wall_s": time.perf_counter() - started}


def random_llava(model_dir: str, dtype, attn_implementation: str | None = None):
    """A random model of the config in ``model_dir``, built on the meta device and materialised on the GPU (the CPU
    without one), initialised as transformers initialises a fresh model; no CPU copy, no download.

    Built outside ZeRO-3's zero.Init (a 7B fits one H200 in bf16); DeepSpeed partitions it when the trainer starts.
    """
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from keypoint_instruct.training.upstream import without_zero3_init

    config = AutoConfig.from_pretrained(model_dir)
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    with torch.device("meta"), without_zero3_init():
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype, attn_implementation=attn_implementation)
    model.to_empty(device=device)  # uninitialised memory, buffers (rotary inv_freq, position ids) included
    for module in model.modules():
        module._is_hf_initialized = False
    model.initialize_weights()  # every parameter and buffer, as a fresh from_config would have them
    model.tie_weights()
    return model


def _versions() -> dict:
    import importlib.metadata as md
    import platform

    names = ("torch", "transformers", "trl", "deepspeed", "accelerate", "datasets", "tokenizers", "huggingface_hub")
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = md.version(name)
        except md.PackageNotFoundError:
            found[name] = None
    return found


def _device_facts() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"device": "cpu", "cpu_count": os.cpu_count()}
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {
        "device": "cuda",
        "gpu_name": props.name,
        "gpu_capability": f"{props.major}.{props.minor}",
        "gpu_total_gib": props.total_memory / 2**30,
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
    }


def _gib(value: float) -> float:
    return round(value / 2**30, 3)


def _memory() -> dict:
    """GPU memory now and at its peak (torch's caching allocator), and this process's peak resident host memory."""
    import resource

    import torch

    found = {"host_peak_rss_gib": _gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()  # the driver's view: NCCL and cuBLAS workspaces included
        found.update(
            gpu_allocated_gib=_gib(torch.cuda.memory_allocated()),
            gpu_peak_allocated_gib=_gib(torch.cuda.max_memory_allocated()),
            gpu_peak_reserved_gib=_gib(torch.cuda.max_memory_reserved()),
            gpu_free_now_gib=_gib(free),
            gpu_total_gib=_gib(total),
        )
    return found


def _is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def _deepspeed_setup(trainer) -> dict | None:
    plugin = trainer.accelerator.state.deepspeed_plugin
    if plugin is None:
        return None
    config = plugin.deepspeed_config
    zero = config.get("zero_optimization", {})
    return {
        "zero_stage": zero.get("stage"),
        "offload_optimizer": (zero.get("offload_optimizer") or {}).get("device", "none"),
        "offload_param": (zero.get("offload_param") or {}).get("device", "none"),
        "bf16": config.get("bf16", {}).get("enabled"),
        "gradient_clipping": config.get("gradient_clipping"),
        "zero_force_ds_cpu_optimizer": config.get("zero_force_ds_cpu_optimizer", True),
    }


def worker(summary_file: str, argv: list[str]) -> int:
    """Inside the launched process: train_sft's own trainer plus callbacks timing and measuring each optimizer step.

    Worker flags (the rest is train_sft's): ``--random-weights`` (a random model from the config, see
    ``random_llava``), ``--setup NAME`` (the label written into the summary), ``--warmup-steps N`` (step intervals
    left out of the mean, default 2). ``BENCH_FORCE_OOM=1`` raises a CUDA-style out-of-memory error at the end of
    the first optimizer step (the device script's rehearsal of its fallback).

    Rank 0 rewrites ``summary_file`` after every step (a run killed half-way still leaves its figures): per-step
    time, loss, tokens and memory; the mean step time after the warm-up, samples/s and tokens/s; GPU name and
    versions. Exit code 3 when the run ran out of memory (the summary says so), 1 on any other failure.
    """
    import torch
    from transformers import TrainerCallback

    from train_sft import build_trainer, parse_args

    started = time.perf_counter()
    options = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    options.add_argument("--random-weights", action="store_true")
    options.add_argument("--setup", default="run")
    options.add_argument("--warmup-steps", type=int, default=WARMUP_STEPS)
    ours, argv = options.parse_known_args(argv)
    script_args, training_args, model_args = parse_args(argv)
    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    built: dict = {}

    def make_model():  # called by build_trainer once it has resolved attn_implementation ("auto")
        begun = time.perf_counter()
        model = random_llava(model_args.model_name_or_path, dtype, model_args.attn_implementation)
        done = time.perf_counter()
        built.update(model_build_s=round(done - begun, 2), model_built_at_s=round(done - started, 2))
        return model

    trainer = build_trainer(
        script_args, training_args, model_args, make_model=make_model if ours.random_weights else None
    )
    model = trainer.model
    params = list(model.parameters())
    samples_per_step = (
        training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * trainer.accelerator.num_processes
    )
    summary: dict = {
        "setup": ours.setup,
        "status": "running",
        "oom": False,
        "model": model_args.model_name_or_path,
        "random_weights": ours.random_weights,
        "parameters": sum(getattr(p, "ds_numel", p.numel()) for p in params),
        "trainable_parameters": sum(getattr(p, "ds_numel", p.numel()) for p in params if p.requires_grad),
        "dtype": str(next(iter(params)).dtype).removeprefix("torch."),
        "per_device_batch": training_args.per_device_train_batch_size,
        "gradient_accumulation": training_args.gradient_accumulation_steps,
        "processes": trainer.accelerator.num_processes,
        "samples_per_step": samples_per_step,
        "max_steps": training_args.max_steps,
        "warmup_intervals_dropped": ours.warmup_steps,
        "deepspeed": _deepspeed_setup(trainer),
        "attention": getattr(model.config, "_attn_implementation", None),
        "loss_averaging": script_args.loss_averaging,
        "group_by_modality_length": script_args.group_by_modality_length,
        "tf32": bool(torch.cuda.is_available() and torch.backends.cuda.matmul.allow_tf32),
        **_device_facts(),
        "versions": _versions(),
        **built,
        "trainer_built_s": round(time.perf_counter() - started, 2),
        "memory_after_build": _memory(),
        "steps": [],
    }
    image_token_id = getattr(model.config, "image_token_id", None)
    counts = {"tokens": 0, "padded_tokens": 0, "trained_tokens": 0, "image_tokens": 0, "samples": 0}
    seen = dict(counts)

    def count_batch(module, args, kwargs):  # once per micro-batch (checkpointed layers recompute below this)
        ids, mask, labels = kwargs.get("input_ids"), kwargs.get("attention_mask"), kwargs.get("labels")
        if ids is None or not torch.is_grad_enabled():
            return
        counts["samples"] += ids.shape[0]
        counts["padded_tokens"] += ids.numel()
        counts["tokens"] += int(mask.sum()) if mask is not None else ids.numel()
        if labels is not None:
            counts["trained_tokens"] += int((labels != -100).sum())
        if image_token_id is not None:
            counts["image_tokens"] += int((ids == image_token_id).sum())

    model.register_forward_pre_hook(count_batch, with_kwargs=True)
    stamps: list[float] = []

    def write() -> None:
        if not trainer.accelerator.is_main_process:
            return
        times = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        summary["step_times_s"] = [round(t, 4) for t in times]
        timed = times[ours.warmup_steps :]
        steps = summary["steps"][1 + ours.warmup_steps :]
        summary["steps_timed"] = len(timed)
        if timed:
            step_s = sum(timed) / len(timed)
            summary.update(step_s=step_s, samples_per_s=samples_per_step / step_s)
            summary.update(step_s_min=min(timed), step_s_max=max(timed), step_s_median=statistics.median(timed))
            summary["step_s_sd"] = statistics.stdev(timed) if len(timed) > 1 else 0.0
            summary["tokens_per_s"] = sum(s["tokens"] for s in steps) / sum(timed)
            # 6 x parameters x tokens/s: the usual training-FLOP estimate (no attention, no recomputation)
            summary["tflops_6n"] = 6 * summary["parameters"] * summary["tokens_per_s"] / 1e12
            summary["tokens_per_sample"] = sum(s["tokens"] for s in steps) / max(1, sum(s["samples"] for s in steps))
        else:  # null in the JSON (NaN is not JSON)
            summary.update(step_s=None, samples_per_s=None)
        summary.update(memory=_memory(), wall_s=round(time.perf_counter() - started, 2))
        Path(summary_file).write_text(json.dumps(summary, indent=2) + "\n")

    class Measure(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())
            if len(stamps) == 1:
                summary["first_step_end_s"] = round(stamps[0] - started, 2)
            step = {"step": state.global_step, "end_s": round(stamps[-1] - started, 3)}
            step.update({key: counts[key] - seen[key] for key in counts})
            seen.update(counts)
            if torch.cuda.is_available():
                step["gpu_allocated_gib"] = _gib(torch.cuda.memory_allocated())
                step["gpu_peak_allocated_gib"] = _gib(torch.cuda.max_memory_allocated())
            summary["steps"].append(step)
            write()
            if os.environ.get("BENCH_FORCE_OOM") == "1" and state.global_step == 1:
                raise torch.OutOfMemoryError("CUDA out of memory (forced by BENCH_FORCE_OOM=1, a rehearsal)")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and summary["steps"] and summary["steps"][-1]["step"] == state.global_step:
                for key in ("loss", "grad_norm", "learning_rate"):
                    if key in logs:
                        summary["steps"][-1][key] = logs[key]
                write()

    trainer.add_callback(Measure())
    write()  # a run that hangs or dies before its first step still leaves its set-up and memory after the build
    code = 0
    try:
        trainer.train()
        summary["status"] = "done"
    except Exception as err:
        if not _is_oom(err):
            summary.update(status="error", error=" ".join(str(err).split())[:500])
            write()
            raise
        summary.update(status="oom", oom=True, error=" ".join(str(err).split())[:500])
        code = 3
    write()
    return code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        return worker(argv[1], argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per run (default 30)")
    parser.add_argument("--batch-size", type=int, default=4, help="per-process batch size (default 4)")
    parser.add_argument("--images", type=int, default=40, help="synthetic COCO images to build the dataset from")
    args = parser.parse_args(argv)
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    os.environ["OMP_NUM_THREADS"] = "1"  # what accelerate gives each process; same for the plain run
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        work = Path(tmp)
        os.environ["HF_HOME"] = str(work / "hf_home")
        coco, dataset, model = prepare(work, args.images)
        common = ["--config", str(RECIPE), "--model_name_or_path", str(model), "--dataset_name", str(dataset)]
        common += ["--coco_root", str(coco), "--max_steps", str(args.steps)]
        common += ["--per_device_train_batch_size", str(args.batch_size), "--logging_steps", "1"]
        accelerate = [str(BIN / "accelerate"), "launch", "--config_file", str(ZERO3_CPU)]
        accelerate += ["--num_cpu_threads_per_process", "1"]
        runs = [
            ("plain", [sys.executable], 1),
            ("zero3", [*accelerate, "--num_processes", "1"], 1),
            ("zero3", [*accelerate, "--num_processes", "2"], 2),
        ]
        rows = []
        for name, launcher, processes in runs:
            out = work / f"out_{name}_{processes}"
            out.mkdir()
            rows.append(measure(name, launcher, common, out, processes))
    print(f"tiny LLaVA, CPU ({os.cpu_count()} cores), {args.steps} steps, batch {args.batch_size}/process")
    print(f"{'setup':<8}{'procs':>6}{'step s':>10}{'samples/s':>12}{'wall s':>9}")
    for row in rows:
        print(
            f"{row['setup']:<8}{row['processes']:>6}{row['step_s'] or math.nan:>10.3f}"
            f"{row['samples_per_s'] or math.nan:>12.1f}{row['wall_s']:>9.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
