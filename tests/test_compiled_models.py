"""Compiled and static models, and gradients that do not reach: never silent zeros.

`torch.compile` wraps a module in a graph that ignores hooks added later, so Grad-CAM
used to see zero gradients; Paddle's `to_static(full_graph=True)` program in eval mode
has no backward pass, so every input gradient was None and came back as zeros.
References: Captum on the same compiled model; the same Paddle weights in dygraph.
"""

from __future__ import annotations

import numpy as np
import paddle
import pytest
import tensorflow as tf
import torch
from captum.attr import LayerGradCam, Saliency

import xai_core

from conftest import paddle_state, torch_state
from real_models import resnet

ALL_ZERO_FREE = ["saliency", "integrated_gradients", "smoothgrad", "gradient_shap"]


def images(n=2, size=16, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, channels, size, size)).astype(np.float32)


def compiled_resnet():
    # the "eager" backend: dynamo's graph capture (what drops the hooks) without C++ codegen
    return torch.compile(resnet(), backend="eager")


def test_grad_cam_on_a_compiled_resnet_equals_captum_on_the_same_compiled_model():
    model, x = compiled_resnet(), images()
    before = torch_state(model._orig_mod)
    expl = xai_core.explain(
        model, x, "grad_cam", layer="layer2.0.conv2", target=3, relu_attributions=True
    )
    reference = LayerGradCam(model, model._orig_mod.layer2[0].conv2).attribute(
        torch.from_numpy(x), target=3, relu_attributions=True
    )
    reference = reference[:, 0].detach().numpy()
    assert np.abs(reference).max() > 0
    np.testing.assert_allclose(expl.extras["layer_attributions"], reference, rtol=1e-4, atol=1e-6)
    # the compiled wrapper's own prefix is accepted too, and means the same layer
    prefixed = xai_core.explain(
        model, x, "grad_cam", layer="_orig_mod.layer2.0.conv2", target=3, relu_attributions=True
    )
    np.testing.assert_array_equal(prefixed.attributions, expl.attributions)
    assert torch_state(model._orig_mod) == before


def test_a_compiled_model_is_named_captured_and_differentiated_like_its_module():
    model, x = compiled_resnet(), images()
    names = [layer.name for layer in xai_core.adapt(model).layers()]
    assert "layer2.0.conv2" in names and not any(n.startswith("_orig_mod") for n in names)
    acts = xai_core.explain(model, x, "activations", layers=["layer1.0.bn1", "fc"])
    eager = xai_core.explain(model._orig_mod, x, "activations", layers=["layer1.0.bn1", "fc"])
    for name in ("layer1.0.bn1", "fc"):
        np.testing.assert_allclose(acts.activations[name], eager.activations[name], rtol=1e-5)
    layer_ig = xai_core.explain(
        model, x, "integrated_gradients", layer="layer2.0.conv1", target=1, n_steps=8
    )
    assert np.abs(layer_ig.attributions).max() > 0
    sal = xai_core.explain(model, x, "saliency", target=1)
    ref = Saliency(model).attribute(torch.from_numpy(x), target=1).numpy()
    np.testing.assert_allclose(sal.attributions, ref, rtol=1e-4, atol=1e-7)


def paddle_cnn(seed=0):
    paddle.seed(seed)
    return paddle.nn.Sequential(
        paddle.nn.Conv2D(3, 4, 3),
        paddle.nn.BatchNorm2D(4),
        paddle.nn.ReLU(),
        paddle.nn.Flatten(),
        paddle.nn.Linear(4 * 14 * 14, 3),
    )


@pytest.mark.parametrize("full_graph", [True, False])
@pytest.mark.parametrize("method", ALL_ZERO_FREE)
def test_paddle_to_static_models_explain_like_their_dygraph_twin(method, full_graph):
    x = images()
    options = {
        "gradient_shap": {"background": np.zeros((1, 3, 16, 16), np.float32), "seed": 0},
        "smoothgrad": {"seed": 0},
    }.get(method, {})
    static = paddle.jit.to_static(paddle_cnn(), full_graph=full_graph)  # trains: BN in train mode
    before = paddle_state(static)
    got = xai_core.explain(static, x, method, target=2, **options).attributions
    want = xai_core.explain(paddle_cnn(), x, method, target=2, **options).attributions
    scale = np.abs(want).max()
    assert scale > 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale)
    assert paddle_state(static) == before
    assert type(static.forward).__name__.endswith("StaticFunction")  # still static after


def test_paddle_mobilenet_to_static_saliency_equals_dygraph():
    paddle.seed(0)
    dygraph = paddle.vision.models.mobilenet_v3_small(num_classes=4)
    static = paddle.vision.models.mobilenet_v3_small(num_classes=4)
    static.set_state_dict(dygraph.state_dict())
    static = paddle.jit.to_static(static.eval(), full_graph=True)  # as deployed: eval, static
    x = images(2, 32)
    got = xai_core.explain(static, x, "saliency", target=1).attributions
    want = xai_core.explain(dygraph, x, "saliency", target=1).attributions
    scale = np.abs(want).max()
    assert scale > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


class IgnoresSecondInput(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)
        self.aux = torch.nn.Linear(4, 2)

    def forward(self, a, b):
        self.aux(a)  # an auxiliary head the prediction does not use
        return self.fc(a) + 0 * b.detach().sum(1, keepdim=True)


def test_torch_gradients_that_do_not_reach_are_errors_like_captum():
    model = IgnoresSecondInput()
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    with pytest.raises(RuntimeError, match="not have been used"):  # Captum refuses too
        Saliency(model).attribute((torch.from_numpy(a), torch.from_numpy(b)), target=0)
    before = torch_state(model)
    with pytest.raises(xai_core.GradientNotReachedError, match="does not reach input 1"):
        xai_core.explain(model, (a, b), "saliency", target=0)
    with pytest.raises(xai_core.GradientNotReachedError, match="layer 'aux'"):
        xai_core.explain(model, (a, b), "grad_cam", layer="aux", target=0)
    detached = torch.nn.Sequential(torch.nn.Linear(4, 2))
    detached.requires_grad_(False)  # frozen and fed a detached input: still has a path
    assert np.abs(xai_core.explain(detached, a, "saliency", target=0).attributions).max() > 0
    assert torch_state(model) == before


def test_keras_and_paddle_gradients_that_do_not_reach_are_errors():
    a = tf.keras.Input((4,))
    b = tf.keras.Input((4,))
    out = tf.keras.layers.Dense(2, name="fc")(a)
    keras_model = tf.keras.Model([a, b], out)
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    with pytest.raises(xai_core.GradientNotReachedError, match="does not reach input 1"):
        xai_core.explain(keras_model, [xa, xb], "saliency", target=0)

    class PaddleIgnores(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.fc = paddle.nn.Linear(4, 2)

        def forward(self, a, b):
            return self.fc(a)

    with pytest.raises(xai_core.GradientNotReachedError, match="does not reach input 1"):
        xai_core.explain(PaddleIgnores(), (xa, xb), "integrated_gradients", target=0)
