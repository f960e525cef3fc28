"""Quantus options its own tests use that xai_core could not express before, each scored
by Quantus 0.6 on the same model, inputs and draws: Sparseness / Complexity with
`normalise` and `abs`, EffectiveComplexity, FaithfulnessCorrelation with Spearman and
Kendall similarity, MaxSensitivity's `return_nan_when_prediction_changes`, and MPRT's
layer orders (against the documented draws applied by hand)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from captum.attr import Saliency

import xai_core
from xai_core.testing.twins import cnn_weights, torch_cnn

from models import quantus_cnn, quantus_digits

quantus = pytest.importorskip("quantus")


@pytest.fixture(scope="module")
def cnn() -> torch.nn.Module:
    return quantus_cnn()


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return quantus_digits()


def quantus_call(metric, cnn, digits, e, **call):
    return np.array(
        metric(
            model=cnn,
            x_batch=digits,
            y_batch=e.target,
            a_batch=e.attributions,
            device="cpu",
            **call,
        ),
        np.float64,
    )


# -- complexity ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Sparseness", "Complexity", "EffectiveComplexity"])
@pytest.mark.parametrize("normalise, abs_", [(True, True), (False, True), (False, False)])
def test_complexity_metrics_equal_quantus_with_its_options(cnn, digits, name, normalise, abs_):
    metric = {"Sparseness": "sparseness", "Complexity": "complexity"}.get(
        name, "effective_complexity"
    )
    options = {"normalise": normalise, "abs": abs_}
    if name == "EffectiveComplexity":
        options["eps"] = 0.05 if normalise else 0.01  # a threshold inside the values' range
    # unnormalised, the batch is scored as a whole; normalised, Quantus divides by the
    # batch's largest |a| (xai_core per sample), so one sample at a time
    batches = [slice(None)] if not normalise else [slice(i, i + 1) for i in range(len(digits))]
    for part in batches:
        one = xai_core.explain(cnn, digits[part], "integrated_gradients")
        theirs = quantus_call(
            getattr(quantus, name)(disable_warnings=True, **options), cnn, digits[part], one
        )
        ours = xai_core.evaluate(cnn, one, metric, **options)
        if name == "Complexity" and not abs_:  # negative shares: NaN in both
            assert np.isnan(theirs).all() and np.isnan(ours).all()
            continue
        # signed values cancel in Quantus's float32 sums (xai_core sums in float64)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6 if abs_ else 5e-5)
    if name == "EffectiveComplexity":
        assert 0 < ours.min() and ours.max() < digits[0].size  # the threshold matters


# -- faithfulness correlation --------------------------------------------------------------
@pytest.mark.parametrize(
    "similarity, func",
    [("spearman", "correlation_spearman"), ("kendall", "correlation_kendall_tau")],
)
def test_faithfulness_correlation_rank_similarities_equal_quantus(cnn, digits, similarity, func):
    e = xai_core.explain(cnn, digits, "integrated_gradients")
    ours = xai_core.evaluate(
        cnn,
        e,
        "faithfulness_correlation",
        n_runs=25,
        subset_size=12,
        seed=7,
        similarity=similarity,
    )
    pearson = xai_core.evaluate(
        cnn, e, "faithfulness_correlation", n_runs=25, subset_size=12, seed=7
    )
    np.random.seed(7)  # Quantus draws its subsets from the global generator
    theirs = quantus_call(
        quantus.FaithfulnessCorrelation(
            nr_runs=25,
            subset_size=12,
            perturb_baseline=0.0,  # an array baseline: Quantus's "black" draws noise
            similarity_func=getattr(quantus.similarity_func, func),
            abs=False,
            normalise=False,
            return_aggregate=False,
            disable_warnings=True,
        ),
        cnn,
        digits,
        e,
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert not np.allclose(ours, pearson)  # the option changes the score
    with pytest.raises(xai_core.OptionError, match="similarity"):
        xai_core.evaluate(cnn, e, "faithfulness_correlation", similarity="cosine")


# -- max sensitivity: NaN when the prediction changes ---------------------------------------
def test_sensitivity_max_returns_nan_when_the_prediction_changes_as_quantus(digits):
    weights = cnn_weights(seed=3)
    weights["fc.bias"][:] = 0  # classes that move with the input (seen: sample 3's does)
    cnn = torch_cnn(weights).eval()
    k = 5
    noise = np.random.default_rng(3).uniform(-1, 1, (k, *digits.shape)).astype(np.float32)
    e = xai_core.explain(cnn, digits, "saliency", abs=False)
    draws = iter(noise)

    def given_noise(arr, indices, **kwargs):  # Quantus's perturb_func: the same draws
        return arr + next(draws).reshape(arr.shape)

    def saliency(model, inputs, targets, **kwargs):
        x = torch.from_numpy(np.asarray(inputs, np.float32))
        return Saliency(model).attribute(x, target=torch.as_tensor(targets), abs=False).numpy()

    results = {}
    for flag in (False, True):
        draws = iter(noise)
        theirs = quantus_call(
            quantus.MaxSensitivity(
                nr_samples=k,
                perturb_func=given_noise,
                return_nan_when_prediction_changes=flag,
                disable_warnings=True,
            ),
            cnn,
            digits,
            e,
            explain_func=saliency,
        )
        ours = xai_core.evaluate(
            cnn,
            e,
            "sensitivity_max",
            perturbations=noise,
            return_nan_when_prediction_changes=flag,
        )
        np.testing.assert_allclose(ours, theirs, rtol=1e-4)
        results[flag] = ours
    changed = np.isnan(results[True])
    assert changed.any() and not changed.all()  # the noise moves some classes, not all
    assert np.isfinite(results[False]).all()


# -- SmoothMPRT, EfficientMPRT, RandomLogit ---------------------------------------------------
LAYERS = ["conv1", "conv2", "fc"]  # the twin's layers with parameters, in execution order


def with_documented_draws(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy whose `reset_parameters` (what Quantus calls to randomise a layer) draws
    xai_core's documented numbers: uniform +-1/sqrt(fan_in) from default_rng([seed,
    position]). Quantus then randomises exactly as xai_core does."""
    import types

    copied = copy.deepcopy(model)
    for position, name in enumerate(LAYERS):
        module = getattr(copied, name)

        def draw(self, position=position):
            rng = np.random.default_rng([seed, position])
            bound = 1 / np.sqrt(np.prod(self.weight.shape[1:]))
            with torch.no_grad():
                for p in (self.weight, self.bias):
                    p.copy_(
                        torch.from_numpy(rng.uniform(-bound, bound, p.shape).astype(np.float32))
                    )

        module.reset_parameters = types.MethodType(draw, module)  # deepcopy rebinds it
    return copied


