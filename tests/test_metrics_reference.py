"""Metrics against their references: closed forms on linear models, Captum's
`infidelity`/`sensitivity_max` and Quantus 0.6 on the same model, inputs and draws."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import xai_core
from xai_core.testing.twins import cnn_weights, torch_cnn

from models import quantus_cnn, quantus_digits, torch_linear


def _linear_positive(n_in: int = 8, seed: int = 0) -> torch.nn.Module:
    model = torch.nn.Linear(n_in, 1)
    with torch.no_grad():
        rng = np.random.default_rng(seed)
        model.weight.copy_(torch.from_numpy(rng.uniform(0.1, 1.0, (1, n_in)).astype(np.float32)))
        model.bias.fill_(0.3)
    return model


@pytest.fixture(scope="module")
def cnn() -> torch.nn.Module:
    return quantus_cnn()


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return quantus_digits()


# -- closed forms ------------------------------------------------------------------------


def test_infidelity_of_the_gradient_of_a_linear_model_is_zero():
    model = torch_linear(n_in=6, n_out=3)
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    e = xai_core.explain(model, x, "saliency", abs=False)
    scores = xai_core.evaluate(model, e, "infidelity", seed=0, noise_scale=0.5)
    assert scores.shape == (5,) and scores.dtype == np.float64
    assert np.all(scores < 1e-9), scores
    # while attributions that are not the gradient are unfaithful
    flipped = xai_core.explain(model, x, "saliency", abs=True)
    assert np.all(xai_core.evaluate(model, flipped, "infidelity", seed=0) >= 0)
    assert xai_core.evaluate(model, flipped, "infidelity", seed=0).max() > 1e-4


def test_deletion_and_insertion_of_a_positive_linear_model_are_monotone_and_exact():
    model = _linear_positive()
    x = np.random.default_rng(1).uniform(0.5, 1.5, (3, 8)).astype(np.float32)
    e = xai_core.explain(model, x, "integrated_gradients")
    deletion = xai_core.evaluate(model, e, "deletion", steps=8, details=True)
    insertion = xai_core.evaluate(model, e, "insertion", steps=8, details=True)
    assert deletion.curves.shape == (3, 9)
    assert np.all(np.diff(deletion.curves, axis=1) < 0)
    assert np.all(np.diff(insertion.curves, axis=1) > 0)
    # closed form: removing the features in order of w * x, the output falls by w_i x_i
    w = model.weight.detach().numpy()[0]
    contributions = w * x
    order = np.argsort(-contributions, axis=1)
    expected = (
        0.3
        + contributions.sum(1, keepdims=True)
        - np.concatenate(
            [np.zeros((3, 1)), np.cumsum(np.take_along_axis(contributions, order, 1), 1)], axis=1
        )
    )
    np.testing.assert_allclose(deletion.curves, expected, rtol=1e-5)
    np.testing.assert_allclose(deletion.curve_x, np.arange(9) / 8)
    np.testing.assert_allclose(
        deletion.scores, ((expected[:, 1:] + expected[:, :-1]) / 2 / 8).sum(1), rtol=1e-5
    )
    # deletion and insertion curves of a linear model mirror each other
    np.testing.assert_allclose(
        deletion.curves + insertion.curves,
        np.broadcast_to(deletion.curves[:, :1] + 0.3, (3, 9)),
        rtol=1e-5,
    )


def test_completeness_of_integrated_gradients_on_a_linear_model_is_zero_and_of_saliency_refused():
    model = torch_linear(n_in=6, n_out=3)
    x = np.random.default_rng(2).normal(size=(4, 6)).astype(np.float32)
    e = xai_core.explain(model, x, "integrated_gradients", baselines=0.5)
    assert np.all(xai_core.evaluate(model, e, "completeness") < 1e-5)
    # a method that misses mass is caught: halve the attributions
    e.attributions = e.attributions / 2
    np.testing.assert_allclose(xai_core.evaluate(model, e, "completeness"), 0.5, rtol=1e-4)
    with pytest.raises(xai_core.CapabilityError, match="baseline"):
        xai_core.evaluate(model, xai_core.explain(model, x, "saliency"), "completeness")


def test_sparseness_and_complexity_closed_forms():
    model = torch_linear(n_in=6, n_out=3)
    x = np.random.default_rng(2).normal(size=(2, 6)).astype(np.float32)
    e = xai_core.explain(model, x, "saliency")
    e.attributions = np.array([[1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], np.float32)
    sparse = xai_core.evaluate(model, e, "sparseness")
    assert sparse[0] == pytest.approx(5 / 6, abs=1e-5) and sparse[1] == pytest.approx(0, abs=1e-6)
    entropy = xai_core.evaluate(model, e, "complexity")
    assert entropy[0] == pytest.approx(0, abs=1e-9) and entropy[1] == pytest.approx(np.log(6))


# -- Captum ------------------------------------------------------------------------------


@pytest.mark.parametrize("normalize", [False, True])
def test_infidelity_equals_captum_given_the_same_perturbations(cnn, digits, normalize):
    from captum.metrics import infidelity

    e = xai_core.explain(cnn, digits, "integrated_gradients")
    k = 6
    noise = np.random.default_rng(9).normal(0, 0.2, (k, *digits.shape)).astype(np.float32)
    ours = xai_core.evaluate(
        cnn, e, "infidelity", perturbations=noise, normalize=normalize, details=True
    )
    # Captum perturbs repeat_interleave'd inputs: sample-major, draw-minor
    sample_major = torch.from_numpy(np.ascontiguousarray(noise.transpose(1, 0, 2, 3, 4)))
    sample_major = sample_major.reshape(-1, *digits.shape[1:])

    def perturb(inputs):
        return sample_major, inputs - sample_major

    theirs = infidelity(
        cnn,
        perturb,
        torch.from_numpy(digits),
        torch.from_numpy(e.attributions),
        target=torch.from_numpy(e.target),
        n_perturb_samples=k,
        normalize=normalize,
    )
    np.testing.assert_allclose(ours.scores, theirs.numpy(), rtol=1e-4, atol=1e-9)
    assert ours.options["n_perturb_samples"] == k


@pytest.mark.parametrize("norm_ord", ["fro", "inf"])
def test_sensitivity_max_equals_captum_given_the_same_perturbations(cnn, digits, norm_ord):
    from captum.attr import Saliency
    from captum.metrics import sensitivity_max

    e = xai_core.explain(cnn, digits, "saliency")
    k = 5
    noise = np.random.default_rng(3).uniform(-0.05, 0.05, (k, *digits.shape)).astype(np.float32)
    ours = xai_core.evaluate(cnn, e, "sensitivity_max", perturbations=noise, norm_ord=norm_ord)
    sample_major = torch.from_numpy(np.ascontiguousarray(noise.transpose(1, 0, 2, 3, 4)))
    sample_major = sample_major.reshape(-1, *digits.shape[1:])

    def perturb(inputs, perturb_radius=0.0):
        return inputs + sample_major

    theirs = sensitivity_max(
        Saliency(cnn).attribute,
        torch.from_numpy(digits),
        perturb_func=perturb,
        n_perturb_samples=k,
        norm_ord={"fro": "fro", "inf": float("inf")}[norm_ord],
        target=torch.from_numpy(e.target),
    )
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4)


def test_sensitivity_max_reexplains_every_sample_and_draw_in_batched_calls(
    cnn, digits, gradient_rows
):
    e = xai_core.explain(cnn, digits, "saliency")
    gradient_rows.clear()
    xai_core.evaluate(cnn, e, "sensitivity_max", seed=0, n_perturb_samples=10)
    assert sum(gradient_rows) == 10 * len(digits)
    assert len(gradient_rows) == 1  # one call, not one per sample or draw


# -- Quantus 0.6 -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quantus():
    return pytest.importorskip("quantus")


@pytest.mark.parametrize("features_in_step", [1, 4])
def test_deletion_curve_equals_quantus_pixel_flipping(cnn, digits, quantus, features_in_step):
    e = xai_core.explain(cnn, digits, "integrated_gradients")
    d = digits[0].size
    steps = -(-d // features_in_step)
    ours = xai_core.evaluate(cnn, e, "deletion", steps=steps, baseline=0.0, details=True)
    theirs = quantus.PixelFlipping(
        features_in_step=features_in_step,
        perturb_baseline=0.0,
        disable_warnings=True,
    )(
        model=cnn,
        x_batch=digits,
        y_batch=e.target,
        a_batch=e.attributions,
        device="cpu",
        softmax=False,
    )
    np.testing.assert_allclose(ours.curves[:, 1:], np.array(theirs), rtol=1e-5, atol=1e-6)


def test_faithfulness_correlation_equals_quantus_with_the_same_seed(cnn, digits, quantus):
    e = xai_core.explain(cnn, digits, "integrated_gradients")
    ours = xai_core.evaluate(
        cnn, e, "faithfulness_correlation", n_runs=20, subset_size=15, seed=123
    )
    np.random.seed(123)
    theirs = quantus.FaithfulnessCorrelation(
        nr_runs=20,
        subset_size=15,
        perturb_baseline=0.0,
        abs=False,
        normalise=False,
        return_aggregate=False,
        disable_warnings=True,
    )(model=cnn, x_batch=digits, y_batch=e.target, a_batch=e.attributions, device="cpu")
    np.testing.assert_allclose(ours, np.array(theirs), rtol=1e-5)


def test_faithfulness_correlation_refuses_a_subset_of_every_feature_as_quantus(
    cnn, digits, quantus
):
    e = xai_core.explain(cnn, digits[:2], "integrated_gradients")
    d = int(np.prod(digits.shape[1:]))
    with pytest.raises(ValueError):  # Quantus: subset_size must be smaller than the input
        quantus.FaithfulnessCorrelation(
            nr_runs=3, subset_size=d, perturb_baseline=0.0, disable_warnings=True
        )(model=cnn, x_batch=digits[:2], y_batch=e.target, a_batch=e.attributions, device="cpu")
    with pytest.raises(xai_core.OptionError, match=f"subset_size < {d}"):
        xai_core.evaluate(cnn, e, "faithfulness_correlation", subset_size=d, n_runs=3)
    assert np.isfinite(
        xai_core.evaluate(cnn, e, "faithfulness_correlation", subset_size=d - 1, n_runs=3, seed=0)
    ).all()


@pytest.mark.parametrize("name", ["Sparseness", "Complexity"])
def test_sparseness_and_complexity_equal_quantus_defaults(cnn, digits, quantus, name):
    e = xai_core.explain(cnn, digits, "integrated_gradients")
    # Quantus normalises by the batch's largest |a|, xai_core per sample: identical for one
    # sample at a time
    for i in range(len(digits)):
        theirs = getattr(quantus, name)(disable_warnings=True)(
            model=cnn,
            x_batch=digits[i : i + 1],
            y_batch=e.target[i : i + 1],
            a_batch=e.attributions[i : i + 1],
            device="cpu",
        )
        one = xai_core.explain(cnn, digits[i : i + 1], "integrated_gradients")
        ours = xai_core.evaluate(cnn, one, name.lower())
        np.testing.assert_allclose(ours, np.array(theirs), rtol=1e-6)


@pytest.mark.parametrize("metric", ["infidelity", "deletion", "sensitivity_max"])
def test_scores_do_not_depend_on_how_the_rows_are_cut(cnn, digits, metric):
    """One block per model call, a few, or all at once: the same numbers (the rows of a
    sample's copies travel side by side, and f(x) rides in the first call)."""
    e = xai_core.explain(cnn, digits, "saliency", abs=False)
    options = {"seed": 1} if metric != "deletion" else {"steps": 20}
    whole = xai_core.evaluate(cnn, e, metric, **options)
    for rows in (len(digits), 3 * len(digits), 7):
        cut = xai_core.evaluate(cnn, e, metric, internal_batch_size=rows, **options)
        np.testing.assert_allclose(cut, whole, rtol=1e-5, atol=1e-9, err_msg=str(rows))


@pytest.mark.parametrize("metric", ["infidelity", "completeness", "faithfulness_correlation"])
def test_an_explanation_scored_on_another_model_uses_that_models_outputs(digits, metric):
    """f(x) comes from the explanation only when the model still gives it: scored on a
    model with other weights, the scores are those of that model's own outputs."""
    a = torch_cnn(cnn_weights(seed=4)).eval()
    b = torch_cnn(cnn_weights(seed=5)).eval()
    e = xai_core.explain(a, digits, "integrated_gradients")
    options = {"completeness": {}, "infidelity": {"seed": 0}}.get(
        metric, {"seed": 0, "n_runs": 8, "subset_size": 10}
    )
    own = copy.copy(e)
    own.predictions = xai_core.explain(b, digits, "saliency", target=e.target).predictions
    np.testing.assert_allclose(
        xai_core.evaluate(b, e, metric, **options),
        xai_core.evaluate(b, own, metric, **options),
        rtol=1e-6,
    )
