"""Captum's `attribute_to_layer_input=True`: attributions (and captures) at a layer's
input rather than its output, compared with Captum's layer methods on the same model, with
the output of the layer before it (the same tensor in the twin CNN: pool -> conv2), and
on the Keras and Paddle twins with the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import LayerActivation, LayerGradCam, LayerIntegratedGradients

import xai_core
from xai_core.testing.twins import cnn_weights, from_layout, to_layout, twin

WEIGHTS = cnn_weights(channels=3, seed=3)
X = np.random.default_rng(4).normal(size=(3, 3, 8, 8)).astype(np.float32)
TARGET = np.array([1, 4, 7])


@pytest.fixture(scope="module")
def net():
    return twin("torch", "cnn", WEIGHTS)


def test_layer_integrated_gradients_at_a_layer_input_equal_captum(net):
    ours = xai_core.explain(
        net, X, "integrated_gradients", layer="conv2", attribute_to_layer_input=True, target=TARGET
    )
    theirs = LayerIntegratedGradients(net, net.conv2).attribute(
        torch.from_numpy(X), target=torch.from_numpy(TARGET), attribute_to_layer_input=True
    )
    np.testing.assert_allclose(ours.attributions, theirs.detach().numpy(), rtol=1e-4, atol=1e-6)
    # conv2's input is the pooling layer's output: the same attribution
    pool = xai_core.explain(net, X, "integrated_gradients", layer="pool", target=TARGET)
    np.testing.assert_allclose(ours.attributions, pool.attributions, rtol=1e-5, atol=1e-7)
    output = xai_core.explain(net, X, "integrated_gradients", layer="conv2", target=TARGET)
    assert output.attributions.shape != ours.attributions.shape  # 16 channels, not 8


def test_grad_cam_and_activations_at_a_layer_input_equal_captum(net):
    cam = xai_core.explain(
        net, X, "grad_cam", layer="conv2", attribute_to_layer_input=True, target=TARGET
    )
    theirs = LayerGradCam(net, net.conv2).attribute(
        torch.from_numpy(X),
        target=torch.from_numpy(TARGET),
        attribute_to_layer_input=True,
        relu_attributions=True,
    )
    np.testing.assert_allclose(
        cam.extras["layer_attributions"], theirs.detach().numpy()[:, 0], rtol=1e-5, atol=1e-7
    )
    captured = xai_core.explain(net, X, "activations", layers=["conv2:input"])
    want = LayerActivation(net, net.conv2).attribute(
        torch.from_numpy(X), attribute_to_layer_input=True
    )
    np.testing.assert_allclose(captured.activations["conv2:input"], want.numpy(), rtol=1e-6)


@pytest.mark.parametrize("framework", ["tensorflow", "paddle"])
def test_layer_inputs_give_the_same_numbers_on_every_framework(net, framework):
    pytest.importorskip(framework)
    model = twin(framework, "cnn", WEIGHTS)
    x = to_layout(X, framework)
    for method in ("integrated_gradients", "saliency"):
        options = {"layer": "conv2", "attribute_to_layer_input": True, "target": TARGET}
        if method == "saliency":
            options["abs"] = False
        ours = xai_core.explain(model, x, method, **options).attributions
        want = xai_core.explain(net, X, method, **options).attributions
        np.testing.assert_allclose(
            from_layout(ours, framework), want, rtol=1e-4, atol=1e-6, err_msg=method
        )


def test_a_layer_input_option_without_a_layer_is_refused(net):
    with pytest.raises(xai_core.OptionError, match="needs layer"):
        xai_core.explain(net, X, "integrated_gradients", attribute_to_layer_input=True)
    with pytest.raises(xai_core.OptionError, match="True or False"):
        xai_core.explain(net, X, "saliency", layer="conv2", attribute_to_layer_input="yes")
    with pytest.raises(xai_core.UnknownLayerError):
        xai_core.explain(net, X, "integrated_gradients", layer="nope:input")


# -- several layers in one call (Captum's list of layers) ----------------------------------
def _two_inputs():
    rng = np.random.default_rng(6)
    return rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 3)).astype(np.float32)


@pytest.mark.parametrize("framework", ["torch", "tensorflow", "paddle"])
def test_layer_integrated_gradients_over_several_layers_equal_captum(framework, tmp_path):
    pytest.importorskip(framework)
    from xai_core.testing.twins import two_input_weights

    weights = two_input_weights(seed=2)
    a, b = _two_inputs()
    reference = twin("torch", "two_input", weights)
    theirs = LayerIntegratedGradients(reference, [reference.a, reference.b]).attribute(
        (torch.from_numpy(a), torch.from_numpy(b)), target=1
    )
    model = twin(framework, "two_input", weights)
    ours = xai_core.explain(model, (a, b), "integrated_gradients", layer=["a", "b"], target=1)
    assert ours.layer == ["a", "b"]
    for name, want in zip(["a", "b"], theirs):
        np.testing.assert_allclose(ours.attributions[name], want.detach().numpy(), atol=1e-5)
    # both layers move together: completeness holds for the sum over both layers
    assert np.abs(ours.convergence_delta).max() < 1e-2 * np.abs(ours.predictions).max()
    alone = xai_core.explain(model, (a, b), "integrated_gradients", layer="a", target=1)
    assert not np.allclose(alone.attributions, ours.attributions["a"])
    ours.save(tmp_path / "two.npz")
    loaded = xai_core.Explanation.load(tmp_path / "two.npz")
    assert loaded.layer == ["a", "b"]
    np.testing.assert_array_equal(loaded.attributions["b"], ours.attributions["b"])
    with pytest.raises(xai_core.XaiError, match="one attribution per layer"):
        ours.plot()
    with pytest.raises(xai_core.XaiError, match="attributes to layer"):
        xai_core.evaluate(model, ours, "deletion")


def test_layers_on_one_path_are_refused_saying_why(net):
    with pytest.raises(xai_core.GradientNotReachedError, match="parallel paths"):
        xai_core.explain(net, X, "integrated_gradients", layer=["conv1", "conv2"], target=TARGET)
    with pytest.raises(xai_core.OptionError, match="twice"):
        xai_core.explain(net, X, "integrated_gradients", layer=["conv1", "conv1"])
