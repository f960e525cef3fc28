"""Importing tensorflow then paddle segfaults here: the library must never do that on its own.

Each check runs in a fresh process, so even a crash could not take the suite down.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")
pytest.importorskip("paddle")

HEAVY = ("torch", "tensorflow", "keras", "paddle")


def modules_after(code: str) -> list[str]:
    listing = f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    script = f"{code}\nimport sys, json\n{listing}"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_explaining_a_keras_model_imports_no_other_framework():
    loaded = modules_after(
        "import numpy as np, xai_core\n"
        "from xai_core.testing.twins import keras_mlp, mlp_weights\n"
        "xai_core.explain(keras_mlp(mlp_weights()), np.ones((2, 6), 'float32'), 'saliency')\n"
        "xai_core.explainers(); xai_core.backends()"
    )
    assert sorted(loaded) == ["keras", "tensorflow"]


def test_explaining_a_paddle_model_imports_no_other_framework():
    loaded = modules_after(
        "import numpy as np, xai_core\n"
        "from xai_core.testing.twins import paddle_mlp, mlp_weights\n"
        "xai_core.explain(paddle_mlp(mlp_weights()), np.ones((2, 6), 'float32'), 'saliency')"
    )
    assert loaded == ["paddle"]


def test_paddle_then_tensorflow_in_one_process_works():
    # the order conftest.py enforces for the in-process tests
    loaded = modules_after("import paddle\nimport tensorflow")
    assert "paddle" in loaded and "tensorflow" in loaded
