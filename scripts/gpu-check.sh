#!/usr/bin/env bash
# The GPU check, run from the GPU bundle (scripts/gpu-bundle.sh, made on a build machine) on
# a machine with an NVIDIA GPU and Python with torch 2.11: nothing is built there. Ends
# within 8 minutes (each part has its share; a part out of time is cut and recorded so) and
# writes one JSON file as it goes, so a stop keeps what is done. In order:
#  1. the test suite with the CUDA tests enabled (gpu-bundle/run-tests.sh);
#  2. NCCL's collectives on one rank;
#  3. a tiny `difffit run` end to end on CUDA (train, learning curve, sample, score);
#  4. DiT-XL/2 at 256 px (32x32x4 latents, 1000 classes): ms/step and peak GPU memory of
#     full, BitFit, DiffFit and LoRA at batch 32 and 64, in bf16 autocast and in float32
#     with TF32;
#  5. beside it, the official DiT architecture under the machine's PyTorch
#     (bench/pytorch_baseline.py): eager at the same settings (full, BitFit, DiffFit; the
#     official code has no LoRA), and torch.compile at batch 64 in bf16 where it compiles
#     within its share;
#  6. DDPM-250 sampling with CFG 1.5 (images/s), difffit and PyTorch eager;
#  7. the VAE decoder at 256 px (images/s), float32 with TF32 and bf16.
#   scripts/gpu-check.sh [OUT.json]     (default gpu-check.json)
#   GPU_CHECK_DRY_RUN=1 scripts/gpu-check.sh OUT.json   the same plumbing on the CPU with
#     a tiny model and a few tests, to check the script itself (scripts/gpu-standin.sh)
# The device tool's call, from the repository root after scripts/gpu-bundle.sh here:
#   carry ["gpu-bundle"], command "bash scripts/gpu-check.sh $OUT/gpu-check.json",
#   timeout_s 540
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="$(realpath -m "${1:-gpu-check.json}")"
[ -f gpu-bundle/env.sh ] || { echo "[gpu-check] no gpu-bundle/ here: make it with scripts/gpu-bundle.sh" >&2; exit 2; }
source gpu-bundle/env.sh
DEADLINE=$(( $(date +%s) + ${GPU_CHECK_SECONDS:-470} ))
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say() { echo "[gpu-check] $*" >&2; }

# record KEY FILE [RC LOG]: sets KEY of OUT to FILE's JSON, atomically; a non-zero RC (124:
# out of time) is added with LOG's tail.
record() {
  "$PYTHON" - "$OUT" "$@" <<'PY'
import json, os, sys
out, key, path = sys.argv[1:4]
rc, log = (int(sys.argv[4]), sys.argv[5]) if len(sys.argv) > 5 else (0, None)
try:
    result = json.load(open(out))
except (OSError, ValueError):
    result = {}
try:
    value = json.load(open(path))
except (OSError, ValueError):
    value = None
if rc:
    value = dict(value) if isinstance(value, dict) else {}
    value.update({"rc": rc, "timed_out": rc == 124, "log": open(log, errors="replace").read()[-2000:]})
result[key] = value
with open(out + ".tmp", "w") as f:
    json.dump(result, f, indent=1)
os.replace(out + ".tmp", out)
PY
}
# part SECONDS NAME CMD...: runs CMD with at most SECONDS (less if the deadline is nearer),
# its stdout (JSON) to $work/NAME.json, its stderr to $work/NAME.log; records NAME.
part() {
  local budget="$1" name="$2"; shift 2
  local left=$(( DEADLINE - $(date +%s) ))
  [ "$budget" -gt "$left" ] && budget="$left"
  if [ "$budget" -lt 5 ]; then
    echo '{"skipped": "out of time"}' > "$work/$name.json"
    record "$name" "$work/$name.json"
    return
  fi
  say "$name (at most $budget s)"
  timeout "$budget" "$@" > "$work/$name.json" 2> "$work/$name.log"
  local rc=$?
  [ $rc -ne 0 ] && tail -c 1500 "$work/$name.log" >&2
  record "$name" "$work/$name.json" "$rc" "$work/$name.log"
}

rm -f "$OUT"
"$PYTHON" - > "$work/machine.json" <<'PY'
import json, subprocess, torch
try:
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip()
except OSError as e:
    gpu = f"no nvidia-smi ({e.strerror})"
