#!/usr/bin/env bash
# Set-up, build, and the main job: a short demonstration of what works, end to end on
# the built-in mini benchmark (~5 minutes on 2 cores):
#   1. the model and every fine-tuning method (parameter budgets, deltas, merging)
#   2. the mini benchmark's datasets
#   3. a sweep over MPI ranks (rank 0 coordinates, one worker per core): a short
#      pre-training of the source DiT, then full fine-tuning, BitFit and DiffFit of it on
#      unseen classes, each sampled and scored
#   4. the results as a table and charts (demo-output/*.svg)
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
"$B" results table "$results" --grid demo --rows method --cols dataset --extra trainable_params,trainable_pct
"$B" results table "$results" --grid demo --rows method --cols dataset --value steps_per_second \
    --higher-is-better --no-mean
"$B" results plot "$results" --grid demo --rows method --cols dataset --output demo-output/fid.svg
"$B" results plot --loss "$results" --grid demo --rows method --cols dataset --smooth 10 \
    --output demo-output/loss.svg
echo "charts: demo-output/fid.svg (FID per method), demo-output/loss.svg (training loss);" \
     "sample grids: <run folder>/samples.png"
