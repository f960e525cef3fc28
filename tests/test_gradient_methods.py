"""SmoothGrad, Integrated Gradients, GradientSHAP: vs Captum, closed forms, completeness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, Saliency

import xai_core

from models import images, tabular, torch_cnn, torch_linear
from reference_checks import assert_close

RTOL = 1e-5


def captum_ig(model, x, target, baselines, n_steps, rule, batch=None):
    ig = IntegratedGradients(model)
    attr, delta = ig.attribute(
        torch.from_numpy(x),
        baselines=baselines,
        target=torch.tensor(target),
        n_steps=n_steps,
        method=rule,
        internal_batch_size=batch,
        return_convergence_delta=True,
    )
    return attr.detach().numpy(), delta.detach().numpy()


# -- Integrated Gradients -----------------------------------------------------------------
@pytest.mark.parametrize(
    "rule", ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle"]
)
def test_ig_equals_captum_for_each_rule(rule):
    model, x = torch_cnn(), images(4)
    target = [1, 3, 5, 7]
    expl = xai_core.explain(
        model, x, "integrated_gradients", target=target, n_steps=20, integration=rule
    )
    attr, delta = captum_ig(model, x, target, 0.0, 20, rule)
    assert_close(expl.attributions, attr)
    np.testing.assert_allclose(expl.convergence_delta, delta, atol=1e-5 * np.abs(attr).sum())


def test_ig_trapezoid_is_the_true_rule_captum_scales_it_by_n_minus_1_over_n():
    model, x, n = torch_cnn(), images(3), 16
    expl = xai_core.explain(
        model, x, "integrated_gradients", n_steps=n, integration="riemann_trapezoid"
    )
    attr, _ = captum_ig(model, x, expl.target.tolist(), 0.0, n, "riemann_trapezoid")
    assert_close(expl.attributions, attr * n / (n - 1))


@pytest.mark.parametrize("batch", [None, 7, 64])
def test_ig_with_per_sample_baselines_and_internal_batch_size_equals_captum(batch):
    model, x = torch_cnn(), images(4)
    baselines = np.random.default_rng(5).uniform(0, 0.3, x.shape).astype(np.float32)
    expl = xai_core.explain(
        model, x, "integrated_gradients", baselines=baselines, internal_batch_size=batch
    )
    attr, delta = captum_ig(
        model, x, expl.target.tolist(), torch.from_numpy(baselines), 50, "gausslegendre", batch
    )
    assert_close(expl.attributions, attr)
    np.testing.assert_allclose(expl.convergence_delta, delta, atol=1e-5 * np.abs(attr).sum())


def test_ig_baselines_broadcast_from_a_scalar_or_one_sample():
    model, x = torch_cnn(), images(3)
    one = np.full((1, 1, 8, 8), 0.2, np.float32)
    a = xai_core.explain(model, x, "integrated_gradients", baselines=0.2, target=2)
    b = xai_core.explain(model, x, "integrated_gradients", baselines=one, target=2)
    c = xai_core.explain(model, x, "integrated_gradients", baselines=one[0], target=2)
    d = xai_core.explain(
        model, x, "integrated_gradients", baselines=torch.from_numpy(one), target=2
    )
    ref, _ = captum_ig(model, x, [2, 2, 2], 0.2, 50, "gausslegendre")
    for expl in (a, b, c, d):
        assert_close(expl.attributions, ref)


def test_ig_closed_form_on_a_linear_model():
    model, x = torch_linear(), tabular(4, d=5)
    w = model[0].weight.detach().numpy()
    b = np.random.default_rng(2).normal(size=(1, 5)).astype(np.float32)
    target = np.array([0, 2, 1, 2])
    for rule in ("gausslegendre", "riemann_left", "riemann_trapezoid"):
        expl = xai_core.explain(
            model,
            x,
            "integrated_gradients",
            baselines=b,
            target=target,
            n_steps=7,
            integration=rule,
        )
        assert_close(expl.attributions, w[target] * (x - b), rtol=1e-5)
        np.testing.assert_allclose(expl.convergence_delta, 0, atol=1e-5)


def test_ig_completeness_on_the_cnn():
    model, x = torch_cnn(seed=3), images(6, seed=4)
    expl = xai_core.explain(model, x, "integrated_gradients", n_steps=50)
    with torch.no_grad():
        gap = model(torch.from_numpy(x)) - model(torch.zeros_like(torch.from_numpy(x)))
    gap = gap.numpy()[np.arange(len(x)), expl.target]
    assert np.all(np.abs(expl.convergence_delta) <= 0.01 * np.abs(gap))


# -- SmoothGrad ----------------------------------------------------------------------------
def documented_noise(x, stdevs, n_samples, seed):
    """The noisy inputs as the smoothgrad docstring specifies them."""
    rng = np.random.default_rng(seed)
    sigma = stdevs * (x.max(axis=(1, 2, 3), keepdims=True) - x.min(axis=(1, 2, 3), keepdims=True))
    sigma = sigma.astype(np.float32)
    return [x + rng.standard_normal(x.shape, dtype=np.float32) * sigma for _ in range(n_samples)]


@pytest.mark.parametrize("variant", ["smoothgrad", "smoothgrad_sq", "vargrad"])
@pytest.mark.parametrize("multiply", [False, True])
def test_smoothgrad_equals_captum_saliency_on_the_documented_noise(variant, multiply):
    model, x, target = torch_cnn(), images(3), [4, 5, 6]
    expl = xai_core.explain(
        model,
        x,
        "smoothgrad",
        target=target,
        n_samples=6,
        stdevs=0.2,
        seed=11,
        variant=variant,
        multiply_by_inputs=multiply,
        internal_batch_size=5,
    )
    per_draw = []
    for noisy in documented_noise(x, 0.2, 6, 11):
        g = Saliency(model).attribute(
            torch.from_numpy(noisy), target=torch.tensor(target), abs=False
        )
        g = g.detach().numpy().astype(np.float64)
        per_draw.append(np.abs(g * noisy if multiply else g))
    per_draw = np.stack(per_draw)
    reference = {
        "smoothgrad": per_draw.mean(0),
        "smoothgrad_sq": (per_draw**2).mean(0),
        "vargrad": per_draw.var(0),
    }[variant]
    assert_close(expl.attributions, reference, rtol=1e-4 if variant == "vargrad" else RTOL)


def test_smoothgrad_closed_form_on_a_linear_model():
    model, x = torch_linear(), tabular(3, d=5)
    w = model[0].weight.detach().numpy()
    expl = xai_core.explain(model, x, "smoothgrad", target=1, n_samples=8, seed=0)
    assert_close(expl.attributions, np.tile(np.abs(w[1]), (3, 1)))
    var = xai_core.explain(model, x, "smoothgrad", target=1, n_samples=8, seed=0, variant="vargrad")
    np.testing.assert_allclose(var.attributions, 0, atol=1e-6)


def test_seeded_runs_repeat_and_unseeded_runs_record_their_seed():
    model, x = torch_cnn(), images(2)
    a = xai_core.explain(model, x, "smoothgrad", n_samples=4, seed=3)
    b = xai_core.explain(model, x, "smoothgrad", n_samples=4, seed=3, internal_batch_size=3)
    c = xai_core.explain(model, x, "smoothgrad", n_samples=4, seed=4)
    assert_close(b.attributions, a.attributions)
    assert not np.allclose(a.attributions, c.attributions)
    free = xai_core.explain(model, x, "smoothgrad", n_samples=4)
    again = xai_core.explain(model, x, "smoothgrad", n_samples=4, seed=free.options["seed"])
    np.testing.assert_array_equal(free.attributions, again.attributions)


# -- GradientSHAP ----------------------------------------------------------------------------
def test_gradient_shap_matches_the_documented_draws_with_captum_gradients():
    model, x, target = torch_cnn(), images(3), [0, 1, 2]
    background = images(5, seed=9)
    expl = xai_core.explain(
        model,
        x,
        "gradient_shap",
        target=target,
        background=background,
        n_samples=7,
        stdevs=0.05,
        seed=2,
        internal_batch_size=4,
    )
    rng = np.random.default_rng(2)
    rows = rng.integers(0, 5, (7, 3))
    alphas = rng.uniform(0, 1, (7, 3)).astype(np.float32)
    total = np.zeros(x.shape)
    for s in range(7):
        noisy = x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(0.05)
        base = background[rows[s]]
        point = base + alphas[s].reshape(3, 1, 1, 1) * (noisy - base)
        g = Saliency(model).attribute(
            torch.from_numpy(point), target=torch.tensor(target), abs=False
        )
        total += g.detach().numpy() * (noisy - base)
    assert_close(expl.attributions, total / 7)


def test_gradient_shap_closed_form_on_a_linear_model():
    model, x = torch_linear(), tabular(4, d=5)
    w = model[0].weight.detach().numpy()
    one = tabular(1, d=5, seed=8)
    exact = xai_core.explain(
        model, x, "gradient_shap", background=one, target=2, n_samples=3, seed=0
    )
    assert_close(exact.attributions, w[2] * (x - one))
    np.testing.assert_allclose(exact.convergence_delta, 0, atol=1e-5)
    background = tabular(50, d=5, seed=8)
    many = xai_core.explain(
        model, x, "gradient_shap", background=background, target=2, n_samples=4000, seed=0
    )
    expected = w[2] * (x - background.mean(0))
    # the mean of 4000 draws from 50 rows: within a few standard errors of the expectation
    spread = np.abs(w[2]) * background.std(0) / np.sqrt(4000)
    assert np.all(np.abs(many.attributions - expected) <= 5 * spread + 1e-6)


# -- memory bound and errors -------------------------------------------------------------------
@pytest.mark.parametrize(
    "method, options",
    [
        ("integrated_gradients", {"n_steps": 50}),
        ("smoothgrad", {"n_samples": 20, "seed": 0}),
        ("gradient_shap", {"n_samples": 20, "seed": 0, "background": images(4, seed=2)}),
    ],
)
def test_no_call_sees_more_than_internal_batch_size_rows(gradient_rows, method, options):
    sizes = gradient_rows
    free = xai_core.explain(torch_cnn(), images(6), method, **options)
    sizes.clear()
    bounded = xai_core.explain(torch_cnn(), images(6), method, internal_batch_size=16, **options)
    # the samples lead the first call (it gives their predictions: no pass of its own) and
    # IG's shared baseline rides along (its output, for the convergence delta)
    lead = {"integrated_gradients": 6 + 1, "smoothgrad": 6}.get(method, 0)
    blocks = 6 * (options.get("n_steps") or options["n_samples"])
    assert max(sizes) <= 16 and sum(sizes) == blocks + lead
    assert_close(bounded.attributions, free.attributions)


@pytest.mark.parametrize(
    "method, options, fragment",
    [
        ("integrated_gradients", {"n_steps": 0}, "n_steps"),
        ("integrated_gradients", {"n_steps": -5}, "n_steps"),
        ("integrated_gradients", {"n_steps": 1, "integration": "riemann_trapezoid"}, "n_steps"),
        ("integrated_gradients", {"integration": "simpson"}, "integration must be one of"),
        ("smoothgrad", {"n_samples": 0}, "n_samples"),
        ("smoothgrad", {"stdevs": -1}, "stdevs"),
        ("smoothgrad", {"variant": "smooth"}, "variant"),
        ("smoothgrad", {"seed": -2}, "seed"),
        ("gradient_shap", {}, "background"),
    ],
)
def test_bad_options(method, options, fragment):
    with pytest.raises(xai_core.OptionError, match=fragment):
        xai_core.get_explainer(method, **options)


def test_baselines_that_do_not_broadcast():
    with pytest.raises(xai_core.OptionError, match="do not broadcast"):
        xai_core.explain(torch_cnn(), images(2), "integrated_gradients", baselines=np.zeros((3, 8)))


def test_background_with_the_wrong_feature_shape():
    with pytest.raises(xai_core.OptionError, match=r"each input sample has shape \(1, 8, 8\)"):
        xai_core.explain(torch_cnn(), images(2), "gradient_shap", background=np.zeros((5, 1, 7, 7)))
