#!/usr/bin/env bash
# Set-up, build, and the main job: a short demonstration of what works, end to end on
# the built-in mini benchmark (~5 minutes on 2 cores):
#   1. the model and every fine-tuning method (parameter budgets, deltas, merging)
#   2. the mini benchmark's datasets
#   3. a short pre-training of the source DiT
#   4. DiffFit and full fine-tuning of it on unseen classes, side by side (one per core)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
B="./${DIFFFIT_BUILD_DIR:-build}/difffit"

"$B" demo --output-dir demo-output
[ -f data/mini/benchmark.yaml ] || "$B" prepare --benchmark mini --output data/mini
"$B" run experiments/demo-pretrain.yaml
"$B" run experiments/demo-finetune.yaml --set method.name=difffit > demo-output/difffit.log 2>&1 &
difffit_pid=$!
"$B" run experiments/demo-finetune.yaml --set method.name=full > demo-output/full.log 2>&1
wait "$difffit_pid"
for method in difffit full; do
  dir=$("$B" run experiments/demo-finetune.yaml --set method.name=$method --print-run-dir)
  echo "== $method: $dir"
  cat "$dir/metrics.json"
done
