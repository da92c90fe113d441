#!/usr/bin/env bash
# Set-up, build, and the whole test suite (all ctest labels: unit, mpi, slow).
# Pass ctest arguments through, e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
cd "${DIFFFIT_BUILD_DIR:-build}"
# OpenMP threads that spin between parallel regions take the cores from the other test
# running beside them (difffit itself sets this at start-up; test executables do not).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
ctest --output-on-failure -j"${DIFFFIT_JOBS:-2}" "$@"
