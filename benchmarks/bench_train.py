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
import os
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
    _run([*launcher, __file__, "--worker", str(summary_file), *argv, "--output_dir", str(out)])
    return {"setup": name, "processes": processes, **json.loads(summary_file.read_text()),
            "wall_s": time.perf_counter() - started}  # fmt: skip


def random_llava(model_dir: str):
    """A random model of the config in ``model_dir``, built directly on the GPU in bf16 (no CPU copy, no download).

    Built outside ZeRO-3's zero.Init (a 7B fits one H200 in bf16); DeepSpeed partitions it when the trainer starts.
    """
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from keypoint_instruct.training import without_zero3_init

    config = AutoConfig.from_pretrained(model_dir)
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    with device, without_zero3_init():
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    return model


def worker(summary_file: str, argv: list[str]) -> int:
    """Inside the launched process: train_sft's own trainer plus a callback timing each optimizer step.

    Writes ``summary_file`` (rank 0): mean step time after the warm-up steps, samples/s, peak GPU memory; exit 3
    when the GPU runs out of memory (the summary says so).
    """
    import torch
    from transformers import TrainerCallback

    from train_sft import build_trainer, parse_args

    random_weights = "--random-weights" in argv
    argv = [arg for arg in argv if arg != "--random-weights"]
    stamps: list[float] = []

    class StepStamps(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    script_args, training_args, model_args = parse_args(argv)
    make_model = (lambda: random_llava(model_args.model_name_or_path)) if random_weights else None
    trainer = build_trainer(script_args, training_args, model_args, make_model=make_model)
    trainer.add_callback(StepStamps())
    samples_per_step = (
        training_args.per_device_train_batch_size
        * training_args.gradient_accumulation_steps
        * trainer.accelerator.num_processes
    )
    summary: dict = {"samples_per_step": samples_per_step, "oom": False}
    try:
        trainer.train()
    except torch.OutOfMemoryError as err:
        summary.update(oom=True, error=str(err).splitlines()[0])
    steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)][WARMUP_STEPS:] or [float("nan")]
    summary.update(steps_timed=len(steps), step_s=sum(steps) / len(steps))
    summary["samples_per_s"] = samples_per_step / summary["step_s"]
    if torch.cuda.is_available():
        summary["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        summary["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    if trainer.accelerator.is_main_process:
        Path(summary_file).write_text(json.dumps(summary, indent=2) + "\n")
    return 3 if summary["oom"] else 0


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
            f"{row['setup']:<8}{row['processes']:>6}{row['step_s']:>10.3f}"
            f"{row['samples_per_s']:>12.1f}{row['wall_s']:>9.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