def saliency(model, inputs, targets, **kwargs):
    x = torch.from_numpy(np.asarray(inputs, np.float32))
    return Saliency(model).attribute(x, target=torch.as_tensor(targets), abs=True).numpy()


# -- MPRT layer orders ---------------------------------------------------------------------
@pytest.mark.parametrize("order", ["top_down", "bottom_up", "independent"])
def test_model_randomization_layer_orders_equal_quantus_mprt(cnn, digits, order):
    e = xai_core.explain(cnn, digits, "saliency")
    result = xai_core.evaluate(
        cnn, e, "model_randomization", seed=3, layer_order=order, details=True
    )
    metric = quantus.MPRT(layer_order=order, disable_warnings=True)
    metric(
        model=with_documented_draws(cnn, 3),
        x_batch=digits,
        y_batch=e.target,
        a_batch=e.attributions,
        device="cpu",
        explain_func=saliency,
    )
    theirs = {k: v for k, v in metric.evaluation_scores.items() if k != "original"}
    assert result.curve_labels == list(theirs)
    expected_order = LAYERS[::-1] if order == "top_down" else LAYERS
    assert result.curve_labels == expected_order
    np.testing.assert_allclose(result.curves, np.array(list(theirs.values())).T, rtol=1e-5)
    with pytest.raises(xai_core.OptionError, match="layer_order"):
        xai_core.evaluate(cnn, e, "model_randomization", layer_order="random")


