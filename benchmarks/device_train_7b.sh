#!/usr/bin/env bash
# LLaVA-1.5-7B under DeepSpeed ZeRO-3 on one lent GPU (H100 80 GB or H200 141 GB): a few optimizer steps of the paper's
# recipe (recipes/llava-1.5-7b/sft/config_full.yaml: batch 8/device, gradient accumulation 2, bf16, tf32, activation
# checkpointing, frozen vision tower, assistant-only loss, no clipping, loss per micro-batch, LLaVA's length-grouped
# batches), reporting samples/s, tokens/s, the step-time spread, the loss of each step and peak GPU memory.
#
# No download: the llava-1.5-7b-hf architecture is written from its config (keypoint_instruct/training/tiny_llava.py)
# and built with random bf16 weights on the meta device, then materialised on the GPU (bench_train.py, random_llava);
# the data is the project's own build of a synthetic COCO with the offline teacher (576 image tokens per sample).
# Anchor: LLaVA-1.5 reports ~10 h for 665k samples on 8x A100-40G, ~2.3 samples/s per GPU; goal >= 6 samples/s.
#
# What it does, in order (the Python half is benchmarks/device_check.py):
#   1. preflight, in seconds: every requirement of the run (setup.cfg's and theirs, by the installed metadata) present
#      at a fitting version, every module importable, a CUDA GPU; else ONE line naming what is missing, exit 2.
#   2. data + the 7B skeleton (config and processor, no weights).
#   3. plan: full fine-tuning state on the GPU if it fits (an estimate from the parameter counts: ~115 GiB at batch
#      8, so an H200), else the AdamW state offloaded to host memory if the host has it (~111 GiB available needed,
#      checked), else half the batch with twice the accumulation; none of them: one line, exit 1.
#   4. the planned run; on a CUDA out-of-memory (the worker exits 3) the fallback (offload if the host has the
#      memory, else the smaller batch) when at least MIN_RUN_S seconds are left, else the line to rerun it.
#   5. summary (again from the files: bash benchmarks/device_train_7b.sh --summary RESULTS STEPS).
#
# Time: a session has 15 minutes of device time, the machine's start (1-2 min) and copies included. The default
# BUDGET_S=300 ends the whole script within 5 minutes, so one call costs ~7 minutes and a second try still fits:
#   here, once:   bash benchmarks/device_train_7b.sh --fetch-wheels     (.whl/, git-ignored: what the image lacks)
#   device call:  run(carry=[".whl"], timeout_s=330, command="bash benchmarks/device_train_7b.sh")
#   second try:   the same, or with PLAN=offload|small|full in front to force a set-up (e.g. the fallback it named).
#
# PREPARE_ONLY=1 stops after the plan (data, skeleton and plan checked on any machine, no GPU needed).
# REHEARSE=1 runs the whole script on a CPU: the same skeleton with tiny widths and depths (576 image tokens still),
#   the CPU ZeRO-3 accelerate config, bf16 off and float32 weights; the CPU's memory stands in for the GPU's in the
#   plan (GPU_GIB / HOST_GIB override either). REHEARSE_FORCE_FALLBACK=1 makes the first run fail with a CUDA-style
#   OOM so the fallback runs too (HOST_GIB=1 makes that fallback the smaller batch instead of the offload).
# Writes $OUT/device_train_7b_<full|offload|small>.json and .log (<work folder>/results/ when OUT is unset). The first
# optimizer step is warm-up: pass 3 steps or more to time any.
set -euo pipefail
if [[ "${PYTHON:-}" == */* ]]; then PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"; fi
cd "$(dirname "$0")/.."   # the repository root: recipes/, scripts/ and .whl/ are read from there
if [ "${1:-}" = --summary ]; then
    results=$2; [[ "$results" = /* ]] || results="$OLDPWD/$results"
    exec "${PYTHON:-python3}" benchmarks/device_check.py summary "$results" "$3"
fi
if [ "${1:-}" = --fetch-wheels ]; then
    PY=${PYTHON:-.venv/bin/python}
    WHEEL_PYTHON=${WHEEL_PYTHON:-3.12}
    rm -rf .whl && mkdir -p .whl
    read -r -a pins <<<"$(PYTHONPATH=$PWD $PY benchmarks/device_check.py carry)"
    binary=() ds=""
    for pin in "${pins[@]}"; do if [[ $pin == deepspeed==* ]]; then ds=$pin; else binary+=("$pin"); fi; done
    platforms=(--platform manylinux2014_x86_64)
    for n in 28 27 24 17; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version "$WHEEL_PYTHON" --implementation cp \
        "${platforms[@]}" -d .whl "${binary[@]}"
    # PyPI has no DeepSpeed wheel and an sdist cannot be built with --no-index there: build one here (ops JIT there)
    $PY -m pip download -q --no-deps --no-binary=:all: -d .whl/src "$ds"
    DS_BUILD_OPS=0 $PY -m pip wheel -q --no-deps --no-build-isolation -w .whl .whl/src/deepspeed-*.tar.gz
    rm -rf .whl/src
    echo "$WHEEL_PYTHON" >.whl/PYTHON
    echo "$(ls .whl/*.whl | wc -l) wheels, $(du -sh .whl | cut -f1) (the carry limit is 64 MiB with the repository)"
    exit 0
fi
STEPS=${1:-5}
PY=${PYTHON:-python3}
REHEARSE=${REHEARSE:-0}
BUDGET_S=${BUDGET_S:-300}   # the whole script; see "Time" above
MIN_RUN_S=${MIN_RUN_S:-100} # the least a run is started with (a 7B's load and DeepSpeed set-up take about a minute)
ASKED_PLAN=${PLAN:-}
W=$(mktemp -d "${TMPDIR:-/tmp}/device_train_7b.XXXX")
RESULTS=${OUT:-$W/results}
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$W/hf_home"
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TOKENIZERS_PARALLELISM=false
RECIPE=recipes/llava-1.5-7b/sft/config_full.yaml
if [ "$REHEARSE" = 1 ]; then
    # The CPU build of DeepSpeed's shared-memory comm op takes a minute: compile it once per machine.
    export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$HOME/.cache/torch_extensions_ki}
    SIZE=tiny ACCEL=recipes/accelerate_configs/zero3_cpu.yaml PREFLIGHT=(--rehearse)
    REHEARSAL_FLAGS=(--bf16 false --dtype float32)
else
    export TORCH_EXTENSIONS_DIR="$W/torch_extensions"
    SIZE=7b ACCEL=recipes/accelerate_configs/zero3.yaml PREFLIGHT=()
    REHEARSAL_FLAGS=()
fi
# Carried wheels (made for the Python version in .whl/PYTHON) go first on the path: the device image.
if [ -f .whl/PYTHON ] && [ "$($PY -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$(cat .whl/PYTHON)" ]; then
    rm -rf /tmp/site
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
step() { printf '\n==> %s (%ss)\n' "$*" "$SECONDS"; }

step "preflight (REHEARSE=$REHEARSE, skeleton $SIZE, $ACCEL)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
$PY benchmarks/device_check.py preflight "${PREFLIGHT[@]}" 2> >(grep -v "real_accelerator" >&2) || exit 2

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

# ZeRO-3 with the AdamW state in host memory: DeepSpeed refuses a client optimizer (the recipe's torch AdamW) with
# offload unless zero_force_ds_cpu_optimizer is false (its own CPUAdam would need a C++ build first). Unpinned.
$PY - "$W" "$ACCEL" <<'EOF'
import json, sys
work, accel = sys.argv[1:]
config = json.load(open("recipes/accelerate_configs/ds_zero3.json"))
config["zero_optimization"]["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
config["zero_force_ds_cpu_optimizer"] = False
json.dump(config, open(f"{work}/ds_zero3_offload.json", "w"), indent=2)
text = open(accel).read()
if "recipes/accelerate_configs/ds_zero3.json" not in text:
    sys.exit(f"{accel} does not name recipes/accelerate_configs/ds_zero3.json: cannot derive the offload config")
open(f"{work}/zero3_offload.yaml", "w").write(
    text.replace("recipes/accelerate_configs/ds_zero3.json", f"{work}/ds_zero3_offload.json"))
EOF

read -r BATCH ACCUM < <($PY -c "import sys, yaml; r = yaml.safe_load(open(sys.argv[1]))
print(r['per_device_train_batch_size'], r['gradient_accumulation_steps'])" "$RECIPE")
step "plan: what fits (recipe batch $BATCH x $ACCUM accumulation)"
planned=$($PY benchmarks/device_check.py plan "$W/llava-1.5-7b" --batch "$BATCH" "${PREFLIGHT[@]}" 2>/dev/null)
echo "$planned"
eval "$(grep '^PLAN=' <<<"$planned")"
if [ -n "$ASKED_PLAN" ]; then echo "PLAN=$ASKED_PLAN asked: running that, no fallback"; PLAN=$ASKED_PLAN FALLBACK=none; fi
if [ "$PLAN" = none ]; then
    echo "nothing fits this machine (full state, optimizer offload or half the batch): see the estimate above"
    exit 1
fi
if [ "${PREPARE_ONLY:-0}" = 1 ]; then step "prepared in $W (PREPARE_ONLY=1: no training)"; exit 0; fi

train() {  # $1 = set-up (full | offload | small): train under the time left, results to $RESULTS
    local label=$1 accel=$ACCEL left=$((BUDGET_S - SECONDS - 15)) flags=()
    case $label in
        offload) accel=$W/zero3_offload.yaml ;;
        small) flags=(--per_device_train_batch_size "$SMALL_BATCH"
                      --gradient_accumulation_steps $((BATCH * ACCUM / SMALL_BATCH))) ;;
    esac
    local json="$RESULTS/device_train_7b_$label.json" log="$RESULTS/device_train_7b_$label.log"
    step "train: $label, $STEPS optimizer steps, at most ${left}s"
    if [ "$left" -lt "$MIN_RUN_S" ]; then
        echo "$label not started: ${left}s left, under MIN_RUN_S=$MIN_RUN_S; run again with PLAN=$label"
        return 2
    fi
    rm -f "$json"
    set +e
    # A run over its time is stopped (TERM, then KILL): its JSON keeps the steps done so far.
    timeout --kill-after=15 "$left" \
        $PY -m accelerate.commands.launch --config_file "$accel" --num_processes 1 \
        benchmarks/bench_train.py --worker "$json" --random-weights --setup "$label" --warmup-steps 1 \
        --config "$RECIPE" --model_name_or_path "$W/llava-1.5-7b" --dataset_name "$W/dataset" \
        --coco_root "$W/coco" --output_dir "$W/out_$label" --max_steps "$STEPS" --logging_steps 1 \
        --save_strategy no --report_to none "${flags[@]}" "${REHEARSAL_FLAGS[@]}" 2>&1 \
        | grep --line-buffered -v -E "FutureWarning|return func|it/s\]$|s/it\]$" | tee "$log" | tail -n 30
    local code=${PIPESTATUS[0]}
    set -e
    # the launcher turns the worker's exit code 3 into 1: its JSON says whether it ran out of memory
    if [ "$code" != 0 ] && grep -q '"status": "oom"' "$json" 2>/dev/null; then code=3; fi
    echo "$label: exit code $code$([ "$code" = 124 ] && echo ' (stopped at its time limit)')$(
        [ "$code" = 3 ] && echo ' (CUDA out of memory)')"
    return "$code"
}

if [ "${REHEARSE_FORCE_FALLBACK:-0}" = 1 ]; then export BENCH_FORCE_OOM=1; fi
code=0
train "$PLAN" || code=$?
unset BENCH_FORCE_OOM
if [ "$code" = 3 ] && [ "$FALLBACK" != none ]; then
    echo "$PLAN ran out of GPU memory: the fallback is $FALLBACK"
    train "$FALLBACK" || echo "$FALLBACK did not finish: see its log"
elif [ "$code" = 3 ]; then
    echo "$PLAN ran out of GPU memory and nothing else fits this machine"
fi

step "summary"
if [ "$REHEARSE" = 1 ]; then echo "REHEARSE=1: a tiny skeleton on the CPU; these figures say nothing about the 7B"; fi
$PY benchmarks/device_check.py summary "$RESULTS" "$STEPS"
echo "anchor: LLaVA-1.5 trained at ~2.3 samples/s per A100-40G; goal on one H200: >= 6 samples/s"
step "done (results in $RESULTS)"
