"""The Python half of benchmarks/device_train_7b.sh: preflight, memory plan, wheels to carry, and the summary.

    python benchmarks/device_check.py preflight [--rehearse]   # seconds; one line and exit 2 when anything is missing
    python benchmarks/device_check.py carry                    # name==version of every distribution to carry
    python benchmarks/device_check.py plan MODEL_DIR --batch 8 [--rehearse]   # PLAN=... FALLBACK=... for the shell
    python benchmarks/device_check.py summary RESULTS STEPS    # the figures of each run's JSON

The preflight walks every requirement of what the run uses (setup.cfg's install_requires and `train` extra, and
theirs in turn, as the installed metadata states them), then imports the modules the run imports, then looks at the
GPU, the host's memory and flash-attn. The plan estimates the memory of full fine-tuning under ZeRO-3 on one GPU
from the model's parameter counts and picks the run that fits: the full state on the GPU, the AdamW state offloaded
to the host (only when the host has the memory for it), or half the per-device batch with twice the accumulation
(the same samples per step).
"""

from __future__ import annotations

import argparse
import configparser
import importlib.metadata as md
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GIB = 2**30
# The device image's torch (a CUDA build) is used as it is; setup.cfg pins the CPU wheel of the tests.
IMAGE_OWNED = {"torch", "triton", "torchvision"}
# Not carried even when the closure holds them: the CUDA stack, and binary packages built against the image's numpy
# (or too big for the 64 MiB carry: pyarrow's wheel alone is ~45 MB); the preflight says if their version is wrong.
NOT_CARRIED = IMAGE_OWNED | {
    "numpy", "pandas", "pyarrow", "pillow", "matplotlib", "contourpy", "kiwisolver", "fonttools", "scipy",
    "sympy", "mpmath", "networkx", "jinja2", "markupsafe", "setuptools", "pip", "psutil", "ninja", "xxhash",
}  # fmt: skip
IMPORTS = (
    "torch", "transformers", "trl", "deepspeed", "datasets", "accelerate", "tokenizers", "safetensors", "PIL",
    "pycocotools", "msgspec", "yaml", "keypoint_instruct.cli", "keypoint_instruct.training.sft", "train_sft",
)  # fmt: skip
# Memory of one GPU under ZeRO-3 with bf16 weights and torch AdamW, in bytes per parameter: 2 for the bf16 weight of
# every parameter, 16 for a trained one (+2 bf16 gradient, +4 fp32 master, +8 Adam moments). With the optimizer
# offloaded the GPU keeps weights and bf16 gradients and the host holds 16 per trained parameter (master, moments, fp32
# gradient). Activations (activation checkpointing), logits and DeepSpeed's buckets: ACT_FIXED_GIB +
# ACT_PER_SAMPLE_GIB per sample of a micro-batch (~720 tokens). DeepSpeed's own estimator gives ~119 GiB for the
# full state of the 7B on one GPU; this model gives ~115 GiB at batch 8.
TRAINED_BYTES, WEIGHT_BYTES, HOST_OFFLOAD_BYTES = 16, 2, 16
ACT_FIXED_GIB, ACT_PER_SAMPLE_GIB, HOST_SPARE_GIB, GPU_MARGIN = 8.0, 0.75, 10.0, 0.95


def setup_requirements() -> list[str]:
    """install_requires and the `train` extra of setup.cfg."""
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    lines += config["options.extras_require"]["train"].splitlines()
    return [line.strip() for line in lines if line.strip()]


