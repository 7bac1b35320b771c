#!/usr/bin/env bash
# LLaVA-1.5-7B under DeepSpeed ZeRO-3 on one lent GPU (H200, 139 GiB): a few optimizer steps of the paper's recipe
# (recipes/llava-1.5-7b/sft/config_full.yaml: batch 8/device, gradient accumulation 2, bf16, activation
# checkpointing, frozen vision tower, assistant-only loss), reporting samples/s and peak GPU memory.
#
# No download: the llava-1.5-7b-hf architecture is written from its config (keypoint_instruct/tiny_llava.py,
# llava_15_7b_config) with random weights built directly on the GPU in bf16, and the data is the project's own
# build of a synthetic COCO with the offline teacher (640x480-sized JPEGs, 576 image tokens per sample).
#
# Anchor: LLaVA-1.5 reports ~10 h for 665k samples on 8x A100-40G, ~2.3 samples/s per GPU; goal >= 6 samples/s.
# Full 7B fine-tuning state under ZeRO-3 on one GPU is ~119 GiB (DeepSpeed's estimator). If the full state does
# not fit (exit 3 = CUDA OOM), the script measures the next set-up that does: AdamW state offloaded to CPU.
#
# Usage, in two steps (the device image has torch, accelerate, tokenizers and huggingface_hub, but not trl,
# deepspeed, datasets and some of their dependencies, and nothing can be fetched there):
#   here, once:   bash benchmarks/device_train_7b.sh --fetch-wheels
#                 writes .whl/ (git-ignored): cp312 manylinux wheels of what the image lacks, at this venv's versions,
#                 and a wheel of DeepSpeed built from its sdist (PyPI ships no DeepSpeed wheel; its ops compile just in
#                 time on the GPU machine). About 20 MB.
#   on the GPU:   device run with carry [".whl"]:  bash benchmarks/device_train_7b.sh [STEPS]
#                 installs .whl/ into /tmp/site (first on PYTHONPATH), reports any requirement the image still misses,
#                 then builds the data and trains.
# PREPARE_ONLY=1 stops before training (checks the data and model set-up on any machine, no GPU needed).
# Writes $OUT/device_train_7b_<full|offload>.json (or ./device_train_7b.json when OUT is unset) and prints a summary.
set -euo pipefail
# Distributions the device image lacks (or has too old: transformers 5.17) and our code or trl/datasets/deepspeed
# import; pinned to this venv's versions so the GPU run uses what the CPU tests used.
CARRY=(trl datasets transformers dill multiprocess hjson pydantic pydantic_core annotated_types typing_inspection
       typing_extensions msgspec pycocotools fsspec regex)
if [ "${1:-}" = --fetch-wheels ]; then
    PY=${PYTHON:-.venv/bin/python}
    rm -rf .whl && mkdir -p .whl
    pins=$($PY -c 'import importlib.metadata as md, sys; print(" ".join(f"{n}=={md.version(n)}" for n in sys.argv[1:]))' \
        "${CARRY[@]}")
    platforms=(--platform manylinux2014_x86_64)
    for n in 28 27 24 17; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
    # shellcheck disable=SC2086
    $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
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
RESULTS=${OUT:-.}
W=$(mktemp -d /tmp/device_train_7b.XXXX)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$W/hf_home"
export TORCH_EXTENSIONS_DIR="$W/torch_extensions" PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
if [ -d .whl ] && ! $PY -c "import trl, deepspeed, datasets" 2>/dev/null; then  # the device image, not this venv
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
step() { printf '\n==> %s (%ss)\n' "$*" "$SECONDS"; }

step "environment"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"
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
$PY -c "import torch, transformers, trl, deepspeed, datasets; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'trl', trl.__version__, 'deepspeed', deepspeed.__version__, 'datasets', datasets.__version__)"

step "data: synthetic COCO -> offline teacher -> keypoint-instruct build"
$PY scripts/make_coco_fixture.py "$W/coco" --split train2017 --images 80 --seed 0 >/dev/null
COMMON=(--coco-root "$W/coco" --split train2017 --cache "$W/responses.sqlite")
$PY -m keypoint_instruct generate --teacher offline --task all "${COMMON[@]}" >/dev/null
$PY -m keypoint_instruct build "${COMMON[@]}" --out "$W/dataset" --version 1.0.0 | head -8

step "LLaVA-1.5-7B config + processor (tokenizer trained on the dataset's text), no weights"
$PY - "$W" <<'EOF'
import sys
from datasets import load_dataset
from keypoint_instruct.tiny_llava import write_llava_7b_skeleton
work = sys.argv[1]
rows = load_dataset(f"{work}/dataset", "all", split="train")
corpus = [part["text"] for row in rows["messages"] for m in row for part in m["content"] if part["text"]]
write_llava_7b_skeleton(f"{work}/llava-1.5-7b", corpus)
print(f"{len(rows)} samples; tokenizer trained on {len(corpus)} turns")
EOF

# ZeRO-3 with the AdamW state on the CPU: the fallback when the full state does not fit the GPU.
$PY - "$W" <<'EOF'
import json, sys
work = sys.argv[1]
config = json.load(open("recipes/accelerate_configs/ds_zero3.json"))
# The recipe's torch AdamW then steps on the CPU copy (DeepSpeed refuses a client optimizer with offload unless told
# otherwise; its own CPUAdam would need a C++ build on the machine first). Unpinned: the VM's RAM grows on demand.
config["zero_optimization"]["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
config["zero_force_ds_cpu_optimizer"] = False
json.dump(config, open(f"{work}/ds_zero3_offload.json", "w"), indent=2)
text = open("recipes/accelerate_configs/zero3.yaml").read()
open(f"{work}/zero3_offload.yaml", "w").write(
    text.replace("recipes/accelerate_configs/ds_zero3.json", f"{work}/ds_zero3_offload.json"))
EOF

if [ "${PREPARE_ONLY:-0}" = 1 ]; then step "prepared in $W (PREPARE_ONLY=1: no training)"; exit 0; fi

train() {  # $1 = label, $2 = accelerate config; extra flags follow
    local label=$1 accel=$2; shift 2
    step "train: $label, $STEPS optimizer steps"
    set +e
    $PY -m accelerate.commands.launch --config_file "$accel" --num_processes 1 \
        benchmarks/bench_train.py --worker "$RESULTS/device_train_7b_$label.json" --random-weights \
        --config recipes/llava-1.5-7b/sft/config_full.yaml \
        --model_name_or_path "$W/llava-1.5-7b" --dataset_name "$W/dataset" --coco_root "$W/coco" \
        --output_dir "$W/out_$label" --max_steps "$STEPS" --logging_steps 1 --save_strategy no \
        --report_to none "$@" 2>&1 | grep -v -E "FutureWarning|return func|it/s\]$" | tail -25
    local code=${PIPESTATUS[0]}
    set -e
    [ -f "$RESULTS/device_train_7b_$label.json" ] && cat "$RESULTS/device_train_7b_$label.json"
    return "$code"
}

if train full recipes/accelerate_configs/zero3.yaml; then
    echo "full 7B fine-tuning state fits one GPU"
else
    echo "full state did not fit (or failed): measuring ZeRO-3 with the optimizer state on the CPU"
    train offload "$W/zero3_offload.yaml" || echo "offload run failed too: see the log above"
fi
step "done"
