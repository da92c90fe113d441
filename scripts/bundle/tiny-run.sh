#!/usr/bin/env bash
# A tiny `difffit run` end to end with the bundle: the shipped mini model fine-tuned with
# DiffFit on the bundle's new-classes images for 30 steps (a learning-curve point at 0, 15
# and 30), 64 samples (DDIM-25, CFG 1.5), FID and class accuracy from the mini-CNN.
#   gpu-bundle/tiny-run.sh OUT_DIR [cpu|cuda]      (default cuda where torch sees one)
set -euo pipefail
source "$(dirname "$0")/env.sh"
out="$(realpath -m "${1:?usage: tiny-run.sh OUT_DIR [cpu|cuda]}")"
device="${2:-$("$PYTHON" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')}"
data="$BUNDLE/data/new-classes-ref.h5"
cd "$SOURCE"
DIFFFIT_CACHE_DIR="$out/cache" difffit run experiments/demo-finetune.yaml --set output_dir="$out" \
  --set train.device="$device" --set data.train="$data" --set data.reference="$data" \
  --set train.steps=30 --set train.checkpoint_every=30 --set train.log_every=10 \
  --set eval.every=15 --set eval.curve_samples=32 --set sample.num=64 --set sample.batch_size=32
run="$(ls -d "$out"/demo-*)"
[ -f "$run/DONE" ] && [ -f "$run/metrics.json" ] || { echo "[tiny-run] no DONE or metrics.json in $run" >&2; exit 1; }
echo "[tiny-run] $device: $(tr -d '\n' < "$run/metrics.json" | head -c 400)"
