#!/usr/bin/env bash
# The CUDA build, on a machine without a GPU: difffit against PyTorch's LibTorch 2.11 with
# CUDA 13 (scripts/setup-torch-cuda.sh) and NCCL from the CUDA toolkit in /usr/local/cuda,
# into ./build-cuda (DIFFFIT_CUDA_BUILD_DIR). Every CUDA code path compiles and links; the
# binaries start without a GPU or driver (libcuda is loaded by the CUDA runtime on first
# use, never linked), and their CUDA tests say "skipped: no CUDA device".
#   scripts/build-cuda.sh            # set-up (once), configure, build
#   scripts/build-cuda.sh --test     # ... then the whole test suite with these binaries
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh >&2
torch_dir="$(bash scripts/setup-torch-cuda.sh)"
CUDA_ROOT="${CUDA_ROOT:-/usr/local/cuda}"
BUILD_DIR="${DIFFFIT_CUDA_BUILD_DIR:-build-cuda}"
[ -x "$CUDA_ROOT/bin/nvcc" ] || { echo "[build-cuda] no CUDA toolkit in $CUDA_ROOT (set CUDA_ROOT)" >&2; exit 1; }
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=true
mkdir -p "$BUILD_DIR"
# CMAKE_LIBRARY_PATH: torch's own libraries before any system LibTorch (Debian's libtorch-dev
# is in the default search path, which find_library searches before torch's hints).
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$torch_dir/share/cmake" -DCMAKE_LIBRARY_PATH="$torch_dir/lib" \
  -DCUDAToolkit_ROOT="$CUDA_ROOT" -DCMAKE_CUDA_COMPILER="$CUDA_ROOT/bin/nvcc" -DTORCH_CUDA_ARCH_LIST=9.0 \
  -DDIFFFIT_REQUIRE_CUDA=ON > "$BUILD_DIR/configure.log" 2>&1 || { cat "$BUILD_DIR/configure.log"; exit 1; }
grep -m1 "difffit: Torch" "$BUILD_DIR/configure.log"
cmake --build "$BUILD_DIR" -j"${DIFFFIT_JOBS:-2}"
if [ "${1:-}" = "--test" ]; then
  shift
  cd "$BUILD_DIR"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  # PyTorch's own OpenMP threads spin between parallel regions by default: with two tests at
  # a time on two cores a test took minutes instead of seconds (difffit itself sets this at
  # start-up; the test executables do not restart themselves).
  export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
  ctest --output-on-failure -j"${DIFFFIT_JOBS:-2}" -LE slurm "$@"
  echo "[build-cuda] LibTorch $(sed -n "s/^__version__ = '\(.*\)'$/\1/p" "$torch_dir/version.py") (CUDA) build and tests passed"
fi
