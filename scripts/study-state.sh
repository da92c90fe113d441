#!/usr/bin/env bash
# Saves what a sweep under way needs to go on on another machine, and what its reference keeps
# of the runs done so far: the journal, the results store (curves included), the findings page
# and the seed-0 sample grids (run folders stay on the machine that ran them).
#   touch runs/mini-study/DRAIN          # the job ends once the runs in flight finish
#   scripts/study-state.sh                                  # runs/mini-study -> reference/mini-study/state
#   scripts/study-state.sh runs/mini-scale reference/mini-scale/state
# Resume elsewhere: copy STATE/journal.jsonl and STATE/results.h5 into the sweep folder and run
# the sweep again; scripts/mini-study-reference.sh takes the grids of runs whose folder is gone
# from STATE/samples.
set -euo pipefail
cd "$(dirname "$0")/.."
B="${DIFFFIT:-build/difffit}"
SWEEP="${1:-runs/mini-study}"
STATE="${2:-reference/mini-study/state}"
for f in journal.jsonl results.h5; do
  [ -f "$SWEEP/$f" ] || { echo "study-state: no $SWEEP/$f" >&2; exit 3; }
done
if [ -e "$SWEEP/sweep.lock" ] && pgrep -f "sweep run" > /dev/null; then
  echo "study-state: a sweep job is running; touch $SWEEP/DRAIN and wait for it to end" >&2
  exit 4
fi
mkdir -p "$STATE/samples"
cp "$SWEEP/journal.jsonl" "$SWEEP/results.h5" "$STATE/"
"$B" results export "$SWEEP/results.h5" --csv "$STATE/results.csv"
"$B" results findings "$SWEEP/results.h5" -o "$STATE/findings.md"
python3 - "$STATE" <<'EOF'
import csv, os, shutil, sys
state = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(state, "results.csv"))))
kept = set()
for row in rows:  # a run shared by several grids has a row in each
    src = os.path.join(row["run_dir"], "samples.png")
    if row.get("seed") == "0" and row["name"] not in kept and os.path.exists(src):
        shutil.copyfile(src, os.path.join(state, "samples", row["name"] + ".png"))
        kept.add(row["name"])
done = len({row["run_id"] for row in rows})
print(f"study-state: {done} runs done; {len(kept)} seed-0 grids copied to {state}/samples")
EOF
