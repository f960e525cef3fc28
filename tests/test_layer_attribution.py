"""Layer Gradient x Activation, Internal Influence and Layer Conductance (issue 22) equal
Captum 0.9's on the same models and inputs; the Keras and Paddle twins give the PyTorch
numbers (test_cross_framework.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import xai_core

from real_models import resnet

captum_attr = pytest.importorskip("captum.attr")

METHODS = {
    "layer_gradient_x_activation": ("LayerGradientXActivation", False),
    "internal_influence": ("InternalInfluence", True),
    "layer_conductance": ("LayerConductance", True),
}


def images(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    return (scale * np.random.default_rng(seed).normal(size=(n, 3, 16, 16))).astype(np.float32)


@pytest.mark.parametrize("layer", ["layer1.0.conv2", "layer2", "layer1.0.relu"])
@pytest.mark.parametrize("method", METHODS)
def test_layer_methods_equal_captum_on_a_resnet(method, layer):
    model = resnet()
    x, baselines = images(3, 0), images(3, 1, scale=0.1)
    cls, on_a_path = METHODS[method]
    options = {"baselines": baselines, "n_steps": 16} if on_a_path else {}
    ours = xai_core.explain(model, x, method, layer=layer, target=1, **options)
    captum_options = {"baselines": torch.from_numpy(baselines), "n_steps": 16} if on_a_path else {}
    module = dict(model.named_modules())[layer]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = getattr(captum_attr, cls)(model, module).attribute(
            torch.from_numpy(x), target=1, **captum_options
        )
    reference = reference.detach().numpy()
    assert ours.layer == layer and ours.attributions.shape == reference.shape
    scale = np.abs(reference).max()
    np.testing.assert_allclose(ours.attributions, reference, atol=1e-5 * scale)


def test_layer_conductance_adds_up_at_a_layer_every_path_crosses():
    """At the last block's output every path from input to output passes the layer, so the
    conductances sum to f(x) - f(baseline) as the steps grow (Captum's completeness)."""
    model = resnet()
    x, baselines = images(2, 2), images(2, 3, scale=0.1)
    coarse, fine = (
        xai_core.explain(
            model, x, "layer_conductance", layer="layer2", baselines=baselines, n_steps=n
        )
        for n in (8, 64)
    )
    assert np.abs(fine.convergence_delta).max() < np.abs(coarse.convergence_delta).max()
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
        ref = model(torch.from_numpy(baselines)).numpy()
    gap = out[np.arange(2), fine.target] - ref[np.arange(2), fine.target]
    np.testing.assert_allclose(fine.attributions.reshape(2, -1).sum(axis=1), gap, rtol=1e-2)


def test_layer_methods_need_one_layer():
    with pytest.raises(xai_core.OptionError, match="layer=<one layer name>"):
        xai_core.explain(resnet(), images(1, 0), "layer_conductance")
