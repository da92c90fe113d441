#!/usr/bin/env bash
# Set-up, build, and the main job: the DiffFit study in miniature, end to end on the
# built-in mini benchmark (6 minutes on 2 idle cores once built):
#   1. the model and every fine-tuning method (parameter budgets, deltas, merging)
#   2. the mini benchmark's datasets
#   3. a sweep over MPI ranks (rank 0 coordinates, one worker per core): the shipped
#      source DiT (models/mini-source.safetensors, pre-trained on garments) fine-tuned on
#      unseen classes (sandals, shirts, sneakers, bags, ankle boots) with full fine-tuning,
#      BitFit and DiffFit, 1500 steps each, with learning curves, each sampled and scored
#   4. the results as a table, the reading (with what the mini study found about scale),
#      charts, learning curves and sample grids
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
B="./${DIFFFIT_BUILD_DIR:-build}/difffit"
mkdir -p demo-output

"$B" demo --output-dir demo-output
[ -f data/mini/benchmark.yaml ] || "$B" prepare --benchmark mini --output data/mini

# Open MPI refuses root without these; the sweep resumes where it stopped if rerun.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --oversubscribe -n 3 "$B" sweep run experiments/demo-sweep.yaml
"$B" sweep status experiments/demo-sweep.yaml

results=runs/demo/results.h5
echo
"$B" results table "$results" --grid demo --rows method --cols dataset \
    --extra class_accuracy,trainable_params,trainable_pct,steps_per_second
"$B" results findings "$results" --grid demo --line
# What the mini study found about scale (its committed results; see reference/mini-scale).
scale=reference/mini-scale/state/results.h5
line=$([ -f "$scale" ] && "$B" results findings "$scale" --line 2>/dev/null | grep '^Scale' || true)
[ -n "$line" ] && echo "$line" || echo "Scale: the mini study's scale sweep has no results at two model sizes yet (reference/mini-scale)."
"$B" results findings "$results" --grid demo -o demo-output/findings.md
"$B" results plot "$results" --grid demo --rows method --cols dataset --output demo-output/fid.svg
for value in fid class_accuracy; do
  log=""; [ $value = fid ] && log=--log-y   # from about 800 at the source model to about 20
  "$B" results plot --curve "$results" --grid demo --rows method --value $value $log \
      --title "Learning curves on new-classes: $value of 100 samples every 250 steps" \
      --output demo-output/curve-$value.svg
done
"$B" results plot --loss "$results" --grid demo --rows method --cols dataset --smooth 10 \
    --output demo-output/loss.svg
for dir in runs/demo.*/; do
  [ -f "$dir/samples.png" ] || continue
  method=$(sed -n 's/^ *"method": "\([a-z-]*\)".*/\1/p' "$dir/metrics.json")
  cp "$dir/samples.png" "demo-output/samples-$method.png"
done
echo "sample grids (one row per class): demo-output/samples-{full,bitfit,difffit}.png;" \
     "charts: demo-output/fid.svg, demo-output/curve-{fid,class_accuracy}.svg (learning curves)," \
     "demo-output/loss.svg; findings: demo-output/findings.md"
