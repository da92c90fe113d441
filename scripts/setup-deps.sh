#!/usr/bin/env bash
# Installs every Debian package difffit needs to build, test and run.
# Safe to run repeatedly; uses sudo when not root.
set -euo pipefail

PACKAGES=(
  build-essential cmake ccache git pkg-config rsync
  libtorch-dev                  # LibTorch 1.13 (CPU)
  libopenblas0-pthread          # optimized BLAS: reference BLAS makes LibTorch ~10x slower
  libopenmpi-dev openmpi-bin    # MPI workers
  libhdf5-dev hdf5-tools        # results store and datasets (C and C++ API)
  libboost-program-options-dev  # command line
  libspdlog-dev libfmt-dev      # logging
  libgtest-dev googletest       # tests
  libyaml-cpp-dev               # experiment and sweep files
  libssl-dev                    # SHA-256 (OpenSSL's libcrypto)
  nlohmann-json3-dev            # sweep journal and messages between ranks
  libpng-dev libjpeg-dev zlib1g-dev  # image decoding/encoding
  libmatio-dev                  # MATLAB v7.3 (HDF5) .mat annotations
  libfreetype-dev fonts-dejavu-core  # class names drawn on sample grids
  libcmark-gfm-dev libcmark-gfm-extensions-dev  # Markdown to HTML for the report
  chromium                      # test-only: the HTML report is checked in a headless browser
  dataset-fashion-mnist         # the built-in mini benchmark's data
  # Test-only: independent reference values (PyTorch eager, Pillow, SciPy, h5py).
  python3-venv python3-pip       # the CUDA build: PyTorch's LibTorch in a virtual environment (setup-torch-cuda.sh)
  patchelf xz-utils debootstrap  # the GPU bundle (gpu-bundle.sh) and its stand-in check (gpu-standin.sh)
  python3 python3-torch python3-numpy python3-scipy python3-h5py python3-pil
  python3-torchvision           # test-only: torchvision's Inception3 key names for the FID network
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "[setup] all Debian packages present"
fi
