#!/usr/bin/env bash
# Set up .venv with the pinned test stack (first run: about 3 minutes), then lint and test.
# Extra arguments go to pytest, e.g. scripts/test.sh -k saliency
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check \
    -r requirements-dev.txt -e . ./tests/outsider_plugin
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
.venv/bin/ruff check .
.venv/bin/pytest "$@"
