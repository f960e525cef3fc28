"""A layer that returns a tuple (Captum's layer methods take it whole): each of its
tensors is named "layer[i]", as activations names them, for every layer method; the
whole tuple is the list of its elements, replaced together. Compared with Captum's
LayerIntegratedGradients, a closed form, and the same layer in Keras and Paddle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import LayerIntegratedGradients

import xai_core

RNG = np.random.default_rng(8)
W = {
    "p": RNG.normal(0, 0.6, (6, 4)).astype(np.float32),
    "q": RNG.normal(0, 0.6, (6, 4)).astype(np.float32),
    "out": RNG.normal(0, 0.6, (3, 6)).astype(np.float32),
}
X = RNG.normal(size=(5, 4)).astype(np.float32)


def torch_net():
    class Split(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Linear(4, 6, bias=False)
            self.q = torch.nn.Linear(4, 6, bias=False)

        def forward(self, x):
            return torch.relu(self.p(x)), torch.tanh(self.q(x))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.split = Split()
            self.out = torch.nn.Linear(6, 3, bias=False)

        def forward(self, x):
            h, g = self.split(x)
            return self.out(h * g)

    net = Net()
    with torch.no_grad():
        net.split.p.weight.copy_(torch.from_numpy(W["p"]))
        net.split.q.weight.copy_(torch.from_numpy(W["q"]))
        net.out.weight.copy_(torch.from_numpy(W["out"]))
    return net.eval()


def keras_net():
    import keras

    class Split(keras.layers.Layer):
        def __init__(self):
            super().__init__(name="split")
            self.p = keras.layers.Dense(6, use_bias=False, name="p")
            self.q = keras.layers.Dense(6, use_bias=False, name="q")

        def call(self, x):
            return keras.ops.relu(self.p(x)), keras.ops.tanh(self.q(x))

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.split = Split()
            self.out = keras.layers.Dense(3, use_bias=False, name="out")

        def call(self, x):
            h, g = self.split(x)
            return self.out(h * g)

    net = Net()
    net(X[:1])
    net.split.p.set_weights([W["p"].T])
    net.split.q.set_weights([W["q"].T])
    net.out.set_weights([W["out"].T])
    return net


def paddle_net():
    import paddle

    class Split(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.p = paddle.nn.Linear(4, 6, bias_attr=False)
            self.q = paddle.nn.Linear(4, 6, bias_attr=False)

        def forward(self, x):
            return paddle.nn.functional.relu(self.p(x)), paddle.tanh(self.q(x))

    class Net(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.split = Split()
            self.out = paddle.nn.Linear(6, 3, bias_attr=False)

        def forward(self, x):
            h, g = self.split(x)
            return self.out(h * g)

    net = Net()
    net.split.p.weight.set_value(W["p"].T)
    net.split.q.weight.set_value(W["q"].T)
    net.out.weight.set_value(W["out"].T)
    net.eval()
    return net


BUILD = {"torch": torch_net, "tensorflow": keras_net, "paddle": paddle_net}


@pytest.mark.parametrize("framework", ["torch", "tensorflow", "paddle"])
def test_the_whole_tuple_equals_captum_s_layer_integrated_gradients(framework):
    pytest.importorskip(framework)
    net = torch_net()
    theirs = LayerIntegratedGradients(net, net.split).attribute(torch.from_numpy(X), target=2)
    ours = xai_core.explain(
        BUILD[framework](), X, "integrated_gradients", layer=["split[0]", "split[1]"], target=2
    )
    for name, want in zip(["split[0]", "split[1]"], theirs):
        np.testing.assert_allclose(ours.attributions[name], want.detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("framework", ["torch", "tensorflow", "paddle"])
def test_one_tensor_of_a_tuple_has_the_closed_form_gradient(framework):
    pytest.importorskip(framework)
    model = BUILD[framework]()
    ours = xai_core.explain(model, X, "saliency", layer="split[0]", abs=False, target=2)
    g = np.tanh(X @ W["q"].T)
    np.testing.assert_allclose(ours.attributions, W["out"][2] * g, rtol=1e-5, atol=1e-6)
    captured = xai_core.explain(model, X, "activations", layers=["split[1]"])
    np.testing.assert_allclose(captured.activations["split[1]"], g, rtol=1e-5, atol=1e-6)


def test_a_tuple_layer_named_whole_or_out_of_range_is_refused():
    net = torch_net()
    with pytest.raises(xai_core.XaiError, match="split\\[0\\]"):
        xai_core.explain(net, X, "integrated_gradients", layer="split", target=2)
    with pytest.raises(xai_core.XaiError, match="no element 5"):
        xai_core.explain(net, X, "saliency", layer="split[5]", target=2)
    with pytest.raises(xai_core.XaiError, match="use one of them"):
        xai_core.explain(net, X, "saliency", layer="split[0]:input", target=2)