def closure() -> tuple[dict[str, str], list[str]]:
    """Every distribution the run needs, installed here (name -> version), and what is missing or too old."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, str] = {}
    problems: list[str] = []
    todo = [(Requirement(text), "setup.cfg") for text in setup_requirements()]
    while todo:
        requirement, needed_by = todo.pop(0)
        name = canonicalize_name(requirement.name)
        try:
            distribution = md.distribution(requirement.name)
        except md.PackageNotFoundError:
            if not any(problem.startswith(f"{name} ") for problem in problems):
                problems.append(f"{name} missing (needed by {needed_by})")
            continue
        version = distribution.version
        if name not in IMAGE_OWNED and not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{name} {version} does not satisfy {requirement.specifier} (needed by {needed_by})")
        if name in found:
            continue
        found[name] = version
        for text in distribution.requires or []:
            nested = Requirement(text)
            if nested.marker is None or nested.marker.evaluate({"extra": ""}):
                todo.append((nested, name))
    return found, problems


def host_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024 / GIB
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")) / GIB


def preflight(rehearse: bool) -> int:
    """Packages, imports, GPU; one ``preflight: ...`` line and 2 when the run cannot work, else its facts and 0."""
    found, problems = closure()
    if problems:
        print(
            "preflight: " + "; ".join(problems) + " -- make the wheels here with `bash benchmarks/device_train_7b.sh "
            "--fetch-wheels` and carry .whl (a package too big to carry needs another image)"
        )
        return 2
    import importlib

    sys.path.insert(0, str(REPO))
    for module in IMPORTS:
        try:
            importlib.import_module(module)
        except Exception as err:  # an ImportError, or any failure while importing: the run would die the same way
            print(f"preflight: import {module} failed: {type(err).__name__}: {' '.join(str(err).split())[:300]}")
            return 2
    import torch

    from keypoint_instruct.training.parity import resolve_attention, tf32_available

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = f"GPU {props.name} {props.total_memory / GIB:.1f} GiB, CUDA {torch.version.cuda}"
    elif rehearse:
        gpu = "no GPU (REHEARSE: the CPU stands in)"
    else:
        print(f"preflight: no CUDA GPU visible to torch {torch.__version__} (CUDA build {torch.version.cuda})")
        return 2
    attention, why = resolve_attention("auto", "bfloat16")
    versions = ", ".join(f"{name} {found[name]}" for name in ("transformers", "trl", "deepspeed", "datasets"))
    print(f"preflight ok: {len(found)} distributions; python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"{versions}; {gpu}; host {host_available_gib():.1f} GiB available, {os.cpu_count()} CPUs; attention "
          f"{attention} ({why}); tf32 {'on' if tf32_available() else 'off (no CUDA GPU with TF32)'}")  # fmt: skip
    return 0


def carry_list() -> list[str]:
    """name==version of the closure's distributions that travel as wheels (NOT_CARRIED left out)."""
    found, problems = closure()
    if problems:
        sys.exit("device_check: this environment misses requirements itself: " + "; ".join(problems))
    return [f"{name}=={version}" for name, version in sorted(found.items()) if name not in NOT_CARRIED]


