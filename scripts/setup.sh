#!/usr/bin/env bash
# Create the virtualenv and install the pinned Python and npm dependencies. Idempotent and quick
# when nothing changed: each step is skipped while its inputs' checksum matches the last run's.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
stamp() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
want=$(stamp requirements.txt constraints.txt)
if [ "$(cat .venv/.requirements-stamp 2>/dev/null)" != "$want" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements.txt -c constraints.txt
    echo "$want" > .venv/.requirements-stamp
fi

if [ -f package.json ]; then
    want=$(stamp package.json package-lock.json)
    if [ "$(cat node_modules/.ccbridge-stamp 2>/dev/null)" != "$want" ]; then
        npm ci --no-audit --no-fund --loglevel=error
        echo "$want" > node_modules/.ccbridge-stamp
    fi
fi
