#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment from requirements.lock.
# Idempotent: does nothing when .venv already matches the lock file and pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SUPERMASK_VENV:-.venv}"
python="${PYTHON:-python3}"
"$python" -c 'import sys; assert sys.version_info >= (3, 11), "supermask needs Python >= 3.11"'
want=$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-64)
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.lock-sha256" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
echo "Creating $venv from requirements.lock (about a minute and 3 GB the first time)..."
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.lock 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
echo "$want" > "$venv/.lock-sha256"
echo "Virtual environment ready: $venv"
