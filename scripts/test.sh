#!/usr/bin/env bash
# The whole test suite, once per Keras backend, each in its own process.
# Uses $SUPERMASK_DATA for the real-data tests, defaulting to ../shared/data when it exists.
#
# The backends' passes run side by side, $SUPERMASK_TEST_JOBS at a time (default: the number of CPU cores, at
# most one per backend): much of a pass is single-threaded (Python, XLA compilation), so two passes on two cores
# finish well before the same two one after the other. Each pass writes its own log, printed whole when it ends.
# SUPERMASK_TEST_JOBS=1 runs them one after the other, printing as they go. Side by side, each pass runs its
# OpenMP work (PyTorch's CPU kernels) on one thread unless OMP_NUM_THREADS says otherwise: OpenMP threads
# spin-wait for each other, and two passes sharing two cores made the PyTorch pass several times slower.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh || exit 1
if [ -z "${SUPERMASK_DATA:-}" ] && [ -d ../shared/data ]; then
  export SUPERMASK_DATA="$(cd ../shared/data && pwd)"
fi
backends=(${SUPERMASK_BACKENDS:-jax tensorflow torch})  # the longest pass first
jobs="${SUPERMASK_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}"
case "$jobs" in ''|*[!0-9]*|0) echo "SUPERMASK_TEST_JOBS must be a positive integer. Received: '$jobs'"; exit 2;; esac
failed=()
finished=0

run_pass() {  # backend, pytest args...: one pass; exit status = pytest's
  local b="$1"; shift
  KERAS_BACKEND=$b .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
}

record() {  # backend, status
  # Exit status 5 means no test ran: that is a failure, not a pass.
  finished=$((finished + 1))
  [ "$2" -eq 0 ] || failed+=("$1 (pytest exit $2)")
}

if [ "$jobs" -le 1 ] || [ ${#backends[@]} -le 1 ]; then
  for b in "${backends[@]}"; do
    echo "=== KERAS_BACKEND=$b"
    run_pass "$b" "$@"
    record "$b" $?
  done
else
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  logs="$(mktemp -d)"
  trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$logs"' EXIT
  declare -A pid_of=() started=()
  finish() {  # wait for one pass to end, print its log
    local done_pid status b
    wait -n -p done_pid; status=$?
    for b in "${!pid_of[@]}"; do
      if [ "${pid_of[$b]}" = "$done_pid" ]; then
        echo "=== KERAS_BACKEND=$b (exit $status, $(( $(date +%s) - ${started[$b]} )) s)"
        cat "$logs/$b.log"
        record "$b" "$status"
        unset "pid_of[$b]"
      fi
    done
  }
  for b in "${backends[@]}"; do
    while [ ${#pid_of[@]} -ge "$jobs" ]; do finish; done
    echo "--- KERAS_BACKEND=$b started at $(date +%H:%M:%S)"
    started[$b]=$(date +%s)
    run_pass "$b" "$@" > "$logs/$b.log" 2>&1 &
    pid_of[$b]=$!
  done
  while [ ${#pid_of[@]} -gt 0 ]; do finish; done
fi
if [ "$finished" -ne ${#backends[@]} ]; then
  failed+=("only $finished of ${#backends[@]} passes finished")
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED on: ${failed[*]}"
  exit 1
fi
echo "All backends passed."
