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
from scipy.stats import spearmanr

import xai_core
from xai_core.testing.twins import cnn_weights, torch_cnn

quantus = pytest.importorskip("quantus")


@pytest.fixture(scope="module")
def cnn() -> torch.nn.Module:
    return torch_cnn(cnn_weights(seed=4)).eval()  # Quantus refuses a model in training mode


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return np.random.default_rng(5).normal(size=(4, 1, 10, 10)).astype(np.float32)


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


# -- MPRT layer orders ---------------------------------------------------------------------
@pytest.mark.parametrize("order", ["top_down", "bottom_up", "independent"])
def test_model_randomization_layer_orders_follow_the_documented_draws(cnn, digits, order):
    e = xai_core.explain(cnn, digits, "saliency")
    result = xai_core.evaluate(
        cnn, e, "model_randomization", seed=3, layer_order=order, details=True
    )
    layers = ["conv1", "conv2", "fc"]  # the twin's layers with parameters, in order
    positions = {"top_down": [2, 1, 0], "bottom_up": [0, 1, 2], "independent": [0, 1, 2]}[order]
    assert result.curve_labels == [layers[p] for p in positions]
    randomised = copy.deepcopy(cnn)
    for step, position in enumerate(positions):
        if order == "independent":
            randomised = copy.deepcopy(cnn)
        module = getattr(randomised, layers[position])
        rng = np.random.default_rng([3, position])  # documented: (seed, layer position)
        bound = 1 / np.sqrt(np.prod(module.weight.shape[1:]))
        with torch.no_grad():
            for p in (module.weight, module.bias):
                p.copy_(torch.from_numpy(rng.uniform(-bound, bound, p.shape).astype(np.float32)))
        moved = Saliency(randomised).attribute(
            torch.from_numpy(digits), target=torch.from_numpy(e.target)
        )
        want = [
            spearmanr(np.abs(e.attributions[i]).ravel(), moved[i].numpy().ravel())[0]
            for i in range(len(digits))
        ]
        np.testing.assert_allclose(result.curves[:, step], want, rtol=1e-5, atol=1e-7)
    with pytest.raises(xai_core.OptionError, match="layer_order"):
        xai_core.evaluate(cnn, e, "model_randomization", layer_order="random")
