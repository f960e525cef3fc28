"""What the per-call path settles once or reads cheaply (issue 21) still behaves as if it
were worked out afresh on every call: options checked by type, the environment read live,
results that belong to the caller alone, a model edited between calls seen as it is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai_core
from xai_core.batching import CALL_BYTES_ENV, BatchedModel


class ReturnsItsInput(torch.nn.Module):
    """Autograd hands the output gradient back as the input gradient itself."""

    def forward(self, x):
        return x


def test_an_explanation_owns_its_arrays_even_when_autograd_returns_the_seed():
    x = np.zeros((2, 3), np.float32)
    first = xai_core.explain(ReturnsItsInput(), x, "saliency", abs=False, target=1)
    first.attributions[:] = 99.0  # the user's to change
    again = xai_core.explain(ReturnsItsInput(), x, "saliency", abs=False, target=1)
    np.testing.assert_array_equal(again.attributions, np.eye(3, dtype=np.float32)[[1, 1]])


@pytest.mark.parametrize("bad", [1, 1.0, np.float64(1.0)])
def test_options_checked_once_still_tell_true_from_one(bad):
    """`True == 1 == 1.0` and they hash alike: a cache of settled options keyed by value
    alone would let `abs=1` through after `abs=True`."""
    x = np.zeros((1, 3), np.float32)
    xai_core.explain(ReturnsItsInput(), x, "saliency", abs=True, target=0)
    with pytest.raises(xai_core.OptionError, match="abs must be True or False"):
        xai_core.explain(ReturnsItsInput(), x, "saliency", abs=bad, target=0)


def test_settled_options_are_a_copy_per_explainer():
    one = xai_core.get_explainer("integrated_gradients", n_steps=7)
    one.options["n_steps"] = 1000  # what the core does to per-input options, on its copy
    two = xai_core.get_explainer("integrated_gradients", n_steps=7)
    assert two.options["n_steps"] == 7


def test_the_call_budget_is_read_from_the_environment_on_every_call(monkeypatch):
    adapter = xai_core.adapt(ReturnsItsInput())
    x = np.zeros((64, 256), np.float32)  # 1 KiB per row
    monkeypatch.delenv(CALL_BYTES_ENV, raising=False)
    assert BatchedModel(adapter).rows_per_call(x) == 1024
    monkeypatch.setenv(CALL_BYTES_ENV, str(4 * 1024))
    assert BatchedModel(adapter).rows_per_call(x) == 4
    monkeypatch.setenv(CALL_BYTES_ENV, "")
    assert BatchedModel(adapter).rows_per_call(x) == 1024


def test_a_model_moved_to_another_dtype_between_calls_is_explained_in_it():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    x = np.random.default_rng(0).normal(size=(2, 3))
    as_float = xai_core.explain(model, x.astype(np.float32), "saliency", target=1)
    model.double()
    as_double = xai_core.explain(model, x, "saliency", target=1)
    assert as_double.attributions.dtype == np.float64
    xt = torch.from_numpy(x).requires_grad_(True)
    (expected,) = torch.autograd.grad(model(xt)[:, 1].sum(), xt)
    np.testing.assert_allclose(as_double.attributions, expected.abs().numpy(), rtol=1e-12)
    np.testing.assert_allclose(as_float.attributions, as_double.attributions, rtol=1e-5)


def test_a_model_switched_to_train_mode_between_calls_is_explained_in_eval_mode_again():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.9), torch.nn.Linear(8, 2))
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    model.eval()
    before = xai_core.explain(model, x, "saliency", target=0).attributions
    model.train()
    after = xai_core.explain(model, x, "saliency", target=0).attributions
    np.testing.assert_array_equal(before, after)  # dropout off: the same numbers
    assert model.training and model[1].training  # and the user's mode back
