#!/usr/bin/env bash
# Set-up, build, and the main job: a short demonstration of what works.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
"./${DIFFFIT_BUILD_DIR:-build}/difffit" demo --output-dir demo-output "$@"
