#!/usr/bin/env bash
# The main job: set up .venv if needed, then a short real lottery-ticket experiment on MNIST
# (fc, 1 epoch per level, levels 0..3, with the random-reinit control of each level).
# Data: $SUPERMASK_DATA if set (e.g. ../shared/data), else the cache, else a checksummed download.
# Backend: $KERAS_BACKEND (default jax). Extra flags go to supermask.lottery.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export KERAS_BACKEND="${KERAS_BACKEND:-jax}"
exec .venv/bin/python -m supermask.lottery --model fc --dataset mnist --epochs 1 --levels 3 \
  --root "runs/demo/$KERAS_BACKEND" --resume "$@"
