#!/usr/bin/env bash
# Submit a difffit sweep to SLURM with slurm/sweep.sbatch, after checking the sweep file and
# the binary, so that a typo fails here and not after the job has waited in the queue.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/.." && pwd)

usage() {
  cat <<'EOF'
usage: slurm/submit.sh SWEEP.yaml [options] [--set key=value ...] [-- extra sbatch options]

  --ranks N            MPI ranks = SLURM tasks (default 1: every run in one process; N>1:
                       rank 0 coordinates and ranks 1..N-1 train, one rank per core)
  --time T             time limit (sbatch --time: MM, HH:MM:SS, D-HH:MM...); default: the
                       partition's
  --partition P        partition (default: the cluster's default)
  --signal-lead S      seconds before the time limit at which the ranks are told to save and
                       the job requeues itself (default 120; SLURM may signal up to 60 s early)
  --output PATTERN     job log (default slurm-%j.out in the current directory; appended on
                       every restart)
  --job-name NAME      default difffit-<sweep file name>
  --launcher L         srun (default) or mpirun (single node)
  --set key=value      override a sweep setting (passed to difffit sweep plan/run/status)
  --retry-failed       rerun runs that failed after their retries
  --run-arg ARG        pass ARG on to `difffit sweep run` as is
  --dry-run            check and print the sbatch command, submit nothing
  -h, --help           this text

Paths in the sweep file are relative to the current directory (the job runs there).
environment: DIFFFIT_BIN (default <repo>/build/difffit), DIFFFIT_MAX_REQUEUES (default 20).
exit: 0 submitted (or dry run), 2 bad usage or sweep config, 3 missing file or binary,
      other: sbatch's error
EOF
}

die() { local code=$1; shift; echo "submit.sh: $*" >&2; exit "$code"; }

# "D-HH:MM:SS", "HH:MM:SS", "MM:SS", "MM", "D-HH", "D-HH:MM" -> seconds (sbatch's formats)
time_to_seconds() {
  local t=$1 d=0 h=0 m=0 s=0 rest
  [[ $t =~ ^[0-9]+(-[0-9]+)?(:[0-9]+){0,2}$ ]] || return 1
  if [[ $t == *-* ]]; then
    d=${t%%-*}; rest=${t#*-}
    IFS=: read -r h m s <<< "$rest"
  else
    local a b c
    IFS=: read -r a b c <<< "$t"
    if [ -n "$c" ]; then h=$a; m=$b; s=$c
    elif [ -n "$b" ]; then m=$a; s=$b
    else m=$a; fi
  fi
  echo $(( 10#${d:-0} * 86400 + 10#${h:-0} * 3600 + 10#${m:-0} * 60 + 10#${s:-0} ))
}

SWEEP=
RANKS=1
TIME=
PARTITION=
LEAD=120
OUTPUT=
JOB_NAME=
LAUNCHER=${DIFFFIT_LAUNCHER:-srun}
DRY_RUN=0
SETS=()          # --set k=v pairs: plan, run and status all take them
RUN_EXTRA=()     # options only `sweep run` takes
SBATCH_EXTRA=()

need() { if [ $# -lt 2 ] || [ -z "$2" ]; then die 2 "$1 needs a value (see --help)"; fi; }
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --ranks) need "$@"; RANKS=$2; shift 2 ;;
    --ranks=*) RANKS=${1#*=}; shift ;;
    --time) need "$@"; TIME=$2; shift 2 ;;
    --time=*) TIME=${1#*=}; shift ;;
    --partition) need "$@"; PARTITION=$2; shift 2 ;;
    --partition=*) PARTITION=${1#*=}; shift ;;
    --signal-lead) need "$@"; LEAD=$2; shift 2 ;;
    --signal-lead=*) LEAD=${1#*=}; shift ;;
    --output) need "$@"; OUTPUT=$2; shift 2 ;;
    --output=*) OUTPUT=${1#*=}; shift ;;
    --job-name) need "$@"; JOB_NAME=$2; shift 2 ;;
    --job-name=*) JOB_NAME=${1#*=}; shift ;;
    --launcher) need "$@"; LAUNCHER=$2; shift 2 ;;
    --launcher=*) LAUNCHER=${1#*=}; shift ;;
    --set) need "$@"; SETS+=(--set "$2"); shift 2 ;;
    --set=*) SETS+=(--set "${1#*=}"); shift ;;
    --retry-failed) RUN_EXTRA+=(--retry-failed); shift ;;
    --run-arg) need "$@"; RUN_EXTRA+=("$2"); shift 2 ;;
    --run-arg=*) RUN_EXTRA+=("${1#*=}"); shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    --) shift; SBATCH_EXTRA=("$@"); break ;;
    -*) die 2 "unknown option $1 (sbatch options go after --; see --help)" ;;
    *)
      [ -z "$SWEEP" ] || die 2 "more than one sweep file: $SWEEP and $1"
      SWEEP=$1; shift ;;
  esac
done

