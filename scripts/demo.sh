#!/usr/bin/env bash
# The main job: set up .venv if needed, then a short real run on MNIST.
# Data: $SUPERMASK_DATA if set (e.g. ../shared/data), else the cache, else a checksummed download.
# Backend: $KERAS_BACKEND (default jax).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export KERAS_BACKEND="${KERAS_BACKEND:-jax}"
exec .venv/bin/python -m supermask.train --model fc --dataset mnist --epochs 2 --out runs/demo/train "$@"
