"""Answers in time, and only numbers that mean something (issue 18, items 5 and 6):
evaluate refuses NaN attributions; huge but valid counts are refused before they
allocate, Gauss-Legendre with many nodes no longer sits in an O(n^3) solve, and a
zero-stride view of 2^40 elements is refused by its size before any element is read.

Memory is what the machine has free, so the tests fix it (8 GiB): what is refused then
does not depend on the machine the suite runs on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai_core
from xai_core_explainers.integrated_gradients import GAUSS_MAX, gauss_legendre, quadrature

from models import tabular, torch_linear

GIB = 1 << 30


@pytest.fixture
def eight_gib(monkeypatch):
    import xai_core.explainer
    import xai_core.validation

    monkeypatch.setattr(xai_core.explainer, "available_memory", lambda: 8 * GIB)
    monkeypatch.setattr(xai_core.validation, "available_memory", lambda: 8 * GIB)


def linear(n_in=6):
    return torch_linear(n_in, 3).eval()


# -- item 5 ------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", ["sparseness", "complexity", "deletion", "infidelity"])
def test_evaluate_refuses_nan_attributions(metric):
    model, x = linear(), tabular(3)
    explanation = xai_core.explain(model, x, "saliency")
    explanation.attributions[1, 2] = np.nan
    with pytest.raises(xai_core.InputError, match=r"NaN or inf \(samples \[1\]\)"):
        xai_core.evaluate(model, explanation, metric)


def test_evaluate_refuses_an_explanation_that_does_not_fit_its_inputs():
    model, x = linear(), tabular(3)
    explanation = xai_core.explain(model, x, "saliency")
    cut = explanation.__class__(**{**vars(explanation), "target": explanation.target[:2]})
    with pytest.raises(xai_core.InputError, match="2 target value"):
        xai_core.evaluate(model, cut, "sparseness")
    short = explanation.__class__(
        **{**vars(explanation), "attributions": explanation.attributions[:1]}
    )
    with pytest.raises(xai_core.InputError, match="do not fit"):
        xai_core.evaluate(model, short, "sparseness")
    bare = explanation.__class__(**{**vars(explanation), "inputs": None})
    with pytest.raises(xai_core.InputError, match="no inputs"):
        xai_core.evaluate(model, bare, "deletion")


@pytest.mark.parametrize(
    "methods, metrics", [(3, ["sparseness"]), (["saliency"], 5), ({"saliency": 3}, ["sparseness"])]
)
def test_compare_refuses_names_of_the_wrong_type(methods, metrics):
    with pytest.raises(xai_core.OptionError, match="methods|metrics"):
        xai_core.compare(linear(), tabular(2), methods, metrics)


# -- item 6 ------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [101, 150, 777, 1000])
def test_large_gauss_legendre_rules_equal_numpys(n):
    nodes, weights = gauss_legendre(n)
    reference_nodes, reference_weights = np.polynomial.legendre.leggauss(n)
    np.testing.assert_allclose(nodes, reference_nodes, rtol=0, atol=1e-14)
    # the end weights are tiny and ill-conditioned: NumPy and SciPy differ there by 1e-8 too
    np.testing.assert_allclose(weights, reference_weights, rtol=5e-8, atol=1e-15)


def test_integrated_gradients_with_20000_gauss_legendre_steps_is_exact_on_a_linear_model():
    nodes, weights = quadrature("gausslegendre", 20000)
    assert np.all(np.diff(nodes) > 0) and abs(weights.sum() - 1) < 1e-12
    model, x = linear(), tabular(2)
    explanation = xai_core.explain(model, x, "integrated_gradients", n_steps=20000, target=1)
    w = model[0].weight.detach().numpy()[1]
    np.testing.assert_allclose(explanation.attributions, x * w, rtol=1e-5, atol=1e-6)


def test_more_gauss_legendre_nodes_than_computed_point_to_the_riemann_rules():
    with pytest.raises(xai_core.OptionError, match="riemann_trapezoid"):
        xai_core.explain(linear(), tabular(1), "integrated_gradients", n_steps=GAUSS_MAX + 1)


HUGE = 2**31 - 1
BACKGROUND = tabular(4, seed=3)


@pytest.mark.parametrize(
    "method, options, name",
    [
        ("integrated_gradients", {"n_steps": HUGE, "integration": "riemann_left"}, "n_steps"),
        ("gradient_shap", {"n_samples": HUGE, "background": BACKGROUND}, "n_samples"),
        ("lime", {"n_samples": HUGE, "background": BACKGROUND}, "n_samples"),
        ("lime", {"n_samples": HUGE, "feature_mask": np.array([0, 0, 1, 1, 2, 2])}, "n_samples"),
        ("rise", {"n_masks": HUGE, "cell": 3}, "n_masks"),
    ],
)
def test_counts_that_cannot_be_held_are_refused_before_allocating(eight_gib, method, options, name):
    with pytest.raises(xai_core.OptionError, match=f"{name}={HUGE} needs .* GiB at once"):
        xai_core.explain(linear(), tabular(2), method, **options)


def test_infidelity_with_a_count_that_cannot_be_held_is_refused(eight_gib):
    model = linear()
    explanation = xai_core.explain(model, tabular(2), "saliency")
    with pytest.raises(xai_core.OptionError, match="n_perturb_samples=.* GiB at once"):
        xai_core.evaluate(model, explanation, "infidelity", n_perturb_samples=HUGE)


def test_a_zero_stride_view_is_refused_by_its_size_before_it_is_read(eight_gib):
    view = np.broadcast_to(np.zeros((1, 1), np.float64), (2**20, 2**20))  # 8 TiB, 8 bytes held
    with pytest.raises(xai_core.InputError, match="8192.0 GiB as a tensor"):
        xai_core.explain(torch.nn.Linear(2**20, 2), view, "saliency")
