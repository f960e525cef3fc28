"""Every built-in method runs with its defaults: only what it cannot guess is passed.

The other tests pass seeds and tuned options; this file exists because a default
that never worked (lime's `seed=None`) went unnoticed behind them.
"""

from __future__ import annotations

import numpy as np
import pytest

import xai_core
from xai_core.explainer import SEED_LIMIT, resolve_seed

from models import images, tabular, torch_cnn, torch_mlp

#: the options a method cannot do without, per method; everything else is its default
REQUIRED = {
    "gradient_shap": lambda x: {"background": x[:2]},
    "kernel_shap": lambda x: {"background": x[:2]},
    "deep_shap": lambda x: {"background": x[:2]},
    "lime": lambda x: {"background": x} if x.ndim == 2 else {},
    "grad_cam": lambda x: {"layer": "conv2"},
}
IMAGE_ONLY = {"grad_cam"}
BUILT_IN = [
    "activations",
    "deep_shap",
    "grad_cam",
    "gradient_shap",
    "integrated_gradients",
    "kernel_shap",
    "lime",
    "saliency",
    "smoothgrad",
]


def test_every_built_in_method_is_covered_here():
    assert set(BUILT_IN) <= set(xai_core.explainers())


@pytest.mark.parametrize("method", BUILT_IN)
@pytest.mark.parametrize("data", ["tabular", "image"])
def test_method_runs_with_its_defaults(method, data):
    if data == "tabular" and method in IMAGE_ONLY:
        pytest.skip("an image method")
    model, x = (torch_mlp(), tabular(3)) if data == "tabular" else (torch_cnn(), images(2))
    options = REQUIRED.get(method, lambda _: {})(x)
    expl = xai_core.explain(model, x, method, **options)
    if method == "activations":
        assert expl.activations and all(np.isfinite(a).all() for a in expl.activations.values())
        return
    assert expl.attributions.shape == x.shape
    assert np.isfinite(expl.attributions).all()
    if "seed" in expl.options:  # a drawn seed is recorded and repeats the run
        again = xai_core.explain(model, x, method, **options, seed=expl.options["seed"])
        np.testing.assert_array_equal(again.attributions, expl.attributions)


def test_drawn_seeds_fit_32_bit_generators_and_large_user_seeds_work():
    assert all(0 <= resolve_seed(None) < SEED_LIMIT for _ in range(50))
    x = tabular(2)
    expl = xai_core.explain(torch_mlp(), x, "lime", background=x, seed=2**40 + 3, n_samples=50)
    assert expl.options["seed"] == 2**40 + 3 and np.isfinite(expl.attributions).all()
