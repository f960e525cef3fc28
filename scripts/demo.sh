#!/usr/bin/env bash
# Set up .venv (as scripts/test.sh does) and run `xai demo`; arguments go to `xai demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check \
    -r requirements-dev.txt -e .
.venv/bin/xai demo "$@"
