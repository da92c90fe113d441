#!/usr/bin/env bash
# End-to-end check of the SLURM path: submit a tiny sweep, stop it with USR2 while a run is
# going, check that the job saved, requeued itself and finished every run exactly once.
# Uses the cluster that sinfo reaches, or starts the local one (slurm/local-cluster.sh) and
# stops it again afterwards. All output goes to a scratch folder under /tmp.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

usage() {
  cat <<'EOF'
usage: slurm/selftest.sh [--keep]

  --keep    keep the scratch folder (job log, sweep state) even when every check passes

environment:
  SWEEP=experiments/tiny-sweep.yaml   the sweep to run (relative to the repository root)
  RANKS=2                             MPI ranks (SLURM tasks); the local cluster has nproc CPUs
  SELFTEST_SET="k=v k=v"              extra --set overrides; the default makes the tiny runs
                                      long enough (a few seconds) to be stopped in the middle:
                                      "train.steps=300 train.checkpoint_every=50 train.log_every=50"
                                      (SELFTEST_SET= for none)
  SELFTEST_SIGNAL_DELAY=1             seconds between the first "started" event and USR2, so
                                      that the run is stopped part-way
  SELFTEST_LAUNCHER=srun              srun or mpirun
  SELFTEST_TIMEOUT=600                seconds allowed for the whole job (both starts)
  DIFFFIT_BIN=<repo>/build/difffit

Prints PASS/FAIL lines; exits 0 when every check passed, 1 otherwise.
EOF
}

KEEP=0
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --keep) KEEP=1 ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

cd "$REPO"   # the sweep's relative paths (experiments/, data/) are from the repository root
SWEEP=${SWEEP:-experiments/tiny-sweep.yaml}
RANKS=${RANKS:-2}   # at most the CPUs of the node, or the job waits for resources forever
SIGNAL_DELAY=${SELFTEST_SIGNAL_DELAY:-1}
LAUNCHER=${SELFTEST_LAUNCHER:-srun}
TIMEOUT=${SELFTEST_TIMEOUT:-600}
BIN=${DIFFFIT_BIN:-$REPO/build/difffit}
export DIFFFIT_BIN=$BIN

T0=$(date +%s)
FAILS=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
fatal() { fail "$*"; exit 1; }   # the cleanup trap still runs
elapsed() { echo $(( $(date +%s) - T0 )); }

WORK=$(mktemp -d /tmp/difffit-slurm-selftest.XXXXXX)
OUT_DIR=$WORK/out
JOB=
STARTED_CLUSTER=0

