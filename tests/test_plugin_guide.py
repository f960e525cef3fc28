"""The README's explainer plugin, installed as its own distribution (a module and a
dist-info with its entry point on a path of its own) and used from a fresh process,
as a third party would: found through its entry point on every framework."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from test_readme import python_blocks

USE = """
import json, numpy as np, torch, xai_core
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(5, 3))
x = np.random.default_rng(0).normal(size=(3, 5)).astype("f4")
expl = xai_core.explain(model, x, "gradient_norm", target=1, order=3)
w = model[0].weight.detach().numpy()[1]
ok = bool(np.allclose(expl.attributions, np.tile(np.abs(w) ** 3, (3, 1)), rtol=1e-6))
try:
    xai_core.explain(model, x, "gradient_norm", order=0)
    refused = False
except xai_core.OptionError as exc:
    refused = "order" in str(exc)
record = next(r for r in xai_core.plugins() if r["name"] == "gradient_norm")
print(json.dumps({"ok": ok, "refused": refused, "dist": record["distribution"],
                  "status": record["status"]}))
"""


def test_the_readme_plugin_installed_and_used_in_a_fresh_process(tmp_path):
    module = next(b for b in python_blocks("## Writing a plugin") if "GradientNorm" in b)
    (tmp_path / "gradient_norm.py").write_text(module)
    info = tmp_path / "xai_gradient_norm-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: xai-gradient-norm\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text("[xai_core.explainers]\ngradient_norm = gradient_norm\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", USE], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"ok": True, "refused": True, "dist": "xai-gradient-norm", "status": "loaded"}
