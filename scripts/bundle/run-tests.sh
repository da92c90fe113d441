#!/usr/bin/env bash
# Runs the bundle's test suite as ctest would, with no CMake: every GoogleTest case in a
# process of its own (JOBS at a time, default the core count), and the MPI collectives on
# 2 and 3 ranks. CUDA tests run where a CUDA device is seen, else say "skipped: no CUDA
# device". Writes OUT.json: counts, seconds and the failed and skipped cases.
#   gpu-bundle/run-tests.sh OUT.json [GTEST_FILTER]
set -uo pipefail
source "$(dirname "$0")/env.sh"
OUT="$(realpath -m "${1:?usage: run-tests.sh OUT.json [GTEST_FILTER]}")"
FILTER="${2:-*}"
JOBS="${JOBS:-$(nproc)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/logs"
start=$(date +%s)
cases="$work/cases.txt"
for t in "$UNPACKED"/tests/test_*; do
  [ "$(basename "$t")" = test_mpi ] && continue
  "$t" --gtest_list_tests --gtest_filter="$FILTER" |
    awk -v exe="$t" '/^[^ ]/ {suite=$1} /^  / {print exe, suite $1}'
done > "$cases"
for ranks in 2 3; do echo "mpi $ranks" >> "$cases"; done
echo "[tests] $(wc -l < "$cases") cases, $JOBS at a time" >&2

# One case: its log, then a status line (pass, fail or skip).
run_case() {
  local exe="$1" name="$2" log
  if [ "$exe" = mpi ]; then
    log="$work/logs/mpi_collectives_${name}_ranks.log"
    (cd "$work" && timeout 300 mpiexec --oversubscribe -n "$name" "$UNPACKED/tests/test_mpi") > "$log" 2>&1
    name="mpi_collectives_${name}_ranks"
  else
    log="$work/logs/$name.log"
    (cd "$work" && timeout 900 "$exe" --gtest_filter="$name") > "$log" 2>&1
  fi
  local rc=$? status=pass
  [ $rc -ne 0 ] && status=fail
  [ $rc -eq 0 ] && grep -q "^\[  SKIPPED \]" "$log" && status=skip
  echo "$status $name"
}
export -f run_case
export work UNPACKED
xargs -P "$JOBS" -L 1 bash -c 'run_case "$@"' _ < "$cases" > "$work/status.txt"
seconds=$(( $(date +%s) - start ))

"$PYTHON" - "$work" "$OUT" "$seconds" <<'PY'
import json, os, sys
work, out, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [line.split(None, 1) for line in open(os.path.join(work, "status.txt")).read().splitlines()]
by = {"pass": [], "fail": [], "skip": []}
for status, name in rows:
    by[status].append(name)
def tail(name):
    with open(os.path.join(work, "logs", name + ".log"), errors="replace") as f:
        return f.read()[-3000:]
report = {"passed": len(by["pass"]), "failed": len(by["fail"]), "skipped": len(by["skip"]), "seconds": seconds,
          "failures": {n: tail(n) for n in sorted(by["fail"])}, "skipped_cases": sorted(by["skip"])}
with open(out, "w") as f:
    json.dump(report, f, indent=1)
print(f"[tests] {report['passed']} passed, {report['failed']} failed, {report['skipped']} skipped in {seconds} s",
      file=sys.stderr)
for n in sorted(by["fail"]):
    print(f"--- {n}\n{tail(n)[-1500:]}", file=sys.stderr)
sys.exit(1 if by["fail"] else 0)
PY