cleanup() {
  local rc=$?
  set +e
  if [ -n "$JOB" ] && [ -n "$(squeue -h -j "$JOB" -o %i 2>/dev/null)" ]; then
    echo "cancelling job $JOB"
    scancel "$JOB"
    for _ in $(seq 30); do [ -z "$(squeue -h -j "$JOB" -o %i 2>/dev/null)" ] && break; sleep 1; done
  fi
  if [ $STARTED_CLUSTER = 1 ]; then "$SCRIPT_DIR/local-cluster.sh" stop >/dev/null; echo "local cluster stopped"; fi
  if [ $FAILS = 0 ] && [ $rc = 0 ] && [ $KEEP = 0 ]; then
    rm -rf "$WORK"
  else
    echo "scratch folder kept: $WORK"
  fi
  echo "selftest took $(elapsed) s"
  [ $FAILS = 0 ] && [ $rc = 0 ] && echo "ALL PASSED" || echo "FAILED ($FAILS check(s))"
  exit $(( FAILS > 0 || rc != 0 ))
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SETS=(--set "output_dir=$OUT_DIR")
# the tiny sweep's runs take a fraction of a second: too short to be caught by a signal
for kv in ${SELFTEST_SET-train.steps=300 train.checkpoint_every=50 train.log_every=50}; do SETS+=(--set "$kv"); done

# --- 1. cluster ------------------------------------------------------------------------------
# (sinfo retries for about 10 s when no controller answers, so ask the local daemons first)
if "$SCRIPT_DIR/local-cluster.sh" status >/dev/null 2>&1; then
  pass "local cluster already up; leaving it running afterwards"
elif [ -f /etc/slurm/slurm.conf ] && ! grep -q 'local-cluster.sh' /etc/slurm/slurm.conf \
     && sinfo -h >/dev/null 2>&1; then
  pass "cluster reachable ($(sinfo -h -o '%P %T %D' | head -n1)); leaving it running afterwards"
else
  "$SCRIPT_DIR/local-cluster.sh" start >/dev/null || fatal "could not start the local cluster"
  STARTED_CLUSTER=1
  pass "local cluster started"
fi

# --- 2. binary, data, plan -------------------------------------------------------------------
"$BIN" sweep --help >/dev/null 2>&1 || fatal "$BIN has no 'sweep' command (build with scripts/build.sh)"
[ -f "$SWEEP" ] || fatal "sweep file not found: $SWEEP"
if [ ! -f data/mini/benchmark.yaml ]; then
  echo "preparing the mini benchmark into data/mini"
  "$BIN" prepare --benchmark mini --output data/mini >"$WORK/prepare.log" 2>&1 \
    || fatal "difffit prepare --benchmark mini failed (see $WORK/prepare.log)"
fi
PLAN=$("$BIN" sweep plan "$SWEEP" "${SETS[@]}" 2>&1) || { echo "$PLAN"; fatal "difffit sweep plan $SWEEP failed"; }
# "sweep NAME: N runs in G grid(s); state in DIR", then "   I  RUN_ID  name  labels" per run
STATE_DIR=$(echo "$PLAN" | sed -n 's/^sweep .*; state in \(.*\)$/\1/p' | head -n1)
mapfile -t RUN_IDS < <(echo "$PLAN" | awk '$1 ~ /^[0-9]+$/ && NF >= 2 {print $2}')
if [ -z "$STATE_DIR" ] || [ ${#RUN_IDS[@]} -eq 0 ]; then
  echo "$PLAN"; fatal "could not read the state folder and run ids from sweep plan"
fi
JOURNAL=$STATE_DIR/journal.jsonl
pass "plan: ${#RUN_IDS[@]} runs, state in $STATE_DIR"

# --- 3. submit -------------------------------------------------------------------------------
SUBMIT_OUT=$("$SCRIPT_DIR/submit.sh" "$SWEEP" --ranks "$RANKS" --launcher "$LAUNCHER" \
  --output "$WORK/slurm-%j.out" --job-name difffit-selftest "${SETS[@]}" 2>&1) \
  || { echo "$SUBMIT_OUT"; fatal "submit.sh failed"; }
JOB=$(echo "$SUBMIT_OUT" | sed -n 's/^submitted job \([0-9]*\).*/\1/p')
[ -n "$JOB" ] || { echo "$SUBMIT_OUT"; fatal "no job id in submit.sh output"; }
LOG=$WORK/slurm-$JOB.out
pass "submitted job $JOB with $RANKS ranks via $LAUNCHER (log $LOG)"

job_field() { scontrol show job "$JOB" 2>/dev/null | grep -oE "\b$1=[^ ]*" | head -n1 | cut -d= -f2; }
deadline=$(( $(date +%s) + TIMEOUT ))
expired() { [ "$(date +%s)" -ge "$deadline" ]; }
show_log() { echo "---- $LOG (last 30 lines)"; tail -n 30 "$LOG" 2>/dev/null; echo "----"; }

# --- 4. stop it with USR2 once a run has started ------------------------------------------------
until grep -q '"event":"started"' "$JOURNAL" 2>/dev/null; do
  if expired || [ -z "$(squeue -h -j "$JOB" -o %i 2>/dev/null)" ]; then
    show_log; fatal "no run started (job state $(job_field JobState))"
  fi
  sleep 0.2
done
sleep "$SIGNAL_DELAY"
SIG_AT=$(date +%s.%N)
scancel --signal=USR2 --batch "$JOB" || fatal "scancel --signal=USR2 --batch $JOB failed"
pass "a run started after $(elapsed) s; sent USR2 to the batch shell"

# --- 5. it must save, requeue and start again ----------------------------------------------------
# the second start banner: "start: job J (...) restart 1 (max M) on NODE"
until grep -qE 'start: job [0-9]+ .* restart 1 ' "$LOG" 2>/dev/null; do
  if expired; then show_log; fatal "job did not restart (state $(job_field JobState))"; fi
  case "$(job_field JobState)" in
    COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL)
      if ! grep -qE 'start: job [0-9]+ .* restart 1 ' "$LOG"; then show_log; fatal "job ended ($(job_field JobState)) without a restart"; fi ;;
  esac
  sleep 0.2
done
RESTART_AT=$(date +%s.%N)
if grep -q 'got SIGUSR2' "$LOG"; then pass "batch shell passed USR2 on to the ranks"; else fail "no 'got SIGUSR2' in the log"; fi
if grep -q 'step exited with 140' "$LOG"; then
  pass "ranks saved and exited with 140"
elif grep -q 'step exited with 0' "$LOG"; then
  fail "the sweep finished before USR2 reached it (make runs longer: SELFTEST_SET=train.steps=...)"
else
  fail "step did not exit with 140 after USR2: $(grep 'step exited' "$LOG" | head -n1)"
fi
STOPPED_RUN=$(grep '"event":"stopped"' "$JOURNAL" | grep -o '"run":"[^"]*"' | head -n1 | cut -d'"' -f4 || true)
if [ -n "$STOPPED_RUN" ]; then
  pass "journal records run $STOPPED_RUN as stopped ($(grep -c '"event":"stopped"' "$JOURNAL") stopped event(s))"
else
  echo "note: no 'stopped' run event in the journal (USR2 came between runs)"
fi
pass "requeued and restarted $(awk -v a="$SIG_AT" -v b="$RESTART_AT" 'BEGIN {printf "%.1f", b - a}') s after USR2 (Restarts=$(job_field Restarts))"

# --- 6. it must finish -----------------------------------------------------------------------
while :; do
  STATE=$(job_field JobState)
  case "$STATE" in COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|PREEMPTED|BOOT_FAIL|DEADLINE) break ;; esac
  if expired; then show_log; fatal "job not finished after ${TIMEOUT} s (state $STATE)"; fi
  sleep 0.5
done
if [ "$STATE" = COMPLETED ] && [ "$(job_field ExitCode)" = 0:0 ]; then
  pass "job COMPLETED with exit 0 after $(elapsed) s (Restarts=$(job_field Restarts))"
else
  show_log; fail "job ended $STATE, ExitCode=$(job_field ExitCode)"
fi
if [ "$(job_field Restarts)" = 1 ]; then pass "exactly one restart"; else fail "Restarts=$(job_field Restarts), expected 1"; fi
BANNERS=$(grep -c 'sweep.sbatch.*start: job' "$LOG" || true)
if [ "$BANNERS" = 2 ]; then pass "log appended across the restart (2 start banners)"
else fail "expected 2 start banners in the log, found $BANNERS"; fi

# --- 7. every run done, each exactly once ------------------------------------------------------
STATUS=$("$BIN" sweep status "$SWEEP" "${SETS[@]}" 2>&1) || { echo "$STATUS"; fail "difffit sweep status failed"; }
N=${#RUN_IDS[@]}
if echo "$STATUS" | grep -q "^$N/$N done"; then
  pass "sweep status: $N/$N done"
else
  echo "$STATUS"; fail "sweep status does not show $N/$N done"
fi
bad=0
for id in "${RUN_IDS[@]}"; do
  n=$(grep '"event":"done"' "$JOURNAL" | grep -c "\"run\":\"$id\"" || true)
  if [ "$n" != 1 ]; then fail "run $id has $n 'done' events in the journal (expected 1)"; bad=1; fi
  # status row: "#  state  attempts  name  run id ..."
  row_state=$(echo "$STATUS" | awk -v id="$id" '$0 ~ id {print $2; exit}')
  if [ "$row_state" != "done" ]; then fail "sweep status shows run $id as '${row_state:-missing}'"; bad=1; fi
done
[ $bad = 0 ] && pass "every run id appears in exactly one done event and shows done"
if [ -n "$STOPPED_RUN" ]; then
  # the trainer logs "resumed run ID at step N" into the rank logs when it continues a checkpoint
  RESUMED=$(cat "$STATE_DIR"/logs/*.log 2>/dev/null | grep -o "resumed run $STOPPED_RUN at step [0-9]*" | head -n1 || true)
  if [ -n "$RESUMED" ]; then pass "the stopped run continued from its checkpoint: $RESUMED"
  else fail "no 'resumed run $STOPPED_RUN' in $STATE_DIR/logs/"; fi
fi
for f in results.csv results.h5; do
  if [ -s "$STATE_DIR/$f" ]; then pass "$f written"; else fail "$STATE_DIR/$f missing"; fi
done