def test_efficient_model_randomization_equals_quantus_emprt(cnn, digits):
    e = xai_core.explain(cnn, digits, "saliency")
    ours = xai_core.evaluate(cnn, e, "efficient_model_randomization", seed=6)
    theirs = quantus_call(
        quantus.EfficientMPRT(disable_warnings=True),
        with_documented_draws(cnn, 6),
        digits,
        e,
        explain_func=saliency,
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert np.isfinite(ours).all() and np.abs(ours).min() > 1e-3  # the entropy moved
    e.attributions = np.zeros_like(e.attributions)  # constant: entropy 0, nothing to rise from
    assert np.isnan(xai_core.evaluate(cnn, e, "efficient_model_randomization", seed=6)).all()


def test_smooth_model_randomization_equals_quantus_smooth_mprt(cnn, digits, monkeypatch):
    k, seed = 4, 8
    e = xai_core.explain(cnn, digits, "saliency")
    result = xai_core.evaluate(
        cnn, e, "smooth_model_randomization", seed=seed, n_samples=k, details=True
    )
    # Quantus draws its noise with np.random.randn, model after model: give it the
    # documented draws (xai_core's: the same k - 1 draws for every model)
    draws = [np.random.default_rng([seed, j]).standard_normal(digits.shape) for j in range(k - 1)]
    calls = iter(range(10_000))
    monkeypatch.setattr(np.random, "randn", lambda *shape: draws[next(calls) % (k - 1)])
    metric = quantus.SmoothMPRT(nr_samples=k, disable_warnings=True, return_last_correlation=False)
    metric(
        model=with_documented_draws(cnn, seed),
        x_batch=digits,
        y_batch=e.target,
        a_batch=e.attributions,
        device="cpu",
        explain_func=quantus.explain,
        explain_func_kwargs={"method": "Saliency"},
    )
    monkeypatch.undo()
    theirs = np.array(list(metric.evaluation_scores.values())).T  # (samples, original + layers)
    assert result.curve_labels == ["original", *LAYERS]
    np.testing.assert_allclose(result.curves, theirs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result.scores, theirs[:, 1:].mean(axis=1), rtol=1e-5)


def test_random_logit_equals_quantus_one_sample_at_a_time(cnn, digits):
    for i in range(len(digits)):
        one = xai_core.explain(cnn, digits[i : i + 1], "saliency", abs=False)
        ours = xai_core.evaluate(cnn, one, "random_logit", seed=42 + i)

        def gradient(model, inputs, targets, **kwargs):
            x = torch.from_numpy(np.asarray(inputs, np.float32))
            return Saliency(model).attribute(x, target=torch.as_tensor(targets), abs=False).numpy()

        theirs = quantus_call(
            quantus.RandomLogit(num_classes=10, seed=42 + i, disable_warnings=True),
            cnn,
            digits[i : i + 1],
            one,
            explain_func=gradient,
        )
        np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    spearman_scores = xai_core.evaluate(cnn, one, "random_logit", seed=0, similarity="spearman")
    assert np.isfinite(spearman_scores).all()
    with pytest.raises(xai_core.OptionError, match="two or more outputs"):
        single = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(100, 1))
        xai_core.evaluate(single, xai_core.explain(single, digits, "saliency"), "random_logit")


# -- PixelFlipping with a baseline that changes at each step ---------------------------------
@pytest.mark.parametrize("baseline", ["mean", "black", "white", "uniform"])
@pytest.mark.parametrize("features_in_step", [1, 5])
def test_deletion_with_a_stepwise_baseline_equals_quantus_pixel_flipping(
    cnn, digits, monkeypatch, baseline, features_in_step
):
    e = xai_core.explain(cnn, digits, "integrated_gradients")
    d = digits[0].size
    steps = -(-d // features_in_step)
    ours = xai_core.evaluate(
        cnn, e, "deletion", steps=steps, baseline=baseline, seed=4, details=True
    )
    if baseline == "uniform":  # Quantus draws np.random.uniform(size=batch) per step
        draws = iter(range(steps))
        monkeypatch.setattr(
            np.random,
            "uniform",
            lambda low, high, size: np.random.default_rng([4, next(draws)]).uniform(
                low, high, size
            ),
        )
    theirs = quantus.PixelFlipping(
        features_in_step=features_in_step, perturb_baseline=baseline, disable_warnings=True
    )(
        model=cnn,
        x_batch=digits,
        y_batch=e.target,
        a_batch=e.attributions,
        device="cpu",
        softmax=False,
    )
    monkeypatch.undo()
    np.testing.assert_allclose(ours.curves[:, 1:], np.array(theirs), rtol=1e-5, atol=1e-6)
    fixed = xai_core.evaluate(cnn, e, "deletion", steps=steps, baseline=0.0, details=True)
    assert not np.allclose(ours.curves, fixed.curves)  # the baseline moved the curve


def test_a_stepwise_baseline_is_deletion_s_only():
    net = torch_cnn(cnn_weights(seed=4)).eval()
    x = np.zeros((1, 1, 10, 10), np.float32)
    e = xai_core.explain(net, x, "saliency")
    with pytest.raises(xai_core.OptionError, match="deletion"):
        xai_core.evaluate(net, e, "insertion", baseline="mean")
    with pytest.raises(xai_core.OptionError, match="baseline"):
        xai_core.evaluate(net, e, "deletion", baseline="grey")
