#!/usr/bin/env bash
# Proves the GPU bundle (scripts/gpu-bundle.sh) self-contained, on a stand-in for the lent
# GPU machine: a bare Debian 13 root (debootstrap minbase) holding nothing but Python and,
# in /opt/torch/.venv, pip's torch 2.11.0 (its CUDA 13 build, with the nvidia-* libraries
# it pulls in) and the Python packages the GPU machine's image has that the test scripts
# import (numpy, h5py, scipy, Pillow 11.1, torchvision). No HDF5, OpenMPI, Boost, spdlog, fmt,
# yaml-cpp or image library is installed there: the bundle must carry them. The bundle and
# the source tree are copied in; its tests (CPU; the CUDA ones say "skipped: no CUDA
# device"), a tiny `difffit run` (train, sample, score) and the GPU check's dry run on the
# CPU (GPU_CHECK_DRY_RUN=1 scripts/gpu-check.sh: its plumbing, with a tiny model) must pass.
# Created once and cached (about 6 GB, ~15 min the first time). Needs root (or sudo).
#   scripts/gpu-standin.sh            # the check (makes the bundle if it is missing)
#   scripts/gpu-standin.sh --setup    # only create the root
# DIFFFIT_STANDIN_ROOT chooses where the root lives (default /var/cache/difffit/gpu-standin).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${DIFFFIT_STANDIN_ROOT:-/var/cache/difffit/gpu-standin}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
DEBIAN_PACKAGES=(python3 python3-venv ca-certificates)
# Pillow 11.1 (Debian 13's): Pillow 13.0 resamples differently from what the Pillow-parity
# tests check (PilResample, Prepare.ImageFolder...: they pass with 9.4 and 11.1).
PYTHON_PACKAGES=(torch==2.11.0 torchvision==0.26.0 numpy h5py scipy pillow==11.1.0)
source scripts/chroot-mounts.sh

# 1. The root, once: a marker file records what it was made with.
want="$(printf '%s\n' "${DEBIAN_PACKAGES[@]}" "${PYTHON_PACKAGES[@]}" | sha256sum | cut -c1-16)"
if [ "$(cat "$ROOT/.difffit-standin" 2>/dev/null)" != "$want" ]; then
  command -v debootstrap >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends debootstrap
  if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
    echo "[standin] creating the Debian 13 root in $ROOT (once)"
    $SUDO mkdir -p "$ROOT"
    $SUDO debootstrap --variant=minbase trixie "$ROOT"   # debootstrap's default mirror
  fi
  mount_all
  $SUDO cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
  $SUDO chroot "$ROOT" apt-get update -qq
  $SUDO chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${DEBIAN_PACKAGES[@]}"
  # This machine's certificate store too, for a network that inspects TLS.
  $SUDO cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/difffit-host-ca.crt"
  echo "[standin] installing ${PYTHON_PACKAGES[*]} into /opt/torch/.venv (once; about 4 GB)"
  $SUDO chroot "$ROOT" env -i PATH=/usr/bin:/bin HOME=/root bash -c '
    set -euo pipefail
    python3 -m venv /opt/torch/.venv
    PIP_CERT=/etc/ssl/difffit-host-ca.crt /opt/torch/.venv/bin/pip install --quiet --progress-bar off "$@"' pip "${PYTHON_PACKAGES[@]}"
  echo "$want" | $SUDO tee "$ROOT/.difffit-standin" >/dev/null
fi
[ "${1:-}" = "--setup" ] && { echo "[standin] root ready in $ROOT"; exit 0; }
mount_all

# 2. The bundle and the working tree (tracked and untracked, not ignored files) into the root.
[ -f gpu-bundle/payload.tar.xz ] || bash scripts/gpu-bundle.sh
$SUDO rm -rf "$ROOT/src/difffit"
$SUDO mkdir -p "$ROOT/src/difffit"
git ls-files --cached --others --exclude-standard -z | $SUDO rsync -rlp --from0 --files-from=- ./ "$ROOT/src/difffit/"
$SUDO rsync -rlp gpu-bundle "$ROOT/src/difffit/"

# 3. In the root: the tests, then a tiny run. Nothing of this machine is visible there.
$SUDO chroot "$ROOT" env -i PATH=/usr/bin:/bin HOME=/root bash -c '
  set -euo pipefail
  cd /src/difffit
  out=$(mktemp -d)
  gpu-bundle/run-tests.sh "$out/tests.json"
  gpu-bundle/tiny-run.sh "$out/tiny-run"
  GPU_CHECK_DRY_RUN=1 bash scripts/gpu-check.sh "$out/gpu-check-dry-run.json"
  cp "$out/gpu-check-dry-run.json" /src/gpu-check-dry-run.json
'
echo "[standin] the bundle passed its tests, a tiny run and the GPU check's dry run on a bare Debian 13" \
  "with only Python and torch ($ROOT/src/gpu-check-dry-run.json)"