[ -n "$SWEEP" ] || { usage >&2; exit 2; }
[[ $RANKS =~ ^[1-9][0-9]*$ ]] || die 2 "--ranks must be a positive integer, not '$RANKS'"
[[ $LEAD =~ ^[0-9]+$ ]] || die 2 "--signal-lead must be seconds, not '$LEAD'"
case "$LAUNCHER" in srun|mpirun) ;; *) die 2 "--launcher must be srun or mpirun, not '$LAUNCHER'" ;; esac
if [ -n "$TIME" ]; then
  LIMIT_S=$(time_to_seconds "$TIME") || die 2 "--time '$TIME' is not a SLURM time (MM, HH:MM:SS, D-HH:MM...)"
  # the signal may come up to 60 s before the lead; the job needs some time before that too
  if [ $((LEAD + 60)) -ge "$LIMIT_S" ]; then
    die 2 "--signal-lead $LEAD s + up to 60 s early leaves no time in a $TIME ($LIMIT_S s) job; use a longer --time or a shorter lead"
  fi
fi

[ -f "$SWEEP" ] || die 3 "sweep file not found: $SWEEP"
SWEEP_ABS=$(cd "$(dirname "$SWEEP")" && pwd)/$(basename "$SWEEP")
BIN=${DIFFFIT_BIN:-$REPO/build/difffit}
case "$BIN" in /*) ;; *) BIN=$PWD/$BIN ;; esac
[ -x "$BIN" ] || die 3 "difffit binary not found: $BIN (build it with scripts/build.sh, or set DIFFFIT_BIN)"
"$BIN" sweep --help >/dev/null 2>&1 || die 3 "$BIN has no 'sweep' command (rebuild with scripts/build.sh)"

# Check the sweep as the job will see it; a config error should stop us here.
if "$BIN" sweep --help 2>&1 | grep -qw plan; then
  set +e
  PLAN=$("$BIN" sweep plan "$SWEEP_ABS" "${SETS[@]}" 2>&1)
  PLAN_RC=$?
  set -e
  if [ $PLAN_RC -ne 0 ]; then
    echo "$PLAN" >&2
    die 2 "difffit sweep plan failed (exit $PLAN_RC): fix the sweep file before submitting"
  fi
  echo "$PLAN" | head -n 40
  [ "$(echo "$PLAN" | wc -l)" -le 40 ] || echo "  ... ($(echo "$PLAN" | wc -l) lines)"
  NRUNS=$(echo "$PLAN" | grep -oiE '[0-9]+ runs?\b' | head -n1 | grep -oE '[0-9]+' || true)
  [ -n "$NRUNS" ] && echo "sweep: $NRUNS runs"
  if [ -n "$NRUNS" ] && [ "$RANKS" -gt 1 ] && [ "$RANKS" -gt $((NRUNS + 1)) ]; then
    echo "note: $RANKS ranks for $NRUNS runs: $((RANKS - 1 - NRUNS)) workers will have nothing to do"
  fi
else
  echo "note: $BIN has no 'sweep plan'; the sweep file is checked when the job starts"
fi

NAME=$(basename "$SWEEP"); NAME=${NAME%.yaml}; NAME=${NAME%.yml}
JOB_NAME=${JOB_NAME:-difffit-$NAME}
OUTPUT=${OUTPUT:-slurm-%j.out}

CMD=(sbatch --parsable --job-name="$JOB_NAME" --ntasks="$RANKS" --signal="B:USR2@$LEAD" --output="$OUTPUT")
[ -n "$TIME" ] && CMD+=(--time="$TIME")
[ -n "$PARTITION" ] && CMD+=(--partition="$PARTITION")
CMD+=("${SBATCH_EXTRA[@]}" "$SCRIPT_DIR/sweep.sbatch" "$SWEEP_ABS" "${SETS[@]}" "${RUN_EXTRA[@]}")

# sbatch passes the environment on to the job (--export=ALL): the binary and launcher go there
export DIFFFIT_BIN=$BIN DIFFFIT_LAUNCHER=$LAUNCHER
if [ $DRY_RUN = 1 ]; then
  echo "dry run; would submit:"
  printf 'DIFFFIT_BIN=%q DIFFFIT_LAUNCHER=%q' "$BIN" "$LAUNCHER"
  printf ' %q' "${CMD[@]}"
  echo
  exit 0
fi

OUT=$("${CMD[@]}") || die $? "sbatch failed"
JOB=${OUT%%;*}
LOG=${OUTPUT//%j/$JOB}
LOG=${LOG//%x/$JOB_NAME}
case "$LOG" in /*) ;; *) LOG=$PWD/$LOG ;; esac
STATUS_CMD=$(printf '%q ' "$BIN" sweep status "$SWEEP_ABS" "${SETS[@]}")
cat <<EOF
submitted job $JOB ($JOB_NAME; ranks: $RANKS${TIME:+; time: $TIME}; signal lead: ${LEAD} s)
  follow:  tail -f $LOG
  queue:   squeue -j $JOB      (after it ends: scontrol show job $JOB)
  runs:    ${STATUS_CMD% }
  stop:    scancel $JOB        (resume later by submitting the same command)
EOF
