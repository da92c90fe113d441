#!/usr/bin/env bash
# Writes the mini study's reference result from a finished sweep: tables as Markdown and CSV,
# charts, one sample grid per cell, the findings page.
#   mpirun -n 3 build/difffit sweep run experiments/mini-study.yaml
#   scripts/mini-study-reference.sh                        # -> reference/mini-study/
#   mpirun -n 3 build/difffit sweep run experiments/mini-transfer.yaml
#   scripts/mini-study-reference.sh runs/mini-transfer reference/mini-study/transfer
#   scripts/mini-study-reference.sh runs/mini-scale reference/mini-scale
# It writes the tables of the grids the sweep has (Table 1 and its ablations; the resolution
# transfer and its baselines; the scale question).
set -euo pipefail
cd "$(dirname "$0")/.."
B="${DIFFFIT:-build/difffit}"
SWEEP="${1:-runs/mini-study}"
OUT="${2:-reference/mini-study}"
R="$SWEEP/results.h5"
[ -f "$R" ] || { echo "mini-study-reference: no $R (run the sweep first)" >&2; exit 3; }
mkdir -p "$OUT/samples"
"$B" results export "$R" --csv "$OUT/runs.csv"
has_grid() { python3 -c 'import csv,sys; sys.exit(0 if any(r["grid"] == sys.argv[2] for r in csv.DictReader(open(sys.argv[1]))) else 1)' "$OUT/runs.csv" "$1"; }
folders_here() { python3 -c 'import csv,os,sys; sys.exit(0 if all(os.path.exists(os.path.join(r["run_dir"], "loss.csv")) for r in csv.DictReader(open(sys.argv[1])) if r["grid"] == sys.argv[2]) else 1)' "$OUT/runs.csv" "$1"; }

if has_grid table1; then
  for f in md csv; do
    "$B" results table "$R" --grid table1 --extra trainable_params,trainable_pct,class_accuracy,steps_per_second \
      --format $f -o "$OUT/table1.$f"
    "$B" results table "$R" --grid table1 --value class_accuracy --higher-is-better --decimals 3 \
      --format $f -o "$OUT/table1-class-accuracy.$f"
    # The ablations run on one task: their one column is the metric.
    "$B" results table "$R" --grid gamma-placement --rows blocks --cols metric --no-mean --extra class_accuracy \
      --format $f -o "$OUT/gamma-placement.$f"
    "$B" results table "$R" --grid lr-ratio --rows lr_ratio --cols metric --no-mean --extra class_accuracy \
      --format $f -o "$OUT/lr-ratio.$f"
  done
  "$B" results table "$R" --grid table1 --extra trainable_params --paper -o "$OUT/table1-and-paper.md"
  "$B" results plot "$R" --grid table1 -o "$OUT/table1.svg"
  "$B" results plot "$R" --grid table1 --value class_accuracy --higher-is-better -o "$OUT/table1-class-accuracy.svg"
  "$B" results plot "$R" --grid gamma-placement --rows blocks --cols metric -o "$OUT/gamma-placement.svg"
  "$B" results plot "$R" --grid lr-ratio --rows lr_ratio --cols metric -o "$OUT/lr-ratio.svg"
  # The ablations' learning curves come from the results store; their training-loss chart reads
  # each run folder's loss.csv, so it is drawn only where every folder is on this machine.
  "$B" results plot --curve "$R" --grid gamma-placement --rows blocks --log-y \
    --title "Learning curves by gamma placement (new-classes): FID of 100 samples" -o "$OUT/gamma-placement-curve.svg"
  "$B" results plot --curve "$R" --grid lr-ratio --rows lr_ratio --log-y \
    --title "Learning curves by learning-rate ratio (new-classes): FID of 100 samples" -o "$OUT/lr-ratio-curve.svg"
  if folders_here lr-ratio; then
    "$B" results plot --loss "$R" --grid lr-ratio --rows lr_ratio -o "$OUT/lr-ratio-loss.svg"
  else
    echo "mini-study-reference: lr-ratio-loss.svg not drawn (some lr-ratio runs' folders are on another machine)" >&2
  fi
fi
if has_grid transfer; then
  for f in md csv; do
    "$B" results table "$R" --grid transfer --rows method --cols pos_embed --extra class_accuracy,steps_per_second \
      --format $f -o "$OUT/transfer.$f"
    "$B" results table "$R" --grid transfer-baselines --rows start --cols metric --no-mean --extra class_accuracy \
      --format $f -o "$OUT/transfer-baselines.$f"
  done
  "$B" results plot "$R" --grid transfer --rows method --cols pos_embed -o "$OUT/transfer.svg"
fi
if has_grid scale; then
  # Per model size: methods x tasks, and the learning curves of each task.
  for size in $(python3 -c 'import csv,sys; print(" ".join(sorted({r["size"] for r in csv.DictReader(open(sys.argv[1])) if r["grid"] == "scale"})))' "$OUT/runs.csv"); do
    for f in md csv; do
      "$B" results table "$R" --grid scale --where size=$size --extra class_accuracy,trainable_params,steps_per_second \
        --format $f -o "$OUT/scale-$size.$f"
    done
    # the tasks with runs at this size (a sweep under way has none yet at some)
    for task in $(python3 -c 'import csv,sys; print(" ".join(sorted({r["dataset"] for r in csv.DictReader(open(sys.argv[1])) if r["grid"] == "scale" and r["size"] == sys.argv[2]})))' "$OUT/runs.csv" "$size"); do
      "$B" results plot --curve "$R" --grid scale --where size=$size --where dataset=$task --rows method --log-y \
        --title "Learning curves, $size model on $task: FID of 100 samples" -o "$OUT/scale-curve-$size-$task.svg"
    done
  done
fi
if has_grid table1; then
  # Learning curves of Table 1, one chart per task (a band over the seeds).
  for task in $(python3 -c 'import csv,sys; print(" ".join(sorted({r["dataset"] for r in csv.DictReader(open(sys.argv[1])) if r["grid"] == "table1"})))' "$OUT/runs.csv"); do
    "$B" results plot --curve "$R" --grid table1 --where dataset=$task --rows method --log-y \
      --title "Learning curves on $task: FID of 100 samples" -o "$OUT/curve-$task.svg" 2>/dev/null || true
  done
fi
"$B" results findings "$R" -o "$OUT/findings.md"   # with a scale grid also $OUT/scale-gap.svg

# One sample grid per cell: the seed-0 run of each grid's task x method (or ablation value).
# A run whose folder is gone (run on another machine) has its grid in $OUT/state/samples
# (scripts/study-state.sh keeps them at every stop).
python3 - "$OUT" <<'EOF'
import csv, os, shutil, sys
out = sys.argv[1]
seen = set()
for row in csv.DictReader(open(os.path.join(out, "runs.csv"))):
    if row.get("seed") != "0":
        continue
    label = "-".join(v for v in (row.get(axis) for axis in ("size", "dataset", "method", "blocks", "lr_ratio", "pos_embed", "start")) if v)
    name = f"{row['grid']}-{label}.png".replace(":", "-")
    src = os.path.join(row["run_dir"], "samples.png")
    if not os.path.exists(src):
        src = os.path.join(out, "state", "samples", row["name"] + ".png")
    if name not in seen and os.path.exists(src):
        shutil.copyfile(src, os.path.join(out, "samples", name))
        seen.add(name)
print(f"mini-study-reference: {len(seen)} sample grids in {out}/samples")
EOF
echo "mini-study-reference: wrote $OUT"
