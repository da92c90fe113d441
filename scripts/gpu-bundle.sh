#!/usr/bin/env bash
# Packs everything the GPU check needs beyond the source tree into one folder, gpu-bundle/
# (at most 40 MiB), for a machine that has a GPU, Python with torch 2.11.0 (CUDA 13) and
# nothing else: no package manager, no network (the lent GPU machine). Its payload.tar.xz
# (unpacked once per machine by env.sh, with Python's tarfile) holds
# - difffit and the test executables of the CUDA build (scripts/build-cuda.sh), stripped;
# - every shared library they need that is neither torch's, CUDA's nor the C/C++ runtime's:
#   OpenMPI with its components, mpiexec and orted (one node, shared memory: components
#   for network fabrics are left out), PMIx, HDF5, Boost.Program_options, spdlog, fmt,
#   yaml-cpp, the image, font and markdown libraries and what they need in turn;
# beside it: a font for the sample grids, a small prepared dataset for a tiny run,
# Fashion-MNIST's test split for the tests, and
# env.sh, run-tests.sh and tiny-run.sh (from scripts/bundle/).
# At run time the binaries use that machine's own torch and CUDA libraries, found through
# its Python (env.sh), never a copy. The machine needs glibc >= 2.34 and the libstdc++ of
# GCC 12 or newer (what torch 2.11's own libraries need too).
#   scripts/gpu-bundle.sh          # builds (scripts/build-cuda.sh), then packs
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=gpu-bundle
BUILD="${DIFFFIT_CUDA_BUILD_DIR:-build-cuda}"
LIMIT_MIB=40
say() { echo "[bundle] $*" >&2; }

bash scripts/build-cuda.sh >&2
torch_dir="$(bash scripts/setup-torch-cuda.sh)"
[ -f data/mini/new-classes/ref.h5 ] || "$BUILD/difffit" prepare --benchmark mini --output data/mini >&2

rm -rf "$OUT"
mkdir -p "$OUT"/{share,data}
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
P="$stage/payload"
mkdir -p "$P"/{bin,tests,lib,openmpi/lib,openmpi/share,openmpi/etc,pmix/lib/pmix,pmix/share}

# 1. The executables, stripped. Test executables are the build's ELF files under tests/.
strip -o "$P/bin/difffit" "$BUILD/difffit"
for f in "$BUILD"/tests/test_*; do
  [ -x "$f" ] && head -c4 "$f" | grep -q ELF && strip -o "$P/tests/$(basename "$f")" "$f"
done
cp -L /usr/bin/orterun "$P/bin/mpiexec"
cp -L /usr/bin/orted "$P/bin/orted"

# 2. OpenMPI's and PMIx's plugins, their help texts and OpenMPI's default parameters.
#    Plugins for network fabrics (InfiniBand verbs, UCX, libfabric, PSM) need libraries
#    the size of the bundle and serve no purpose on one node; OpenSHMEM's serve difffit none.
ompi_plugins=/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3
unused='libibverbs|libucp|libucs|libuct|libfabric|libpsm|librdmacm|libefa|libmlx|liboshmem'
for f in "$ompi_plugins"/*.so; do
  needs="$(ldd "$f" 2>/dev/null || true)"
  grep -qE "$unused" <<< "$needs" || cp "$f" "$P/openmpi/lib/"
done
cp -r /usr/share/openmpi "$P/openmpi/share/"
cp /etc/openmpi/openmpi-mca-params.conf "$P/openmpi/etc/"
pmix=/usr/lib/x86_64-linux-gnu/pmix2
cp "$pmix"/lib/pmix/*.so "$P/pmix/lib/pmix/"
cp -r "$pmix/share/pmix" "$P/pmix/share/"

# 3. The shared libraries all of these need, resolved as here (torch's and CUDA's folders
#    first), minus torch's, CUDA's and the C/C++ runtime's: those come from the machine.
system='^(libc|libm|libdl|libpthread|librt|libutil|libresolv|ld-linux-x86-64|libstdc\+\+|libgcc_s)\.so'
elfs=("$P"/bin/* "$P"/tests/* "$P"/openmpi/lib/*.so "$P"/pmix/lib/pmix/*.so)
LD_LIBRARY_PATH="$torch_dir/lib:/usr/local/cuda/lib64:/usr/lib/x86_64-linux-gnu/openmpi/lib:$pmix/lib" \
  ldd "${elfs[@]}" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u |
  while read -r name path; do
    case "$path" in "$torch_dir"/* | /usr/local/cuda*) continue ;; esac
    [[ "$name" =~ $system ]] && continue
    [ -e "$P/lib/$name" ] || cp -L "$path" "$P/lib/$name"
  done
missing="$(LD_LIBRARY_PATH="$P/lib:$torch_dir/lib:/usr/local/cuda/lib64" ldd "${elfs[@]}" 2>/dev/null | grep "not found" | sort -u || true)"
[ -z "$missing" ] || { say "unresolved libraries:"; echo "$missing" >&2; exit 1; }
strip --strip-unneeded "$P"/lib/* "$P"/openmpi/lib/*.so "$P"/pmix/lib/pmix/*.so 2>/dev/null || true

# 4. Each ELF file finds the bundle's libraries beside it, whatever folder the bundle is in.
for f in "$P"/bin/* "$P"/tests/*; do patchelf --set-rpath '$ORIGIN/../lib' "$f"; done
for f in "$P"/lib/*; do patchelf --set-rpath '$ORIGIN' "$f"; done
for f in "$P"/openmpi/lib/*.so; do patchelf --set-rpath '$ORIGIN/../../lib' "$f"; done
for f in "$P"/pmix/lib/pmix/*.so; do patchelf --set-rpath '$ORIGIN/../../../lib' "$f"; done

# 5. A font, a small prepared dataset (the mini benchmark's new-classes reference images),
#    and the scripts that run the bundle.
cp /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf "$OUT/share/"
cp data/mini/new-classes/ref.h5 "$OUT/data/new-classes-ref.h5"
# Fashion-MNIST's test split (4.4 MB) for the tests that prepare data from it; those that
# need the train split say they skip.
mkdir -p "$OUT/data/fashion-mnist"
cp /usr/share/datasets/fashion-mnist/t10k-*-idx*-ubyte.gz "$OUT/data/fashion-mnist/"
cp scripts/bundle/*.sh "$OUT/"
git rev-parse HEAD > "$OUT/COMMIT" 2>/dev/null || true
unpacked_mib="$(du -sm "$P" | cut -f1)"
tar -C "$P" -cf - . | xz -T0 -6 > "$OUT/payload.tar.xz"

size_kib="$(du -sk "$OUT" | cut -f1)"
say "$OUT: $((size_kib / 1024)) MiB, $unpacked_mib MiB unpacked ($(ls "$P/lib" | wc -l) libraries," \
  "$(ls "$P/openmpi/lib" | wc -l) OpenMPI plugins, $(ls "$P/tests" | wc -l) test executables)"
if [ "$size_kib" -gt $((LIMIT_MIB * 1024)) ]; then
  say "larger than $LIMIT_MIB MiB"
  du -sk "$OUT"/* | sort -rn | head >&2
  exit 1
fi
