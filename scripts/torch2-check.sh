#!/usr/bin/env bash
# Builds difffit against LibTorch 2.x and runs its tests there: a Debian 13 ("trixie")
# chroot with Debian's LibTorch 2.6 (CPU), PyTorch 2.6 and the same dependencies,
# created once and cached (about 2 GB, ~7 min the first time). Needs root (or sudo).
#   scripts/torch2-check.sh            # build in the chroot and run ctest (all labels but slurm)
#   scripts/torch2-check.sh -L unit    # ctest arguments pass through
#   scripts/torch2-check.sh --setup    # only create (or update) the chroot
#   scripts/torch2-check.sh --run CMD  # build there, then run CMD in the source copy (no tests)
# DIFFFIT_TORCH2_ROOT chooses where the chroot lives (default /var/cache/difffit/trixie).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${DIFFFIT_TORCH2_ROOT:-/var/cache/difffit/trixie}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  libtorch-dev python3-torch python3-numpy python3-scipy python3-h5py python3-safetensors python3-pil
  python3-torchvision build-essential cmake ccache git pkg-config rsync libopenmpi-dev openmpi-bin libhdf5-dev
  hdf5-tools libboost-program-options-dev libspdlog-dev libfmt-dev libgtest-dev googletest libyaml-cpp-dev
  nlohmann-json3-dev libpng-dev libjpeg-dev zlib1g-dev libfreetype-dev fonts-dejavu-core libopenblas0-pthread
  libcmark-gfm-dev libcmark-gfm-extensions-dev libmatio-dev libssl-dev
  dataset-fashion-mnist
)

source scripts/chroot-mounts.sh

# 1. The chroot, once: a marker file records the package set it was made with.
want="$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-16)"
if [ "$(cat "$ROOT/.difffit-packages" 2>/dev/null)" != "$want" ]; then
  command -v debootstrap >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends debootstrap
  if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
    echo "[torch2] creating the Debian 13 chroot in $ROOT (once)"
    $SUDO mkdir -p "$ROOT"
    $SUDO debootstrap --variant=minbase --include=ca-certificates trixie "$ROOT"   # debootstrap's default mirror
  fi
  mount_all
  $SUDO chroot "$ROOT" apt-get update -qq
  $SUDO chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
  echo "$want" | $SUDO tee "$ROOT/.difffit-packages" >/dev/null
fi
[ "${1:-}" = "--setup" ] && { echo "[torch2] chroot ready in $ROOT"; exit 0; }
mount_all

# 2. The working tree (tracked and untracked, not ignored files) into the chroot, then
#    the build (ccache inside the chroot persists between runs) and the tests.
$SUDO mkdir -p "$ROOT/src/difffit"
# --checksum without -t: a changed file is rewritten with a fresh mtime, so make rebuilds it
# (copied mtimes can be older than objects built from an earlier copy).
git ls-files --cached --others --exclude-standard -z |
  $SUDO rsync -rlp --checksum --delete-missing-args --from0 --files-from=- ./ "$ROOT/src/difffit/"
run=""
if [ "${1:-}" = "--run" ]; then run="$2"; shift 2; fi
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(-LE slurm)
$SUDO chroot "$ROOT" env DIFFFIT_RUN="$run" bash -c '
  set -euo pipefail
  cd /src/difffit
  export CCACHE_DIR=/var/cache/ccache CCACHE_BASEDIR=/src/difffit CCACHE_NOHASHDIR=true
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  cmake -S . -B build-torch2 -DCMAKE_BUILD_TYPE=Release > configure-torch2.log 2>&1 || { cat configure-torch2.log; exit 1; }
  mv configure-torch2.log build-torch2/configure.log
  grep -m1 "difffit: Torch" build-torch2/configure.log >&2 || true
  if [ -n "$DIFFFIT_RUN" ]; then
    cmake --build build-torch2 -j"${DIFFFIT_JOBS:-2}" --target difffit > build-torch2/build.log 2>&1 ||
      { tail -40 build-torch2/build.log; exit 1; }
    exec bash -c "$DIFFFIT_RUN"
  fi
  cmake --build build-torch2 -j"${DIFFFIT_JOBS:-2}"
  cd build-torch2
  ctest --output-on-failure -j"${DIFFFIT_JOBS:-2}" "$@"
' torch2-check "${tests[@]}"
[ -n "$run" ] || echo "[torch2] LibTorch 2.x build and tests passed"
