#!/usr/bin/env bash
# Every GPU speed measurement in one device call (README "Benchmarks"), for a session lent the device:
#   run(command="bash benchmarks/gpu.sh", carry=[".whl"], timeout_s=540)
# .whl (ignored by git) holds keras 3.15.1, namex and optree wheels for cp312: the device has jax and
# torch with CUDA but no keras or tensorflow (see the device tool's README for the pip download line).
# Writes $OUT/speed_gpu.json and $OUT/gpu.log; copy the JSON to benchmarks/results/ with the device's
# name. GPU_QUICK=1 shrinks every run (a rehearsal on a CPU machine before spending device time).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/gpu-out}"
mkdir -p "$out"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1
python="${PYTHON:-python3}"
(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no GPU") | tee "$out/gpu.log"
if [ "${GPU_QUICK:-0}" = 1 ]; then
  sizes=(--steps-fc 100 --steps-conv 100 --repeats 1 --ks 1,2 --conv-steps 2 --former-steps 0)
  vmap_model=fc  # conv2 in a vmapped scan takes minutes a step on a CPU
else
  # fc and conv2 per epoch with K = 1, 8, 64 tickets (conv2 K = 8 vs K = 1 is issue 22's GPU target), then
  # conv2 and resnet20 per step against the hand-written references; JAX's former vmapped scan for conv
  # is timed by the per-epoch K rows with SUPERMASK_ENGINE_FORM=scan-vmap below.
  sizes=(--repeats 3 --ks 1,8,64 --conv-steps 20 --former-steps 0)
  vmap_model=conv2
fi
"$python" benchmarks/speed.py --backends "${GPU_BACKENDS:-jax,torch}" --models fc,conv2 --conv conv2,resnet20 \
  "${sizes[@]}" --out "$out/speed_gpu.json" 2>&1 | tee -a "$out/gpu.log"
# conv2 with K tickets as one vmapped program (the former GPU form), side by side with the above.
SUPERMASK_ENGINE_FORM=scan-vmap "$python" benchmarks/speed.py --backends jax --models "$vmap_model" --conv "" \
  "${sizes[@]}" --out "$out/speed_gpu_conv_vmap.json" 2>&1 | tee -a "$out/gpu.log"