def parameter_counts(model_dir: str) -> tuple[int, int]:
    """(all parameters, trained ones: all but the vision tower) of the model in ``model_dir``, built on meta."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from keypoint_instruct.training.upstream import without_zero3_init

    with torch.device("meta"), without_zero3_init():
        model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(model_dir))
    total = sum(p.numel() for p in model.parameters())
    tower = sum(p.numel() for name, p in model.named_parameters() if "vision_tower" in name)
    return total, total - tower


def memory_plan(total: int, trained: int, batch: int, gpu_gib: float, host_gib: float) -> dict:
    """Which run fits: ``full`` (all state on the GPU), ``offload`` (AdamW state in host memory), ``small`` (half
    the per-device batch), or ``none``; and the fallback should the first one still run out of GPU memory."""
    states = (WEIGHT_BYTES * total + (TRAINED_BYTES - WEIGHT_BYTES) * trained) / GIB
    small_batch = max(1, batch // 2)
    need = {
        "full": states + ACT_FIXED_GIB + ACT_PER_SAMPLE_GIB * batch,
        "small": states + ACT_FIXED_GIB + ACT_PER_SAMPLE_GIB * small_batch,
        "offload": (WEIGHT_BYTES * total + 2 * trained) / GIB + ACT_FIXED_GIB + ACT_PER_SAMPLE_GIB * batch,
    }
    host_need = HOST_OFFLOAD_BYTES * trained / GIB + HOST_SPARE_GIB
    fits = {
        "full": need["full"] <= GPU_MARGIN * gpu_gib,
        "offload": need["offload"] <= GPU_MARGIN * gpu_gib and host_need <= host_gib,
        "small": small_batch < batch and need["small"] <= GPU_MARGIN * gpu_gib,
    }
    order = [run for run in ("full", "offload", "small") if fits[run]]
    first = order[0] if order else "none"
    if first == "full":  # an estimate: should it run out of memory after all, the next that fits by host memory
        fallback = "offload" if host_need <= host_gib else "small" if small_batch < batch else "none"
    else:
        fallback = "none"
    return {
        "plan": first,
        "fallback": fallback,
        "small_batch": small_batch,
        "need_gib": {run: round(value, 1) for run, value in need.items()},
        "host_need_gib": round(host_need, 1),
        "gpu_gib": round(gpu_gib, 1),
        "host_gib": round(host_gib, 1),
    }


def plan(model_dir: str, batch: int, rehearse: bool) -> int:
    """Shell assignments (PLAN, FALLBACK, SMALL_BATCH) and a comment line with the estimate behind them."""
    import torch

    total, trained = parameter_counts(model_dir)
    host = float(os.environ.get("HOST_GIB") or host_available_gib())
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_properties(0).total_memory / GIB
    else:
        gpu = host if rehearse else 0.0  # REHEARSE: the CPU's memory plays the GPU's
    gpu = float(os.environ.get("GPU_GIB") or gpu)
    chosen = memory_plan(total, trained, batch, gpu, host)
    print(f"# {total / 1e9:.3f} B parameters ({trained / 1e9:.3f} B trained); {json.dumps(chosen)}")
    print(f"PLAN={chosen['plan']} FALLBACK={chosen['fallback']} SMALL_BATCH={chosen['small_batch']}")
    return 0


def _spread(s: dict) -> str:
    """Median, min, max and sd of the timed steps, as the worker worked them out: from the unrounded times, like
    step_s (the times it lists are rounded to 0.1 ms: 0.56648 is listed as 0.5665, which prints 0.567)."""
    return (
        f"median {s['step_s_median']:.3f}, min {s['step_s_min']:.3f}, max {s['step_s_max']:.3f}, "
        f"sd {s['step_s_sd']:.3f}"
    )


# long: one block per run, each line one kind of figure, reads best in one piece
def summarize(results: Path, steps: int) -> list[str]:
    """The figures of each run's JSON (full, offload, small), one block per run."""
    lines = []
    for label in ("full", "offload", "small"):
        path = results / f"device_train_7b_{label}.json"
        if not path.is_file():
            if (results / f"device_train_7b_{label}.log").is_file():
                lines.append(f"{label}: no figures (stopped before its trainer was built): see its .log")
            continue
        s = json.loads(path.read_text())
        status = s["status"]
        if status == "running":  # the worker rewrites its JSON after every step: this one never finished
            status = "stopped after the steps below (time limit, or killed: see the log)"
        count = lambda n: f"{n / 1e9:.3f} B" if n >= 1e8 else f"{n / 1e6:.2f} M"  # noqa: E731
        ds = s.get("deepspeed")
        where = "no DeepSpeed" if not ds else (
            f"DeepSpeed ZeRO-{ds['zero_stage']}, optimizer on {ds['offload_optimizer']}, gradient clipping "
            f"{ds.get('gradient_clipping')}"
        )  # fmt: skip
        error = f" ({s['error']})" if s.get("error") else ""
        lines.append(
            f"{label}: {status}{error}; {s.get('gpu_name', 'cpu')}, {count(s['parameters'])} parameters "
            f"({count(s['trainable_parameters'])} trained), {s['dtype']}, {where}, attention {s.get('attention')}, "
            f"batch {s['per_device_batch']} x {s['gradient_accumulation']} accumulation"
        )
        done = f"  {len(s['steps'])}/{steps} steps of {s['samples_per_step']} samples; "
        warmup = int(s.get("warmup_intervals_dropped") or 0)
        if not s.get("steps_timed") or s.get("step_s") is None:
            first = {0: "a step is timed from the end of the one before", 1: "the first is warm-up"}.get(
                warmup, f"the first {warmup} are warm-up"
            )
            more = "" if len(s["steps"]) < steps else f": pass {warmup + 2} or more"
            lines.append(done + f"not enough steps to time ({first}){more}")
        else:
            lines.append(
                done + f"step s {s['step_s']:.3f} over {s['steps_timed']} steps ({_spread(s)}); "
                f"samples/s {s['samples_per_s']:.2f}; tokens/s {s['tokens_per_s']:.0f} "
                f"({s['tokens_per_sample']:.0f} per sample, ~{s['tflops_6n']:.1f} TFLOP/s by 6N)"
            )
        memory = s.get("memory") or {}
        if "gpu_peak_allocated_gib" in memory:
            lines.append(
                f"  peak GPU memory {memory['gpu_peak_allocated_gib']} GiB allocated, "
                f"{memory['gpu_peak_reserved_gib']} GiB reserved, of {memory['gpu_total_gib']} GiB; "
                f"host peak {memory['host_peak_rss_gib']} GiB"
            )
        else:
            lines.append(f"  peak GPU memory: none (no GPU); host peak {memory.get('host_peak_rss_gib')} GiB")
        losses = [round(x["loss"], 4) for x in s["steps"] if "loss" in x]
        lines.append(f"  loss per step {losses}; step times {s.get('step_times_s')}")
        lines.append(
            f"  model built in {s.get('model_build_s')} s, trainer at {s['trainer_built_s']} s, first step done at "
            f"{s.get('first_step_end_s')} s, wall {s.get('wall_s')} s"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("preflight").add_argument("--rehearse", action="store_true")
    sub.add_parser("carry")
    planning = sub.add_parser("plan")
    planning.add_argument("model_dir")
    planning.add_argument("--batch", type=int, required=True)
    planning.add_argument("--rehearse", action="store_true")
    summary = sub.add_parser("summary")
    summary.add_argument("results", type=Path)
    summary.add_argument("steps", type=int)
    args = parser.parse_args(argv)
    if args.command == "preflight":
        return preflight(args.rehearse)
    if args.command == "carry":
        print(" ".join(carry_list()))
        return 0
    if args.command == "plan":
        return plan(args.model_dir, args.batch, args.rehearse)
    if not args.results.is_dir():
        print(f"device_check: error: {args.results} is not a results folder of device_train_7b.sh", file=sys.stderr)
        return 2
    print("\n".join(summarize(args.results, args.steps)) or f"no results in {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
