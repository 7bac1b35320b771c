#!/usr/bin/env bash
# The whole pipeline on the embedded synthetic COCO, offline: no API key, no downloads.
#   COCO tree -> contexts -> picture -> offline teacher -> dataset folder -> load_dataset
#   -> review page -> a few ZeRO-3 training steps of a tiny LLaVA -> HPAUB build/answer/judge/report (+ report.html).
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
python scripts/make_coco_fixture.py "$COCO" --split train2014 --images 60 --seed 0
python scripts/make_coco_fixture.py "$COCO" --split val2014 --images 60 --seed 1

step "2. symbolic contexts (captions, boxes, 17 keypoints per person)"
$KI contexts --coco-root "$COCO" --split train2014 --out "$OUT/contexts.jsonl"
head -c 1200 "$OUT/contexts.jsonl"; echo
IMAGE_ID=$(python -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['image_id'])" "$OUT/contexts.jsonl")
$KI show "$IMAGE_ID" --coco-root "$COCO" --split train2014 --out "$OUT/example.png"
echo "picture: $OUT/example.png"
$KI contexts --coco-root "$COCO" --split train2014 --context paper+facts --limit 1 \
  | python -c "import json,sys; print(json.loads(sys.stdin.readline())['context'].split(chr(10)*2)[-1])"

step "3. teacher: price it, then answer with the offline teacher (no key); a rerun sends nothing"
$KI generate --task all --coco-root "$COCO" --split train2014 --cache "$OUT/teacher.sqlite" --dry-run
$KI generate --task all --coco-root "$COCO" --split train2014 --cache "$OUT/teacher.sqlite" --teacher offline --no-progress
$KI generate --task all --coco-root "$COCO" --split train2014 --cache "$OUT/teacher.sqlite" --teacher offline --no-progress
$KI cache stats --cache "$OUT/teacher.sqlite"

step "4. dataset folder in the Hub's layout (Parquet per config + card), read back with load_dataset"
$KI build --coco-root "$COCO" --split train2014 --cache "$OUT/teacher.sqlite" --out "$OUT/dataset" --version 0.1.0
python - "$OUT/dataset" <<'PY'
import sys
from datasets import get_dataset_config_names, load_dataset
folder = sys.argv[1]
print("configs:", get_dataset_config_names(folder))
ds = load_dataset(folder, "complex_reasoning", split="train")
print(ds)
for turn in ds[0]["messages"]:
    text = " ".join(part["text"] or "<image>" for part in turn["content"])
    print(f"  {turn['role']}: {text[:300]}")
PY
$KI push "$OUT/dataset" --repo-id your-org/keypoint_instruct --version 0.1.0 --dry-run

step "4b. review page: each answer with its picture, context and what the build did with it (open it from file://)"
$KI review --coco-root "$COCO" --split train2014 --cache "$OUT/teacher.sqlite" --out "$OUT/review"

step "5. fine-tune a tiny random LLaVA for a few steps: TRL SFTTrainer under DeepSpeed ZeRO-3 (CPU, gloo)"
python scripts/make_tiny_llava.py "$OUT/tiny-llava"
accelerate launch --config_file recipes/accelerate_configs/zero3_cpu.yaml --num_processes 1 \
  --num_cpu_threads_per_process 1 train_sft.py \
  --config recipes/tiny-llava/sft/config_cpu.yaml --model_name_or_path "$OUT/tiny-llava" \
  --dataset_name "$OUT/dataset" --coco_root "$COCO" --output_dir "$OUT/tiny-llava-kpi" --max_steps 60 \
  --logging_steps 10 --disable_tqdm true

step "6. HPAUB on val2014: build (offline teacher), answer (base vs fine-tuned), judge (offline, NOT GPT-4o), report"
$KI bench build --coco-root "$COCO" --split val2014 --cache "$OUT/teacher.sqlite" --out "$OUT/hpaub" \
  --images 30 --seed 0 --teacher offline --exclude-training "$OUT/dataset"   # never a training image
for model in tiny-llava tiny-llava-kpi; do
  $KI bench answer --bench "$OUT/hpaub" --model "$OUT/$model" --backend hf --name "$model" \
    --out "$OUT/answers_$model.jsonl" --max-new-tokens 32
  $KI bench judge --bench "$OUT/hpaub" --answers "$OUT/answers_$model.jsonl" --cache "$OUT/judge.sqlite" \
    --judge-model offline-overlap --out "$OUT/result_$model.json"
done
$KI bench report "$OUT/result_tiny-llava.json" "$OUT/result_tiny-llava-kpi.json" --baseline tiny-llava \
  --out "$OUT/hpaub_report"

step "done: everything is in $OUT"
echo "review page:  $OUT/review/index.html"
echo "HPAUB report: $OUT/hpaub_report/report.html"
