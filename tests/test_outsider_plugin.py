"""A third-party backend, installed as its own distribution, found through its entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from xai_core.testing import AdapterConformance
from xai_outsider_numpy import BlackBox, NumpyMLP


class TestOutsiderConformance(AdapterConformance):
    layer = "fc1"

    def make_model(self):
        return NumpyMLP.random()

    def make_inputs(self):
        return np.random.default_rng(3).normal(size=(3, 5))

    def expected_activation(self, model, inputs, layer):
        return inputs @ model.w1 + model.b1


class TestForwardOnlyConformance(AdapterConformance):
    expected_failures = {"check_gradients": "a black box has no gradients"}

    def make_model(self):
        mlp = NumpyMLP.random()
        return BlackBox(mlp)

    def make_inputs(self):
        return np.random.default_rng(3).normal(size=(3, 5))


def test_found_through_its_entry_point_in_a_fresh_process():
    code = """
import json, numpy as np, xai_core
from xai_outsider_numpy import NumpyMLP
model = NumpyMLP.random()
x = np.random.default_rng(0).normal(size=(4, 5))
e = xai_core.explain(model, x, "saliency", abs=False, target=1)
record = [r for r in xai_core.plugins() if r["name"] == "numpy_mlp"][0]
print(json.dumps({"backend": e.backend, "attr": e.attributions.tolist(),
                  "dist": record["distribution"], "version": record["version"],
                  "status": record["status"]}))
"""
    out = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    assert out["backend"] == "numpy_mlp"
    assert (out["dist"], out["version"], out["status"]) == ("xai-outsider-numpy", "0.4.0", "loaded")
    # reference: the chain rule written out, independent of the plugin's backprop code
    model = NumpyMLP.random()
    x = np.random.default_rng(0).normal(size=(4, 5))
    active = (x @ model.w1 + model.b1) > 0
    expected = (active * model.w2[:, 1]) @ model.w1.T
    np.testing.assert_allclose(out["attr"], expected, rtol=1e-10)


def test_a_third_party_metric_is_found_through_its_entry_point_in_a_fresh_process():
    code = """
import json, numpy as np, xai_core
from xai_outsider_numpy import NumpyMLP
model = NumpyMLP.random()
x = np.random.default_rng(0).normal(size=(4, 5))
e = xai_core.explain(model, x, "saliency", abs=False)
record = [r for r in xai_core.plugins() if r["name"] == "top_share"][0]
table = xai_core.compare(model, x, ["saliency"], ["top_share", "deletion"], progress=False)
print(json.dumps({"scores": xai_core.evaluate(model, e, "top_share", k=2).tolist(),
                  "attr": e.attributions.tolist(), "group": record["group"],
                  "status": record["status"], "table": table.to_markdown()}))
"""
    out = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    assert (out["group"], out["status"]) == ("xai_core.metrics", "loaded")
    a = np.abs(np.array(out["attr"]))
    expected = np.sort(a, axis=1)[:, -2:].sum(1) / a.sum(1)
    np.testing.assert_allclose(out["scores"], expected, rtol=1e-12)
    assert "top_share ↑" in out["table"] and "deletion ↓" in out["table"]
