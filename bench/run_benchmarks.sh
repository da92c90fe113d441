#!/usr/bin/env bash
# Runs the standard benchmark set and writes one JSON file (default bench/results.json).
# Every ratio in PERFORMANCE.md comes from one run of this script on one machine.
#   bench/run_benchmarks.sh [OUT.json]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench/results.json}"
BIN=build/difffit
[ -x "$BIN" ] || bash scripts/build.sh
MINI="--model custom --depth 4 --hidden-size 96 --num-heads 4 --patch-size 4 --input-size 32 --in-channels 1 --num-classes 5"
PY=/usr/bin/python3
ROOT=$([ "$(id -u)" -eq 0 ] && echo --allow-run-as-root || true)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "[bench] train-step, mini model, fp32 and bf16, every method" >&2
$BIN bench train-step $MINI --batch 64 --steps 10 --precision fp32 --json > "$tmp/train_fp32.json"
$BIN bench train-step $MINI --batch 64 --steps 10 --precision bf16 --json > "$tmp/train_bf16.json"
echo "[bench] train-step, DiT-S/2 at 32x32x4 (256 px latents), batch 8" >&2
$BIN bench train-step --model DiT-S/2 --num-classes 101 --batch 8 --steps 5 --json > "$tmp/train_s2.json"
echo "[bench] PyTorch eager (this machine's 1.13), same mini model; 2.x: bench/torch2_compare.sh" >&2
EAGER_MINI="--depth 4 --hidden 96 --heads 4 --patch 4 --input 32 --channels 1 --classes 5 --attention manual"
$PY bench/pytorch_baseline.py train $EAGER_MINI --batch 64 --steps 10 --precision fp32 > "$tmp/eager_fp32.json"
$PY bench/pytorch_baseline.py train $EAGER_MINI --batch 64 --steps 10 --precision bf16 > "$tmp/eager_bf16.json"
echo "[bench] sampling" >&2
$BIN bench sample $MINI --num 128 --sampler ddim --steps 25 --json > "$tmp/sample.json"
echo "[bench] sampling DDPM-250 with CFG, batch 64 per rank, 1 and 2 ranks" >&2
$BIN bench sample $MINI --sampler ddpm --steps 250 --cfg-scale 4 --batch-size 64 --json > "$tmp/sample_ddpm_1rank.json"
env OMPI_MCA_btl=self,vader mpiexec $ROOT --oversubscribe -n 2 $BIN bench sample $MINI --sampler ddpm --steps 250 \
  --cfg-scale 4 --batch-size 64 --json > "$tmp/sample_ddpm_2ranks.json"
echo "[bench] fid" >&2
$BIN bench fid --json > "$tmp/fid.json"
echo "[bench] loader" >&2
$BIN bench loader > "$tmp/loader.json"
echo "[bench] sweep: coordinator overhead and scaling with worker ranks" >&2
$BIN bench sweep --workers 0,1,2 --runs 8 --steps 300 > "$tmp/sweep.json"

{
  echo "{"
  echo "\"machine\": \"$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)\","
  echo "\"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\","
  for k in train_fp32 train_bf16 train_s2 eager_fp32 eager_bf16 sample sample_ddpm_1rank sample_ddpm_2ranks fid; do
    echo "\"$k\": $(cat "$tmp/$k.json"),"
  done
  echo "\"loader\": $(cat "$tmp/loader.json"),"
  echo "\"sweep\": $(cat "$tmp/sweep.json")"
  echo "}"
} > "$OUT"
echo "[bench] wrote $OUT" >&2
