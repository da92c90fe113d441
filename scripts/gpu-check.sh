#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and PyTorch 2.x (its LibTorch with CUDA):
# builds difffit against that LibTorch, runs the test suite (GPU-free tests included) and
# NCCL's collectives on one rank, then times DiT-XL/2 at 256 px (32x32x4 latents, 1000
# classes): the training step of full, BitFit, DiffFit and LoRA at batch 32 and 64 in
# float32 with TF32 and in bf16 autocast (ms/step, peak GPU memory), DDPM-250 sampling with
# CFG (images/s) and the VAE decoder at 256 px (images/s). One JSON file; ~10 minutes.
#   scripts/gpu-check.sh [OUT.json]      (default gpu-check.json)
# PYTHON picks the Python that has torch (default python3); the system packages that
# scripts/setup-deps.sh installs must be there (or on CMAKE_PREFIX_PATH).
# NCCL_ROOT: an NCCL (include/, lib/) to build with; default PyTorch's own (nvidia-nccl wheel)
# when it has headers, else the CUDA toolkit's.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="$(realpath -m "${1:-gpu-check.json}")"
PYTHON="${PYTHON:-python3}"
BUILD=build-gpu
JOBS="$(nproc)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say() { echo "[gpu-check] $*" >&2; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$work/gpu.txt" ||
  { say "nvidia-smi failed: no NVIDIA GPU here"; exit 2; }
torch_prefix="$("$PYTHON" -c 'import torch; assert torch.cuda.is_available(); print(torch.utils.cmake_prefix_path)')" ||
  { say "$PYTHON has no PyTorch with a usable CUDA device"; exit 2; }
if [ -z "${NCCL_ROOT:-}" ]; then
  NCCL_ROOT="$("$PYTHON" -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null || true)"
  [ -f "$NCCL_ROOT/include/nccl.h" ] || NCCL_ROOT=""
fi
say "GPU: $(cat "$work/gpu.txt"); LibTorch from $torch_prefix; NCCL_ROOT=${NCCL_ROOT:-<CUDA toolkit>}"

# 1. Build (the tests' Python fixtures use the same Python).
start=$(date +%s)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" \
  ${NCCL_ROOT:+-DNCCL_ROOT="$NCCL_ROOT"} -DPython3_EXECUTABLE="$(command -v "$PYTHON")" > "$work/configure.log" 2>&1 ||
  { tail -30 "$work/configure.log"; exit 1; }
grep -m1 "difffit: Torch" "$work/configure.log" >&2
cmake --build "$BUILD" -j"$JOBS" > "$work/build.log" 2>&1 || { grep -B2 -A8 "error" "$work/build.log" | head -60; exit 1; }
build_s=$(( $(date +%s) - start ))
BIN="$BUILD/difffit"

# 2. Tests: the whole suite but the SLURM one; then NCCL for real on one rank.
start=$(date +%s)
(cd "$BUILD" && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  ctest -j"$JOBS" -LE slurm --timeout 300 > "$work/ctest.log" 2>&1)
tests_rc=$?
mpiexec --allow-run-as-root -n 1 "$BUILD/tests/test_mpi" --gtest_filter='Nccl*' > "$work/nccl.log" 2>&1
nccl_rc=$?
tests_s=$(( $(date +%s) - start ))
say "tests: rc $tests_rc ($(grep -m1 'tests passed' "$work/ctest.log")), NCCL one rank: rc $nccl_rc"

# 3. Timings, each one JSON file.
XL="--model DiT-XL/2 --input-size 32 --in-channels 4 --num-classes 1000"
n=0
for batch in 32 64; do
  for precision in tf32 bf16; do
    for method in full bitfit difffit lora; do
      n=$((n + 1))
      flags="--precision fp32 --tf32"
      [ "$precision" = bf16 ] && flags="--precision bf16"
      say "train-step $method batch $batch $precision"
      "$BIN" bench train-step $XL --device cuda $flags --method "$method" --batch "$batch" --steps 5 --warmup 2 \
        --json > "$work/train-$n.json" 2> "$work/train-$n.err" || { tail -5 "$work/train-$n.err" >&2; rm -f "$work/train-$n.json"; }
    done
  done
done
say "sampling: DDPM-250, CFG 1.5, 64 images at batch 64 (bf16 off: the sampler runs float32 with TF32)"
"$BIN" bench sample $XL --device cuda --tf32 --sampler ddpm --steps 250 --cfg-scale 1.5 --num 64 --batch-size 64 \
  --json > "$work/sample.json" 2> "$work/sample.err" || tail -5 "$work/sample.err" >&2
for precision in fp32 bf16; do
  say "VAE decode 256 px, $precision"
  tf32=""; [ "$precision" = fp32 ] && tf32="--tf32"
  "$BIN" bench vae --device cuda $tf32 --precision "$precision" --num 64 --batch-size 32 --resolution 256 \
    --json > "$work/vae-$precision.json" 2> "$work/vae-$precision.err" || tail -5 "$work/vae-$precision.err" >&2
done

# 4. One file.
"$PYTHON" - "$work" "$OUT" "$build_s" "$tests_s" "$tests_rc" "$nccl_rc" <<'EOF'
import glob, json, os, re, sys
work, out, build_s, tests_s, tests_rc, nccl_rc = sys.argv[1:]
def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
ctest = open(os.path.join(work, "ctest.log")).read()
summary = re.search(r"(\d+)% tests passed, (\d+) tests failed out of (\d+)", ctest)
failed = re.findall(r"^\s*\d+ - (\S+) \((Failed|Timeout|SEGFAULT|Subprocess aborted|Exception)\)", ctest, re.M)
import torch
result = {
    "gpu": open(os.path.join(work, "gpu.txt")).read().strip(),
    "torch": torch.__version__, "cuda": torch.version.cuda,
    "build_seconds": int(build_s),
    "tests": {"seconds": int(tests_s), "ctest_rc": int(tests_rc),
              "passed_of": [int(summary.group(3)) - int(summary.group(2)), int(summary.group(3))] if summary else None,
              "failed": [name for name, _ in failed],
              "nccl_one_rank_rc": int(nccl_rc)},
    "train_step": [], "sample": load(os.path.join(work, "sample.json")),
    "vae_decode": [load(os.path.join(work, f"vae-{p}.json")) for p in ("fp32", "bf16")],
}
for path in sorted(glob.glob(os.path.join(work, "train-*.json")), key=lambda p: int(re.findall(r"\d+", p)[-1])):
    r = load(path)
    if not r:
        continue
    m = r["methods"][0]
    result["train_step"].append({"method": m["method"], "batch": r["batch"],
                                 "precision": "bf16" if r["precision"] == "bf16" else "tf32",
                                 "median_ms": m["median_ms"], "p10_ms": m["p10_ms"], "p90_ms": m["p90_ms"],
                                 "peak_gpu_allocated_bytes": m["peak_gpu_allocated_bytes"],
                                 "trainable_params": m["trainable_params"]})
with open(out, "w") as f:
    json.dump(result, f, indent=2)
print(json.dumps({k: result[k] for k in ("gpu", "torch", "tests")}, indent=2))
for row in result["train_step"]:
    print(f'{row["method"]:8s} batch {row["batch"]:3d} {row["precision"]}: {row["median_ms"]:8.1f} ms/step, '
          f'peak {row["peak_gpu_allocated_bytes"] / 2**30:6.1f} GiB')
EOF
say "wrote $OUT"
[ "$tests_rc" -eq 0 ] && [ "$nccl_rc" -eq 0 ]
