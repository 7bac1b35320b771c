#!/usr/bin/env bash
# The whole pipeline on the embedded synthetic COCO, offline: no API key, no downloads.
#   COCO tree -> contexts -> picture -> offline teacher -> dataset folder -> load_dataset
#   -> a few ZeRO-3 training steps of a tiny LLaVA -> HPAUB build/answer/judge/report.
# Usage: bash scripts/demo.sh [OUT_DIR]   (make demo runs it with the project's .venv on PATH)
set -euo pipefail
OUT=${1:-demo_output}
KI=keypoint-instruct
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export HF_HOME="$OUT/hf_home"
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-$PWD/.cache/torch_extensions}
step() { printf '\n==> %s\n' "$*"; }

rm -rf "$OUT" && mkdir -p "$OUT"
COCO="$OUT/coco"

step "1. synthetic COCO tree (COCO's schema, drawn stick figures)"
python scripts/make_coco_fixture.py "$COCO" --split train2017 --images 60 --seed 0
python scripts/make_coco_fixture.py "$COCO" --split val2014 --images 60 --seed 1

step "2. symbolic contexts (captions, boxes, 17 keypoints per person)"
$KI contexts --coco-root "$COCO" --split train2017 --out "$OUT/contexts.jsonl"
head -c 1200 "$OUT/contexts.jsonl"; echo
IMAGE_ID=$(python -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['image_id'])" "$OUT/contexts.jsonl")
$KI show "$IMAGE_ID" --coco-root "$COCO" --split train2017 --out "$OUT/example.png"
echo "picture: $OUT/example.png"
