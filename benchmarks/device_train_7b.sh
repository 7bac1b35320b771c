#!/usr/bin/env bash
# LLaVA-1.5-7B under DeepSpeed ZeRO-3 on one lent GPU (H200, 139 GiB): a few optimizer steps of the paper's recipe
# (recipes/llava-1.5-7b/sft/config_full.yaml: batch 8/device, gradient accumulation 2, bf16, activation
# checkpointing, frozen vision tower, assistant-only loss), reporting samples/s, tokens/s, step time, the loss of
# each step and peak GPU memory.
#
# No download: the llava-1.5-7b-hf architecture is written from its config (keypoint_instruct/tiny_llava.py,
# llava_15_7b_config) and built with random bf16 weights on the meta device, then materialised on the GPU
# (benchmarks/bench_train.py, random_llava); the data is the project's own build of a synthetic COCO with the
# offline teacher (640x480-sized JPEGs, 576 image tokens per sample).
#
# Anchor: LLaVA-1.5 reports ~10 h for 665k samples on 8x A100-40G, ~2.3 samples/s per GPU; goal >= 6 samples/s.
# Full 7B fine-tuning state under ZeRO-3 on one GPU is ~119 GiB (DeepSpeed's estimator). If the full state does
# not fit (the worker exits 3 on CUDA OOM) or the run fails, the script measures the next set-up that does: AdamW
# state offloaded to the CPU (a torch AdamW stepping there; zero_force_ds_cpu_optimizer false).
#
# Usage, in two steps (the device image has torch, accelerate, tokenizers and huggingface_hub, but not trl,
# deepspeed, datasets and some of their dependencies, and nothing can be fetched there):
#   here, once:   bash benchmarks/device_train_7b.sh --fetch-wheels
#                 writes .whl/ (git-ignored): cp312 manylinux wheels of what the image lacks, at this venv's versions,
#                 and a wheel of DeepSpeed built from its sdist (PyPI ships no DeepSpeed wheel; its ops compile just in
#                 time on the GPU machine). About 20 MB. WHEEL_PYTHON=3.11 makes cp311 wheels (the install rehearsal).
#   on the GPU:   device run with carry [".whl"]:  bash benchmarks/device_train_7b.sh [STEPS]
#                 installs .whl/ into /tmp/site (first on PYTHONPATH), reports any requirement the image still misses,
#                 then builds the data and trains. Everything ends inside BUDGET_S seconds (default 540).
# PREPARE_ONLY=1 stops before training (checks the data and model set-up on any machine, no GPU needed).
# REHEARSE=1 runs the whole script on a CPU: the same skeleton with tiny widths and depths (576 image tokens still),
#   the CPU ZeRO-3 accelerate config, bf16 off and float32 weights; everything else as on the GPU.
#   REHEARSE_FORCE_FALLBACK=1 makes the first run fail with a CUDA-style OOM, so the offload run is rehearsed too.
#   Rehearse the device image's package layering with a venv that has the image's packages but not ours:
#     WHEEL_PYTHON=3.11 bash benchmarks/device_train_7b.sh --fetch-wheels
#     PYTHON=/tmp/imgvenv/bin/python REHEARSE=1 bash benchmarks/device_train_7b.sh 2
# Writes $OUT/device_train_7b_<full|offload>.json and .log (<work folder>/results/ when OUT is unset) and prints a
# summary of both (again, from those files: bash benchmarks/device_train_7b.sh --summary RESULTS STEPS). The first
# optimizer step is warm-up: pass 3 steps or more to time any.
set -euo pipefail
if [[ "${PYTHON:-}" == */* ]]; then PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"; fi
cd "$(dirname "$0")/.."   # the repository root: recipes/, scripts/ and .whl/ are read from there
# Distributions the device image lacks (or has too old: transformers 5.17) and our code or trl/datasets/deepspeed
# import; pinned to this venv's versions so the GPU run uses what the CPU tests used.
CARRY=(trl datasets transformers dill multiprocess hjson pydantic pydantic_core annotated_types typing_inspection
       typing_extensions msgspec pycocotools fsspec regex)
summarize() {  # $1 = results folder, $2 = optimizer steps asked for: the figures of each run's JSON
"$PY" - "$1" "$2" <<'EOF'
import json, sys
from pathlib import Path
results, steps = Path(sys.argv[1]), int(sys.argv[2])
nan = float("nan")
for label in ("full", "offload"):
    path = results / f"device_train_7b_{label}.json"
    if not path.is_file():
        if (results / f"device_train_7b_{label}.log").is_file():
            print(f"{label}: no figures (stopped before its trainer was built): see device_train_7b_{label}.log")
        continue
    s = {key: nan if value is None else value for key, value in json.loads(path.read_text()).items()}
    if s["status"] == "running":  # the worker rewrites its JSON after every step: this one never finished
        s["status"] = "stopped after the steps below (time limit, or killed: see the log)"
    count = lambda n: f"{n / 1e9:.3f} B" if n >= 1e8 else f"{n / 1e6:.2f} M"
    print(f"{label}: {s['status']}{' (' + s['error'] + ')' if s.get('error') else ''}; {s.get('gpu_name', 'cpu')}, "
          f"{count(s['parameters'])} parameters ({count(s['trainable_parameters'])} trained), {s['dtype']}, "
          f"{'no DeepSpeed' if s['deepspeed'] is nan else 'DeepSpeed ' + str(s['deepspeed'])}")
    done = f"  {len(s['steps'])}/{steps} steps of {s['samples_per_step']} samples; "
    if not s.get("steps_timed") or s.get("step_s") != s.get("step_s"):  # no interval after the warm-up ones
        warmup = int(s.get("warmup_intervals_dropped") or 0)
        first = {0: "a step is timed from the end of the one before", 1: "the first is warm-up"}.get(
            warmup, f"the first {warmup} are warm-up")
        if len(s["steps"]) < steps:  # stopped early: more steps asked would not have helped
            print(done + f"not enough steps to time ({first})")
        else:
            print(done + f"not enough steps to time ({first}): pass {warmup + 2} or more")
    else:
        print(done + f"step s {s['step_s']:.3f} over {s['steps_timed']} steps; samples/s {s['samples_per_s']:.2f}; "
              f"tokens/s {s.get('tokens_per_s', nan):.0f} ({s.get('tokens_per_sample', nan):.0f} per sample, "
              f"~{s.get('tflops_6n', nan):.1f} TFLOP/s by 6N)")
    print(f"  loss per step {[round(x['loss'], 4) for x in s['steps'] if 'loss' in x]}; step times {s.get('step_times_s')}")
    print(f"  memory {s.get('memory')}; model built in {s.get('model_build_s')} s (done at {s.get('model_built_at_s')} s), trainer at {s['trainer_built_s']} s, "
          f"first step done at {s.get('first_step_end_s')} s, wall {s.get('wall_s')} s")
EOF
}
if [ "${1:-}" = --summary ]; then cd "$OLDPWD"; PY=${PYTHON:-python3}; summarize "$2" "$3"; exit 0; fi
if [ "${1:-}" = --fetch-wheels ]; then
    PY=${PYTHON:-.venv/bin/python}
    WHEEL_PYTHON=${WHEEL_PYTHON:-3.12}
    rm -rf .whl && mkdir -p .whl
    pins=$($PY -c 'import importlib.metadata as md, sys; print(" ".join(f"{n}=={md.version(n)}" for n in sys.argv[1:]))' \
        "${CARRY[@]}")
    platforms=(--platform manylinux2014_x86_64)
    for n in 28 27 24 17; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
    # shellcheck disable=SC2086
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version "$WHEEL_PYTHON" --implementation cp \
        "${platforms[@]}" -d .whl $pins
    ds=$($PY -c "import importlib.metadata as md; print(md.version('deepspeed'))")
    $PY -m pip download -q --no-deps --no-binary=:all: -d .whl/src "deepspeed==$ds"
    DS_BUILD_OPS=0 $PY -m pip wheel -q --no-deps --no-build-isolation -w .whl .whl/src/deepspeed-*.tar.gz
    rm -rf .whl/src
    ls -1 .whl && du -sh .whl
    exit 0
fi
STEPS=${1:-6}
PY=${PYTHON:-python3}
REHEARSE=${REHEARSE:-0}
BUDGET_S=${BUDGET_S:-540}   # the device call's limit is 600 s: leave room for the machine's own start and copies
FULL_S=${FULL_S:-300}       # at most this for the full-state run, so that a hang there leaves time for the fallback
W=$(mktemp -d "${TMPDIR:-/tmp}/device_train_7b.XXXX")
RESULTS=${OUT:-$W/results}
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$W/hf_home"
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TOKENIZERS_PARALLELISM=false
if [ "$REHEARSE" = 1 ]; then
    # The CPU build of DeepSpeed's shared-memory comm op takes a minute: compile it once per machine.
    export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$HOME/.cache/torch_extensions_ki}
    SIZE=tiny ACCEL=recipes/accelerate_configs/zero3_cpu.yaml
    REHEARSAL_FLAGS=(--bf16 false --dtype float32)
else
    export TORCH_EXTENSIONS_DIR="$W/torch_extensions"
    SIZE=7b ACCEL=recipes/accelerate_configs/zero3.yaml
    REHEARSAL_FLAGS=()
fi
if [ -d .whl ] && ! $PY -c "import trl, deepspeed, datasets" 2>/dev/null; then  # the device image, not this venv
    rm -rf /tmp/site
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
step() { printf '\n==> %s (%ss)\n' "$*" "$SECONDS"; }

step "environment (REHEARSE=$REHEARSE, skeleton $SIZE, $ACCEL)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
# What the carried packages need from the image (pyarrow>=24, tokenizers, huggingface_hub, ...): said now, in
# seconds, rather than as an ImportError deep in the run. A miss is reported, not fatal.
$PY - "${CARRY[@]}" deepspeed <<'EOF' || true
import importlib.metadata as md, sys
from packaging.requirements import Requirement
for name in sys.argv[1:]:
    try:
        requires = md.requires(name) or []
    except md.PackageNotFoundError:
        print(f"MISSING {name}: run `bash benchmarks/device_train_7b.sh --fetch-wheels` here and carry .whl")
        continue
    for text in requires:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            have = md.version(req.name)
        except md.PackageNotFoundError:
            print(f"MISSING {req.name} (needed by {name})")
            continue
        if not req.specifier.contains(have, prereleases=True):
            print(f"VERSION {req.name} {have} does not satisfy {req} (needed by {name})")
EOF
$PY - <<'EOF'
import torch, transformers, trl, deepspeed, datasets, accelerate
print("torch", torch.__version__, "transformers", transformers.__version__, "trl", trl.__version__, "deepspeed",
      deepspeed.__version__, "datasets", datasets.__version__, "accelerate", accelerate.__version__)
print("transformers from", transformers.__file__)
from transformers.utils import is_torchvision_available
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"CUDA {torch.version.cuda}, GPU {gpu}; image processors: {'torchvision' if is_torchvision_available() else 'PIL'}")
EOF

step "data: synthetic COCO -> offline teacher -> keypoint-instruct build"
$PY scripts/make_coco_fixture.py "$W/coco" --split train2017 --images 80 --seed 0 >/dev/null
COMMON=(--coco-root "$W/coco" --split train2017 --cache "$W/responses.sqlite")
$PY -m keypoint_instruct generate --teacher offline --task all "${COMMON[@]}" >/dev/null
$PY -m keypoint_instruct build "${COMMON[@]}" --out "$W/dataset" --version 1.0.0 >"$W/build.txt"
sed -n '1,6p' "$W/build.txt"

step "LLaVA-1.5-7B config + processor ($SIZE widths; tokenizer trained on the dataset's text), no weights"
$PY - "$W" "$SIZE" <<'EOF'
import sys
from datasets import load_dataset
from keypoint_instruct.training.tiny_llava import write_llava_7b_skeleton
work, size = sys.argv[1:]
rows = load_dataset(f"{work}/dataset", "all", split="train")
corpus = [part["text"] for row in rows["messages"] for m in row for part in m["content"] if part["text"]]
write_llava_7b_skeleton(f"{work}/llava-1.5-7b", corpus, size=size)
print(f"{len(rows)} samples; tokenizer trained on {len(corpus)} turns")
EOF

# ZeRO-3 with the AdamW state on the CPU: the fallback when the full state does not fit the GPU.
$PY - "$W" "$ACCEL" <<'EOF'
import json, sys
work, accel = sys.argv[1:]
config = json.load(open("recipes/accelerate_configs/ds_zero3.json"))
# The recipe's torch AdamW then steps on the CPU copy (DeepSpeed refuses a client optimizer with offload unless told
# otherwise; its own CPUAdam would need a C++ build on the machine first). Unpinned: the VM's RAM grows on demand.
config["zero_optimization"]["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
config["zero_force_ds_cpu_optimizer"] = False
json.dump(config, open(f"{work}/ds_zero3_offload.json", "w"), indent=2)
text = open(accel).read()
if "recipes/accelerate_configs/ds_zero3.json" not in text:
    sys.exit(f"{accel} does not name recipes/accelerate_configs/ds_zero3.json: cannot derive the offload config")
open(f"{work}/zero3_offload.yaml", "w").write(
    text.replace("recipes/accelerate_configs/ds_zero3.json", f"{work}/ds_zero3_offload.json"))
EOF

if [ "${PREPARE_ONLY:-0}" = 1 ]; then step "prepared in $W (PREPARE_ONLY=1: no training)"; exit 0; fi

train() {  # $1 = label, $2 = accelerate config, $3 = most seconds it may take (capped by what is left)
    local label=$1 accel=$2 left=$((BUDGET_S - SECONDS - 20))
    if [ -n "${3:-}" ] && [ "$3" -lt "$left" ]; then left=$3; fi
    local json="$RESULTS/device_train_7b_$label.json" log="$RESULTS/device_train_7b_$label.log"
    step "train: $label, $STEPS optimizer steps, at most ${left}s"
    if [ "$left" -lt 30 ]; then echo "no time left for $label"; return 1; fi
    rm -f "$json"
    set +e
    # A run over its time is stopped (TERM, then KILL): its JSON keeps the steps done so far.
    timeout --kill-after=15 "$left" \
        $PY -m accelerate.commands.launch --config_file "$accel" --num_processes 1 \
        benchmarks/bench_train.py --worker "$json" --random-weights --setup "$label" --warmup-steps 1 \
        --config recipes/llava-1.5-7b/sft/config_full.yaml \
        --model_name_or_path "$W/llava-1.5-7b" --dataset_name "$W/dataset" --coco_root "$W/coco" \
        --output_dir "$W/out_$label" --max_steps "$STEPS" --logging_steps 1 --save_strategy no \
        --report_to none "${REHEARSAL_FLAGS[@]}" 2>&1 \
        | grep --line-buffered -v -E "FutureWarning|return func|it/s\]$|s/it\]$" | tee "$log" | tail -n 40
    local code=${PIPESTATUS[0]}
    set -e
    echo "$label: exit code $code$([ "$code" = 124 ] && echo ' (stopped at its time limit)')"
    return "$code"
}

if [ "${REHEARSE_FORCE_FALLBACK:-0}" = 1 ]; then export BENCH_FORCE_OOM=1; fi
if train full "$ACCEL" "$FULL_S"; then
    if [ "$REHEARSE" = 1 ]; then echo "full state run done (rehearsal: tiny skeleton)"
    else echo "full 7B fine-tuning state fits one GPU"; fi
else
    unset BENCH_FORCE_OOM
    echo "full state did not fit (or failed): measuring ZeRO-3 with the optimizer state on the CPU"
    train offload "$W/zero3_offload.yaml" || echo "offload run failed too: see the log above"
fi
unset BENCH_FORCE_OOM

step "summary"
if [ "$REHEARSE" = 1 ]; then echo "REHEARSE=1: a tiny skeleton on the CPU; these figures say nothing about the 7B"; fi
summarize "$RESULTS" "$STEPS"
echo "anchor: LLaVA-1.5 trained at ~2.3 samples/s per A100-40G; goal on one H200: >= 6 samples/s"
step "done (results in $RESULTS)"
