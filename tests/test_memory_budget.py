"""Without `internal_batch_size` the core cuts calls to a stated byte budget, and an
allocation failure is an `XaiError` that says what to set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai_core
from xai_core.batching import CALL_BYTES_ENV, DEFAULT_CALL_BYTES

from conftest import torch_state
from models import images, torch_cnn
from real_models import resnet


class HungryModel(torch.nn.Module):
    """Asks the allocator for far more memory than a batch of this size can get."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        if len(x) > 8:
            torch.empty(len(x) * 2**40)  # a real allocator failure, not a mock
        return self.fc(x)


def test_an_allocation_failure_says_to_set_internal_batch_size():
    model = HungryModel().eval()
    x = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)
    before = torch_state(model)
    with pytest.raises(xai_core.XaiError, match="internal_batch_size"):
        xai_core.explain(model, x, "integrated_gradients", n_steps=10)
    assert torch_state(model) == before
    expl = xai_core.explain(model, x, "integrated_gradients", n_steps=10, internal_batch_size=8)
    assert np.isfinite(expl.attributions).all()


def test_calls_are_cut_to_the_byte_budget_without_changing_results(monkeypatch, gradient_rows):
    model, x = torch_cnn(), images(4)  # 256 bytes per row
    whole = xai_core.explain(model, x, "integrated_gradients", n_steps=20, internal_batch_size=80)
    gradient_rows.clear()
    monkeypatch.setenv(CALL_BYTES_ENV, str(256 * 12))  # 12 rows: 3 blocks of 4 per call
    cut = xai_core.explain(model, x, "integrated_gradients", n_steps=20)
    # 80 path rows, and the 4 samples and their shared baseline riding in the first call
    assert max(gradient_rows) == 12 and sum(gradient_rows) == 80 + 4 + 1
    np.testing.assert_allclose(cut.attributions, whole.attributions, rtol=1e-5, atol=1e-7)


def test_the_default_budget_bounds_a_resnet_call():
    """256 images of 3 x 64 x 64 with 50 IG steps were one 12,800-row call (13 GB)."""
    from xai_core.batching import BatchedModel

    x = np.zeros((256, 3, 64, 64), np.float32)
    rows = BatchedModel(xai_core.adapt(resnet())).rows_per_call(x)
    assert rows * x[0].nbytes <= DEFAULT_CALL_BYTES and rows >= 16


def test_a_bad_budget_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(CALL_BYTES_ENV, "lots")
    with pytest.raises(xai_core.XaiError, match=CALL_BYTES_ENV):
        xai_core.explain(torch_cnn(), images(2), "saliency")