print(json.dumps({"gpu": gpu, "torch": torch.__version__, "cuda": torch.version.cuda,
                  "cuda_available": torch.cuda.is_available(), "commit": open("gpu-bundle/COMMIT").read().strip()}))
PY
record machine "$work/machine.json"
DEVICE=cuda TF32=(--tf32) TESTS='*'
XL=(--model DiT-XL/2 --input-size 32 --in-channels 4 --num-classes 1000)
OFFICIAL=(--depth 28 --hidden 1152 --heads 16 --patch 2 --input 32 --channels 4 --classes 1000)
VAE_SIDE=256
if [ -n "${GPU_CHECK_DRY_RUN:-}" ]; then
  DEVICE=cpu TF32=() TESTS='Sha256*:CliUsage*:Cuda*'
  XL=(--model custom --depth 2 --hidden-size 32 --num-heads 2 --patch-size 4 --input-size 16)
  OFFICIAL=(--depth 2 --hidden 32 --heads 2 --patch 4 --input 16 --channels 4 --classes 1000)
  VAE_SIDE=32
  say "dry run: on the CPU, a tiny model, tests $TESTS"
elif ! "$PYTHON" -c 'import torch; assert torch.cuda.is_available()'; then
  say "torch sees no CUDA device"
  exit 2
fi

# 1-3. Correctness first.
part 150 tests bash -c 'gpu-bundle/run-tests.sh "$1" "$2" >&2; rc=$?; cat "$1"; exit $rc' _ "$work/tests.json" "$TESTS"
part 30 nccl bash -c "mpiexec -n 1 \"$UNPACKED\"/tests/test_mpi --gtest_filter='Nccl*' >&2 && echo '{\"passed\": true}'"
part 60 tiny_run bash -c 'gpu-bundle/tiny-run.sh "$1" "$2" >&2 && cat "$1"/demo-*/metrics.json' _ "$work/tiny" "$DEVICE"

# 4-7. Timings: float32 with TF32, or bf16 autocast.
precision_flags() { if [ "$1" = bf16 ]; then echo --precision bf16; else echo --precision fp32 "${TF32[@]}"; fi; }
for batch in 32 64; do
  for precision in bf16 tf32; do
    part 45 "difffit_train_${precision}_b$batch" difffit bench train-step "${XL[@]}" --device "$DEVICE" \
      $(precision_flags "$precision") --method full,bitfit,difffit,lora --batch "$batch" --steps 5 --warmup 2 --json
  done
done
for batch in 32 64; do
  for precision in bf16 tf32; do
    part 40 "pytorch_eager_train_${precision}_b$batch" "$PYTHON" bench/pytorch_baseline.py train "${OFFICIAL[@]}" \
      --device "$DEVICE" $(precision_flags "$precision") --methods full,bitfit,difffit --batch "$batch" --steps 5 --warmup 2
  done
done
part 90 pytorch_compile_train_bf16_b64 "$PYTHON" bench/pytorch_baseline.py train "${OFFICIAL[@]}" --device "$DEVICE" \
  --precision bf16 --compile --methods full,difffit --batch 64 --steps 5 --warmup 3
part 30 difffit_sample_ddpm250_cfg difffit bench sample "${XL[@]}" --device "$DEVICE" "${TF32[@]}" --sampler ddpm \
  --steps 250 --cfg-scale 1.5 --num 32 --batch-size 32 --json
part 30 pytorch_eager_sample_ddpm250_cfg "$PYTHON" bench/pytorch_baseline.py sample "${OFFICIAL[@]}" \
  --device "$DEVICE" "${TF32[@]}" --sampler ddpm --sample-steps 250 --cfg-scale 1.5 --num 32 --batch 32
for precision in fp32 bf16; do
  part 20 "vae_decode_$precision" difffit bench vae --device "$DEVICE" $(precision_flags "$precision") --num 64 \
    --batch-size 32 --resolution "$VAE_SIDE" --json
done
say "wrote $OUT in $(( $(date +%s) - DEADLINE + ${GPU_CHECK_SECONDS:-470} )) s"
# The exit status: 0 when the tests, NCCL and the tiny run passed.
"$PYTHON" - "$OUT" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = all(isinstance(r.get(k), dict) and "rc" not in r[k] for k in ("tests", "nccl", "tiny_run"))
sys.exit(0 if ok else 1)
PY
