"""`import xai_core` and listing plugins must import no framework (run in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys

FRAMEWORKS = ("torch", "tensorflow", "keras", "paddle", "onnx", "onnxruntime")


def run_fresh(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout


def test_import_and_plugin_listing_import_no_framework():
    out = run_fresh(
        "import json, sys, xai_core\n"
        "xai_core.backends(); xai_core.explainers(); xai_core.plugins()\n"
        f"print(json.dumps([m for m in {FRAMEWORKS!r} if m in sys.modules]))"
    )
    assert json.loads(out) == []


def test_import_is_fast():
    # best of three, in fresh processes: a noisy machine must not make this flaky
    code = "import time; t = time.perf_counter(); import xai_core; print(time.perf_counter() - t)"
    best = min(float(run_fresh(code)) for _ in range(3))
    assert best < 0.3, f"import xai_core took {best:.3f} s"


def test_cli_plugins_imports_no_framework():
    code = (
        "import sys, io, contextlib, json\n"
        "from xai_core.cli import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf): main(['plugins', '--json'])\n"
        f"print(json.dumps([m for m in {FRAMEWORKS!r} if m in sys.modules]))"
    )
    assert json.loads(run_fresh(code)) == []
