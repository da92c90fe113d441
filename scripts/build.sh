#!/usr/bin/env bash
# Installs dependencies (once), configures and builds difffit into ./build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
BUILD_DIR="${DIFFFIT_BUILD_DIR:-build}"
# ccache hits across clones in other folders (paths are hashed relative to here).
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
mkdir -p "$BUILD_DIR"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${DIFFFIT_BUILD_TYPE:-Release}" > "$BUILD_DIR/configure.log" 2>&1 \
  || { cat "$BUILD_DIR/configure.log"; exit 1; }
cmake --build "$BUILD_DIR" -j"${DIFFFIT_JOBS:-2}"
