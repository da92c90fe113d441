#!/usr/bin/env bash
# difffit against what a user would run instead, the official DiT architecture in PyTorch
# 2.x eager (bench/pytorch_baseline.py), on this machine in one run: training steps (full
# fine-tuning and DiffFit; fp32 and bf16) for the mini model and DiT-S/2, and sampling
# images/s. Both sides run in the Debian 13 chroot of scripts/torch2-check.sh (PyTorch 2.6 and
# difffit built against its LibTorch 2.6, the same OpenBLAS), one thread each, alternating.
# Writes one JSON object with every timing and the ratios (difffit / PyTorch: below 1 is
# faster; of the medians, and of the fastest steps, which a shared machine disturbs less) to
# OUT (default bench/vs-pytorch2.json). Training alternates the sides over 3 rounds (mini model)
# or 2 (DiT-S/2), so a machine that slows down for a while slows both. About 15 minutes on 2 cores.
#   bench/torch2_compare.sh [OUT.json]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--inside" ]; then
  OUT="${1:-bench/vs-pytorch2.json}"
  bash scripts/torch2-check.sh --run "bash bench/torch2_compare.sh --inside" > "$OUT.tmp"
  mv "$OUT.tmp" "$OUT"
  echo "[bench] wrote $OUT" >&2
  exit 0
fi

# Inside the chroot, in its copy of the source.
BIN=build-torch2/difffit
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
MINI=(--depth 4 --hidden 96 --heads 4 --patch 4 --input 32 --channels 1 --classes 5)
MINI_D=(--model custom --depth 4 --hidden-size 96 --num-heads 4 --patch-size 4 --input-size 32 --in-channels 1
        --num-classes 5)
S2=(--depth 12 --hidden 384 --heads 6 --patch 2 --input 32 --channels 4 --classes 101)
S2_D=(--model DiT-S/2 --num-classes 101)

train_pair() {  # NAME BATCH STEPS PRECISION ROUNDS -- difffit model flags -- baseline model flags
  local name=$1 batch=$2 steps=$3 precision=$4 rounds=$5
  shift 5
  local d=() p=()
  while [ "$1" != "--" ]; do d+=("$1"); shift; done
  shift
  p=("$@")
  # Rounds alternate the two sides, so a machine that slows down for a while slows both.
  for r in $(seq 1 "$rounds"); do
    echo "[bench] $name, round $r of $rounds: difffit train-step, then PyTorch eager" >&2
    for m in full difffit; do
      $BIN bench train-step "${d[@]}" --method "$m" --batch "$batch" --steps "$steps" --precision "$precision" \
        --threads 1 --json > "$tmp/$name-difffit-$m-$r.json"
    done
    python3 bench/pytorch_baseline.py train "${p[@]}" --batch "$batch" --steps "$steps" --precision "$precision" \
      > "$tmp/$name-pytorch-$r.json"
  done
}

train_pair mini-fp32 64 10 fp32 3 "${MINI_D[@]}" -- "${MINI[@]}"
train_pair mini-bf16 64 10 bf16 3 "${MINI_D[@]}" -- "${MINI[@]}"
train_pair s2-fp32 8 5 fp32 2 "${S2_D[@]}" -- "${S2[@]}"
train_pair s2-bf16 8 5 bf16 2 "${S2_D[@]}" -- "${S2[@]}"

echo "[bench] sampling, mini model, DDIM-25, batch 64" >&2
$BIN bench sample "${MINI_D[@]}" --num 64 --batch-size 64 --sampler ddim --steps 25 --threads 1 --json \
  > "$tmp/sample-difffit.json"
python3 bench/pytorch_baseline.py sample "${MINI[@]}" --num 64 --batch 64 --sampler ddim --sample-steps 25 \
  > "$tmp/sample-pytorch.json"
echo "[bench] sampling, mini model, DDPM-250 with CFG 4, batch 16" >&2
$BIN bench sample "${MINI_D[@]}" --num 16 --batch-size 16 --sampler ddpm --steps 250 --cfg-scale 4 --threads 1 \
  --json > "$tmp/sample-cfg-difffit.json"
python3 bench/pytorch_baseline.py sample "${MINI[@]}" --num 16 --batch 16 --sampler ddpm --sample-steps 250 \
  --cfg-scale 4 > "$tmp/sample-cfg-pytorch.json"

python3 - "$tmp" <<'EOF'
import json, os, subprocess, sys
from statistics import median
tmp = sys.argv[1]
load = lambda name: json.load(open(os.path.join(tmp, name + ".json")))
out = {"machine": subprocess.run(["sh", "-c", "nproc; grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                                 capture_output=True, text=True).stdout.split("\n")[1].strip(),
       "threads": 1, "train": {}, "sample": {}}
for name in ["mini-fp32", "mini-bf16", "s2-fp32", "s2-bf16"]:
    rounds = sorted(int(f.rsplit("-", 1)[1][:-5]) for f in os.listdir(tmp) if f.startswith(name + "-pytorch-"))
    torch_rounds = [{m["method"]: m for m in load(f"{name}-pytorch-{r}")["methods"]} for r in rounds]
    row = {"rounds": len(rounds), "pytorch_version": load(f"{name}-pytorch-1")["torch"]}
    for m in ["full", "difffit"]:
        ours = [load(f"{name}-difffit-{m}-{r}")["methods"][0] for r in rounds]
        theirs = [t[m] for t in torch_rounds]
        row["difffit_" + m] = ours
        row["pytorch_" + m] = theirs
        # Each round's ratio of medians, then their median; and the fastest steps of all rounds,
        # which a busy shared machine disturbs least.
        row[m + "_vs_pytorch_rounds"] = [o["median_ms"] / t["median_ms"] for o, t in zip(ours, theirs)]
        row[m + "_vs_pytorch"] = median(row[m + "_vs_pytorch_rounds"])
        row[m + "_vs_pytorch_min"] = min(o["min_ms"] for o in ours) / min(t["min_ms"] for t in theirs)
        row[m + "_median_ms"] = {"difffit": median([o["median_ms"] for o in ours]),
                                 "pytorch": median([t["median_ms"] for t in theirs])}
    row["difffit_vs_full"] = median([d["median_ms"] / f["median_ms"] for d, f in zip(row["difffit_difffit"], row["difffit_full"])])
    row["pytorch_difffit_vs_full"] = median([t["difffit"]["median_ms"] / t["full"]["median_ms"] for t in torch_rounds])
    row["blas"] = load(f"{name}-difffit-full-1").get("blas")
    out["train"][name] = row
for name in ["sample", "sample-cfg"]:
    ours, theirs = load(name + "-difffit"), load(name + "-pytorch")
    out["sample"][name] = {"difffit": ours, "pytorch": theirs,
                           "images_per_second_vs_pytorch": ours["images_per_second"] / theirs["images_per_second"]}
print(json.dumps(out, indent=2))
EOF
