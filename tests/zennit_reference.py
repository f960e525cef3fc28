"""zennit (an LRP reference) loaded for the LRP tests only.

Two traps keep it out of the test environment proper: zennit's package `__init__`
imports its torchvision helpers, and torchvision's wheels here do not load on the CPU
torch; and quantus imports zennit whenever it is importable, so a zennit on the path
breaks every quantus import. `scripts/test.sh` installs it with `--no-deps` into
`.zennit/`, and this module loads its submodules under a private package name, without
its `__init__` and without putting `.zennit/` on `sys.path`.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest

FOLDER = Path(__file__).resolve().parents[1] / ".zennit" / "zennit"
PACKAGE = "_zennit_reference"


def zennit(submodule: str):
    """`zennit.<submodule>` (core, rules, composites, types), or a skip where it is not
    installed (scripts/test.sh installs it)."""
    if not (FOLDER / "core.py").exists():
        pytest.skip("zennit is not installed in .zennit/ (scripts/test.sh installs it)")
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(FOLDER)]
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.{submodule}")
