"""The PyTorch backend: conformance kit, tensors in, dtype/device, state restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai_core
from xai_core.testing import AdapterConformance

from conftest import torch_state
from models import images, tabular, torch_cnn, torch_mlp


class TestTorchMLPConformance(AdapterConformance):
    layer = "fc1"

    def make_model(self):
        model = torch_mlp()
        model.train()  # the kit checks that the user's mode comes back
        return model

    def make_inputs(self):
        return tabular(3)

    def expected_activation(self, model, inputs, layer):
        with torch.no_grad():
            return model.fc1(torch.from_numpy(inputs)).numpy()

    def model_state(self, model):
        return torch_state(model)


class TestTorchCNNConformance(AdapterConformance):
    layer = "conv2"

    def make_model(self):
        return torch_cnn()

    def make_inputs(self):
        return images(3)

    def make_wrong_inputs(self):
        return np.repeat(images(3), 3, axis=1)  # 3 channels for a 1-channel conv

    def expected_activation(self, model, inputs, layer):
        with torch.no_grad():
            x = model.pool(model.relu1(model.conv1(torch.from_numpy(inputs))))
            return model.conv2(x).numpy()

    def model_state(self, model):
        return torch_state(model)


def test_tensor_inputs_give_the_numpy_answer():
    model, x = torch_cnn(), images(3)
    from_numpy = xai_core.explain(model, x, "saliency")
    from_tensor = xai_core.explain(model, torch.from_numpy(x), "saliency")
    assert isinstance(from_tensor.attributions, np.ndarray)
    np.testing.assert_array_equal(from_numpy.attributions, from_tensor.attributions)


def test_tensor_that_requires_grad_is_left_alone():
    model = torch_mlp()
    x = torch.from_numpy(tabular(2)).requires_grad_(True)
    xai_core.explain(model, x, "saliency")
    assert x.grad is None and x.requires_grad


def test_eval_mode_during_explanation_user_mode_after():
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(6, 3)
            self.dropout = torch.nn.Dropout(0.9)

        def forward(self, x):
            seen.append((self.training, self.dropout.training))
            return self.fc(self.dropout(x))

    model = Probe()
    model.train()
    model.fc.eval()  # a mixed state must come back exactly
    a = xai_core.explain(model, tabular(4), "saliency", target=0)
    b = xai_core.explain(model, tabular(4), "saliency", target=0)
    np.testing.assert_array_equal(a.attributions, b.attributions)  # dropout was off
    assert all(flags == (False, False) for flags in seen)
    assert model.training and model.dropout.training and not model.fc.training


def test_a_module_with_its_own_train_gets_model_eval():
    """The eval switch writes plain `training` flags directly; a class that overrides
    `train` (here: keeping its BatchNorm frozen) must still see its `train(False)`."""
    calls = []

    class FrozenNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(6, 3)
            self.norm = torch.nn.BatchNorm1d(3)

        def train(self, mode=True):
            calls.append(mode)
            super().train(mode)
            self.norm.eval()  # frozen statistics, whatever the mode
            return self

        def forward(self, x):
            return self.norm(self.fc(x))

    model = torch.nn.Sequential(FrozenNorm(), torch.nn.ReLU())
    model.train()
    calls.clear()
    xai_core.explain(model, tabular(4), "saliency", target=0)
    assert calls == [False]  # model.eval() reached the override
    assert model.training and model[0].training and not model[0].norm.training


@pytest.mark.parametrize(
    "method", ["saliency", "integrated_gradients", "layer_gradient_x_activation"]
)
def test_explaining_inside_no_grad_works_and_leaves_it_on(method):
    """Inside the user's `torch.no_grad()` the gradient pass turns grad mode on for
    itself, and it is off again after (the closed form: a linear model's weights)."""
    model = torch.nn.Sequential(torch.nn.Linear(6, 3))
    options = {"layer": "0"} if method.startswith("layer") else {}
    with torch.no_grad():
        got = xai_core.explain(model, tabular(2), method, target=1, **options)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    if method == "saliency":
        np.testing.assert_allclose(
            got.attributions,
            np.abs(model[0].weight[1].detach().numpy())[None].repeat(2, 0),
            rtol=1e-6,
        )
    assert np.isfinite(got.attributions).all() and np.abs(got.attributions).sum() > 0


def test_outputs_of_a_tensor_subclass_take_the_public_autograd_call():
    """Plain tensors go straight to the autograd engine (skipping the checks of a seed
    built here); a tensor subclass keeps its `__torch_function__`, so `torch.autograd.grad`
    must be the one that runs for it. Both give the closed form of a linear model."""
    seen = []

    class Logged(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            seen.append(getattr(func, "__name__", str(func)))
            return super().__torch_function__(func, types, args, kwargs or {})

    linear = torch.nn.Linear(6, 3)

    class Subclassed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = linear

        def forward(self, x):
            return self.fc(x).as_subclass(Logged)

    weights = linear.weight.detach().numpy()
    for model in (linear, Subclassed()):
        seen.clear()
        got = xai_core.explain(model, tabular(3), "saliency", target=2, abs=False)
        np.testing.assert_allclose(got.attributions, np.tile(weights[2], (3, 1)), rtol=1e-6)
        assert ("grad" in seen) == (model is not linear)


def test_state_restored_after_an_error_inside_the_model():
    class Fails(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(6, 3)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            if torch.is_grad_enabled():  # the gradient pass fails, a forward would work
                raise RuntimeError("boom")
            return self.fc(x)

    model = Fails()
    model.train()
    for p in model.parameters():
        p.requires_grad_(False)
    model.fc.bias.requires_grad_(True)
    before = torch_state(model)
    # the gradient pass is the first pass (it also gives the predictions), so its error is
    # said as the model refusing the inputs, with the model's own error chained
    with pytest.raises(xai_core.XaiError, match="boom") as raised:
        xai_core.explain(model, tabular(2), "saliency")
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert torch_state(model) == before


def test_float64_model_gets_float64_inputs():
    model = torch_mlp().double()
    expl = xai_core.explain(model, tabular(2), "saliency", abs=False)
    assert expl.attributions.dtype == np.float64


def test_layers_lists_leaves_with_parameter_counts():
    layers = xai_core.adapt(torch_cnn()).layers()
    by_name = {layer.name: layer for layer in layers}
    assert list(by_name) == ["conv1", "relu1", "pool", "conv2", "relu2", "gap", "flatten", "fc"]
    assert by_name["conv1"].n_params == 8 * 1 * 9 + 8
    assert by_name["conv1"].kind == "Conv2d"
    assert by_name["fc"].n_params == 16 * 10 + 10


def test_unknown_layer_lists_the_model_layers():
    adapter = xai_core.adapt(torch_cnn())
    with pytest.raises(xai_core.UnknownLayerError) as info:
        adapter.capture(images(2), ["conv3"])
    assert "conv3" in str(info.value) and "conv1" in str(info.value) and "fc" in str(info.value)


class WritesToItsInput(torch.nn.Module):
    """A model that doubles its input in place before using it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x.mul_(2.0)
        return self.fc(x)


@pytest.mark.parametrize("method, options", [("activations", {"layers": ["fc"]}), ("saliency", {})])
def test_a_model_writing_to_its_input_is_a_clear_error(method, options):
    # torch.from_numpy shares memory (no copy per call), so the caller's array sees the
    # write, as it would calling the model directly; the error says so and how to fix it
    model = WritesToItsInput()
    before = torch_state(model)
    for x in (tabular(3), torch.from_numpy(tabular(3))):
        with pytest.raises(xai_core.InputError, match="in place") as info:
            xai_core.explain(model, x, method, **options)
        assert "x = x.clone()" in str(info.value)
        assert torch_state(model) == before
