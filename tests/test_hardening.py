"""What a careless user or a broken model does: every call is checked, every failure
is an XaiError, the model is left as it was (issue: hardening)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai_core

from conftest import torch_state
from models import tabular

NEEDS = {
    "gradient_shap": {"background": tabular(3, seed=5), "n_samples": 4, "seed": 0},
    "kernel_shap": {"background": tabular(3, seed=5), "n_samples": 40, "seed": 0},
    "lime": {"background": tabular(3, seed=5), "n_samples": 40, "seed": 0},
    "smoothgrad": {"n_samples": 4, "seed": 0},
    "integrated_gradients": {"n_steps": 4},
    "saliency": {},
}


class NaNAfter(torch.nn.Module):
    """Finite on the first `good` calls, NaN in one row after that."""

    def __init__(self, good: int = 0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(6, 3)
        self.good, self.calls = good, 0

    def forward(self, x):
        self.calls += 1
        out = self.fc(x)
        if self.calls > self.good:
            out = out.clone()
            out[-1, 0] = float("nan")
        return out


@pytest.mark.parametrize("method", list(NEEDS))
def test_nan_outputs_are_a_model_output_error(method):
    model = NaNAfter().eval()
    before = torch_state(model)
    with pytest.raises(xai_core.ModelOutputError, match="NaN or inf"):
        xai_core.explain(model, tabular(2), method, **NEEDS[method])
    assert torch_state(model) == before


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_nan_gradients_are_a_model_output_error(method):
    class SqrtAtZero(torch.nn.Module):
        def forward(self, x):
            return torch.sqrt(x.abs()).sum(1, keepdim=True)

    x = tabular(2)
    x[0, 0] = 0.0
    with pytest.raises(xai_core.ModelOutputError, match="gradients"):
        xai_core.explain(SqrtAtZero(), x, method, **NEEDS[method])


class ShrinksOnThirdCall(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(6, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.fc(x)
        return out[:-1] if self.calls >= 3 else out


@pytest.mark.parametrize("method", ["kernel_shap", "lime", "integrated_gradients"])
def test_a_wrong_batch_size_later_on_is_a_model_output_error(method):
    with pytest.raises(xai_core.ModelOutputError, match="one output row per input row"):
        xai_core.explain(
            ShrinksOnThirdCall(), tabular(3), method, internal_batch_size=4, **NEEDS[method]
        )


def test_float64_inputs_beyond_float32_say_so():
    torch.manual_seed(0)
    x = tabular(2).astype(np.float64)
    x[1, 2] = 1e300
    with pytest.raises(xai_core.ModelOutputError, match="beyond float32"):
        xai_core.explain(torch.nn.Linear(6, 2), x, "saliency")
