#!/usr/bin/env bash
# Installs PyTorch's own LibTorch with CUDA (torch 2.11.0, its CUDA 13.0 build: the version
# the lent GPU machine runs) from the Python package index into a cached virtual
# environment, for the CUDA build (scripts/build-cuda.sh). Only the C++ side is wanted:
# torch itself and the three libraries libtorch_cuda.so needs that the CUDA 13 toolkit in
# /usr/local/cuda lacks (cuFile, cuSPARSELt, NVSHMEM), all without their Python
# dependencies; the CUDA runtime, cuBLAS, cuDNN and NCCL come from the toolkit.
# Safe to run repeatedly; prints the torch folder (its share/cmake is the CMake prefix).
#   DIFFFIT_TORCH_VENV  where the environment lives (default /var/cache/difffit/torch-2.11-venv)
set -euo pipefail
VENV="${DIFFFIT_TORCH_VENV:-/var/cache/difffit/torch-2.11-venv}"
TORCH_VERSION=2.11.0
PACKAGES=(torch=="$TORCH_VERSION" "nvidia-cufile==1.15.1.6.*" nvidia-cusparselt-cu13==0.8.0 nvidia-nvshmem-cu13==3.4.5)

marker="$VENV/.difffit-packages"
want="$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-16)"
if [ "$(cat "$marker" 2>/dev/null)" != "$want" ]; then
  command -v /usr/bin/python3 >/dev/null && /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null ||
    bash "$(dirname "$0")/setup-deps.sh"
  echo "[torch-cuda] installing torch $TORCH_VERSION (CUDA) into $VENV (once; about 850 MB)" >&2
  mkdir -p "$(dirname "$VENV")"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --no-deps --progress-bar off "${PACKAGES[@]}" >&2
  echo "$want" > "$marker"
fi
site="$("$VENV/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
torch_dir="$site/torch"
# The build must be the one the GPU machine runs: a CUDA 13.0 torch of this version.
version="$(sed -n "s/^__version__ = '\(.*\)'$/\1/p" "$torch_dir/version.py")"
case "$version" in
  "$TORCH_VERSION+cu130") ;;
  *) echo "[torch-cuda] $torch_dir is torch $version, not $TORCH_VERSION+cu130" >&2; exit 1 ;;
esac
echo "$torch_dir"
