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


class _ReturnsItsInput(paddle.nn.Layer):
    """Paddle's autograd may hand the output gradient back as the input gradient itself."""

    def forward(self, x):
        return x


def test_kept_seeds_are_never_handed_out_and_follow_targets_and_dtypes():
    """The one-hot output gradients of small calls are kept between calls: an
    explanation's arrays are still the user's to change, and each call gets the seed of
    its own targets, shape and dtype (closed forms: the identity and a linear layer)."""
    x = np.zeros((2, 3), np.float32)
    first = xai_core.explain(_ReturnsItsInput(), x, "saliency", abs=False, target=1)
    first.attributions[:] = 99.0
    again = xai_core.explain(_ReturnsItsInput(), x, "saliency", abs=False, target=1)
    np.testing.assert_array_equal(again.attributions, np.eye(3, dtype=np.float32)[[1, 1]])
    per_row = xai_core.explain(_ReturnsItsInput(), x, "saliency", abs=False, target=[2, 0])
    np.testing.assert_array_equal(per_row.attributions, np.eye(3, dtype=np.float32)[[2, 0]])
    paddle.seed(0)
    linear = paddle.nn.Linear(3, 4)
    for dtype in ("float32", "float64"):
        linear.to(dtype=dtype)
        got = xai_core.explain(linear, x.astype(dtype), "saliency", abs=False, target=3)
        weights = linear.weight.numpy()[:, 3]  # Paddle's Linear: (in, out)
        np.testing.assert_allclose(got.attributions, np.tile(weights, (2, 1)), rtol=1e-6)
        assert got.attributions.dtype == dtype


def test_a_neuron_explanation_leaves_no_hook_also_when_it_fails():
    """The layer's recording hooks (and a rule's) are removed after the call, and after a
    call that fails inside the model."""
    model = paddle_mlp(WEIGHTS)
    before = paddle_state(model)
    for method in ("saliency", "deeplift", "guided_backprop"):
        e = xai_core.explain(model, tabular(2), method, layer="fc1", neuron=1)
        assert np.abs(e.attributions).max() > 0
    with pytest.raises(xai_core.XaiError):
        xai_core.explain(model, tabular(2)[:, :3], "deeplift", layer="fc1", neuron=1)
    assert paddle_state(model) == before
    assert not any(
        layer._forward_pre_hooks or layer._forward_post_hooks for layer in model.sublayers()
    )
