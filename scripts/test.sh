#!/usr/bin/env bash
# Set-up, build, and the whole test suite (all ctest labels: unit, mpi, slow).
# Pass ctest arguments through, e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
cd "${DIFFFIT_BUILD_DIR:-build}"
ctest --output-on-failure -j"${DIFFFIT_JOBS:-2}" "$@"
