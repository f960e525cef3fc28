#!/usr/bin/env bash
# Set up .venv with the pinned test stack (first run: about 3 minutes), then lint and test.
# Extra arguments go to pytest, e.g. scripts/test.sh -k saliency
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check \
    -r requirements-dev.txt -e . ./tests/outsider_plugin
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
# zennit, the LRP reference, in its own folder: tests/zennit_reference.py says why
[ -f .zennit/zennit/core.py ] || .venv/bin/python -m pip install -q --disable-pip-version-check \
    --no-deps --target .zennit "zennit==0.5.1"
.venv/bin/ruff check .
.venv/bin/pytest "$@"
