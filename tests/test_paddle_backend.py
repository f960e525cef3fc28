"""The PaddlePaddle backend: conformance, modes, hooks and flags restored."""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

import xai_core  # noqa: E402
from xai_core.testing import AdapterConformance  # noqa: E402
from xai_core.testing.twins import cnn_weights, mlp_weights, paddle_cnn, paddle_mlp  # noqa: E402

from conftest import paddle_state  # noqa: E402
from models import images, tabular  # noqa: E402

WEIGHTS = mlp_weights()


class TestPaddleMLP(AdapterConformance):
    layer = "fc1"

    def make_model(self):
        model = paddle_mlp(WEIGHTS)
        model.train()
        model.fc1.weight.stop_gradient = True  # a frozen layer stays frozen
        return model

    def make_inputs(self):
        return tabular(3)

    def expected_activation(self, model, inputs, layer):
        return inputs @ WEIGHTS["fc1.weight"].T + WEIGHTS["fc1.bias"]

    def model_state(self, model):
        return paddle_state(model)


class TestPaddleCNN(AdapterConformance):
    layer = "conv2"

    def make_model(self):
        return paddle_cnn(cnn_weights())

    def make_inputs(self):
        return images(3)

    def make_wrong_inputs(self):
        return images(3).transpose(0, 2, 3, 1)

    def model_state(self, model):
        return paddle_state(model)


def test_tensor_inputs_and_layer_names():
    model = paddle_cnn(cnn_weights())
    x = images(2)
    a = xai_core.explain(model, paddle.to_tensor(x), "saliency")
    b = xai_core.explain(model, x, "saliency")
    np.testing.assert_array_equal(a.attributions, b.attributions)
    names = [layer.name for layer in xai_core.adapt(model).layers()]
    assert names == ["conv1", "relu1", "pool", "conv2", "relu2", "gap", "flatten", "fc"]


def test_state_restored_after_an_error_in_forward():
    model = paddle_mlp(WEIGHTS)
    model.train()
    before = paddle_state(model)

    def explode(layer, inputs, output):
        raise RuntimeError("hook failed")

    handle = model.fc2.register_forward_post_hook(explode)
    try:
        with pytest.raises(xai_core.InputError):
            xai_core.explain(model, tabular(2), "saliency")
    finally:
        handle.remove()
    assert paddle_state(model) == before


def test_activations_equal_direct_computation():
    model, x = paddle_cnn(cnn_weights()), images(3)
    expl = xai_core.explain(model, x, "activations", layers=None)
    h = paddle.to_tensor(x)
    with paddle.no_grad():
        for name in ["conv1", "relu1", "pool", "conv2", "relu2", "gap", "flatten", "fc"]:
            h = getattr(model, name)(h)
            np.testing.assert_allclose(expl.activations[name], h.numpy(), rtol=1e-5, atol=1e-6)


class WritesToItsInput(paddle.nn.Layer):
    """A model that doubles its input in place before using it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = paddle.nn.Linear(6, 3)

    def forward(self, x):
        x.scale_(2.0)
        return self.fc(x)


@pytest.mark.parametrize("method, options", [("activations", {"layers": ["fc"]}), ("saliency", {})])
def test_a_model_writing_to_its_input_is_a_clear_error(method, options):
    model, x = WritesToItsInput(), tabular(3)
    original, before = x.copy(), paddle_state(model)
    with pytest.raises(xai_core.InputError, match="in place"):
        xai_core.explain(model, x, method, **options)
    np.testing.assert_array_equal(x, original)
    assert paddle_state(model) == before
