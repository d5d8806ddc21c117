#!/usr/bin/env bash
# The whole test suite, once per Keras backend, each in its own process.
# Uses $SUPERMASK_DATA for the real-data tests, defaulting to ../shared/data when it exists.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || exit 1
if [ -z "${SUPERMASK_DATA:-}" ] && [ -d ../shared/data ]; then
  export SUPERMASK_DATA="$(cd ../shared/data && pwd)"
fi
failed=()
for b in ${SUPERMASK_BACKENDS:-tensorflow jax torch}; do
  echo "=== KERAS_BACKEND=$b"
  KERAS_BACKEND=$b .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
  rc=$?
  # Exit status 5 means no test ran: that is a failure, not a pass.
  [ $rc -eq 0 ] || failed+=("$b (pytest exit $rc)")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED on: ${failed[*]}"
  exit 1
fi
echo "All backends passed."
