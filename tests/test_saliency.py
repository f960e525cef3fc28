"""Saliency against Captum on the same model, and against the closed form on a linear model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import InputXGradient, Saliency

import xai_core

from models import images, tabular, torch_cnn, torch_linear


def captum(cls, model, x, target, **kw):
    return (
        cls(model)
        .attribute(torch.from_numpy(x), target=torch.tensor(target), **kw)
        .detach()
        .numpy()
    )


@pytest.mark.parametrize("abs_", [True, False])
def test_saliency_equals_captum_saliency(abs_):
    model, x = torch_cnn(), images(5)
    expl = xai_core.explain(model, x, "saliency", abs=abs_)
    reference = captum(Saliency, model, x, expl.target, abs=abs_)
    np.testing.assert_allclose(expl.attributions, reference, rtol=1e-5, atol=1e-7)


def test_gradient_times_input_equals_captum_input_x_gradient():
    model, x = torch_cnn(), images(5)
    target = [0, 3, 9, 2, 2]
    expl = xai_core.explain(model, x, "saliency", abs=False, multiply_by_inputs=True, target=target)
    reference = captum(InputXGradient, model, x, target)
    np.testing.assert_allclose(expl.attributions, reference, rtol=1e-5, atol=1e-7)


def test_linear_model_closed_form():
    model, x = torch_linear(), tabular(4, d=5)
    w = model[0].weight.detach().numpy()
    target = np.array([0, 1, 2, 1])
    grad = xai_core.explain(model, x, "saliency", abs=False, target=target).attributions
    np.testing.assert_allclose(grad, w[target], rtol=1e-6)
    sal = xai_core.explain(model, x, "saliency", target=target).attributions
    np.testing.assert_allclose(sal, np.abs(w[target]), rtol=1e-6)
    gxi = xai_core.explain(model, x, "saliency", abs=False, multiply_by_inputs=True, target=target)
    np.testing.assert_allclose(gxi.attributions, w[target] * x, rtol=1e-5)


def test_chunking_does_not_change_the_answer():
    model, x = torch_cnn(), images(7)
    whole = xai_core.explain(model, x, "saliency")
    chunked = xai_core.explain(model, x, "saliency", internal_batch_size=3)
    np.testing.assert_allclose(chunked.attributions, whole.attributions, rtol=1e-5, atol=1e-7)
    assert chunked.options["internal_batch_size"] == 3


def test_chunks_are_cut_by_the_core(gradient_rows):
    xai_core.explain(torch_cnn(), images(7), "saliency", internal_batch_size=3)
    assert gradient_rows == [3, 3, 1]
