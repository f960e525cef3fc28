"""Captum's options that its own test suite uses and xai_core could not express before:
per-sample feature masks for KernelSHAP and LIME (one mask row per sample), LIME's
interpretable model, and GradientSHAP without the inputs' factor. Each is compared with
Captum run on the same model and inputs (exact methods) or with the closed form both
must reach (sampled methods on models where the answer is known)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum._utils.models.linear_model import SkLearnLinearRegression
from captum.attr import GradientShap, Lime, Saliency, ShapleyValues
from captum.testing.helpers.basic_models import (
    BasicModel_MultiLayer,
    BasicModel_MultiLayer_MultiInput,
)
from sklearn.linear_model import LinearRegression

import xai_core

INP = np.array([[2.0, 10.0, 3.0], [20.0, 50.0, 30.0]], np.float32)
PER_SAMPLE_MASK = np.array([[0, 0, 1], [1, 1, 0]])
ZERO_ROW = np.zeros((1, 3), np.float32)


def captum_mask(mask: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(mask)


def test_kernel_shap_per_sample_masks_equal_captum_s_exact_shapley_values():
    net = BasicModel_MultiLayer()
    ours = xai_core.explain(
        net, INP, "kernel_shap", feature_mask=PER_SAMPLE_MASK, background=ZERO_ROW, target=0
    )
    theirs = ShapleyValues(net).attribute(
        torch.from_numpy(INP), target=0, feature_mask=captum_mask(PER_SAMPLE_MASK)
    )
    np.testing.assert_allclose(ours.attributions, theirs.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ours.convergence_delta, 0, atol=1e-3)  # exact Shapley values


def test_kernel_shap_per_sample_masks_on_several_inputs_equal_captum():
    net = BasicModel_MultiLayer_MultiInput()
    inputs = (INP, INP[::-1].copy(), INP * 0.5)
    masks = (  # one row per sample and input; sample 1 has three groups, sample 0 two
        np.array([[0, 0, 1], [0, 1, 2]]),
        np.array([[1, 1, 1], [2, 2, 1]]),
        np.array([[0, 1, 1], [0, 0, 0]]),
    )
    background = tuple(ZERO_ROW for _ in inputs)
    ours = xai_core.explain(
        net,
        inputs,
        "kernel_shap",
        feature_mask=masks,
        background=background,
        forward_kwargs={"scale": 1},
        target=0,
    )
    theirs = ShapleyValues(net).attribute(
        tuple(map(torch.from_numpy, inputs)),
        target=0,
        feature_mask=tuple(map(captum_mask, masks)),
        additional_forward_args=(1,),
    )
    for got, want in zip(ours.attributions, theirs):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-3)


def test_lime_per_sample_masks_with_a_linear_regressor_equal_captum_and_the_closed_form():
    """On a linear model every on/off sample lies on one plane, so a plain least-squares
    fit (Captum's SkLearnLinearRegression, sklearn's LinearRegression here) recovers each
    group's effect w . x exactly, whatever the samples drawn."""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    ours = xai_core.explain(
        net,
        INP,
        "lime",
        feature_mask=PER_SAMPLE_MASK,
        target=0,
        seed=0,
        model_regressor=LinearRegression(),
    )
    theirs = Lime(net, interpretable_model=SkLearnLinearRegression()).attribute(
        torch.from_numpy(INP), target=0, feature_mask=captum_mask(PER_SAMPLE_MASK), n_samples=300
    )
    w = net.weight.detach().numpy()[0]
    exact = np.array(
        [
            [(w * INP[i])[PER_SAMPLE_MASK[i] == PER_SAMPLE_MASK[i, j]].sum() for j in range(3)]
            for i in range(2)
        ]
    )
    np.testing.assert_allclose(ours.attributions, exact, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(theirs.numpy(), exact, rtol=1e-4, atol=1e-4)
    # lime's own default, Ridge(alpha=1), shrinks the weights: not the closed form
    ridge = xai_core.explain(net, INP, "lime", feature_mask=PER_SAMPLE_MASK, target=0, seed=0)
    assert not np.allclose(ridge.attributions, exact, rtol=1e-3)


def test_lime_leaves_the_user_s_regressor_unfitted_and_refuses_a_non_regressor():
    regressor = LinearRegression()
    torch.manual_seed(0)
    xai_core.explain(
        torch.nn.Linear(3, 2), INP, "lime", feature_mask=PER_SAMPLE_MASK, model_regressor=regressor
    )
    assert not hasattr(regressor, "coef_")
    with pytest.raises(xai_core.OptionError, match="model_regressor must be a scikit-learn"):
        xai_core.explain(torch.nn.Linear(3, 2), INP, "lime", model_regressor="linear")


def test_a_per_sample_mask_of_the_wrong_row_count_is_refused():
    with pytest.raises(xai_core.OptionError, match="one row per sample"):
        xai_core.explain(
            BasicModel_MultiLayer(),
            INP,
            "kernel_shap",
            feature_mask=np.zeros((3, 3), int),
            background=ZERO_ROW,
        )


# -- GradientSHAP, multiply_by_inputs=False ------------------------------------------------
def test_gradient_shap_without_inputs_factor_is_the_mean_gradient_of_the_documented_draws():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    background = np.random.default_rng(3).normal(size=(4, 3)).astype(np.float32)
    ours = xai_core.explain(
        net,
        INP / 10,
        "gradient_shap",
        background=background,
        n_samples=6,
        stdevs=0.1,
        seed=5,
        target=1,
        multiply_by_inputs=False,
    )
    rng = np.random.default_rng(5)  # the documented draws (module docstring)
    rows = rng.integers(0, 4, (6, 2))
    alphas = rng.uniform(0, 1, (6, 2)).astype(np.float32)
    total = np.zeros(INP.shape)
    x = INP / 10
    for s in range(6):
        noisy = x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(0.1)
        point = background[rows[s]] + alphas[s][:, None] * (noisy - background[rows[s]])
        total += Saliency(net).attribute(torch.from_numpy(point), target=1, abs=False).numpy()
    np.testing.assert_allclose(ours.attributions, total / 6, rtol=1e-5, atol=1e-7)


def test_gradient_shap_without_inputs_factor_equals_captum_on_a_linear_model():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    background = np.random.default_rng(3).normal(size=(5, 3)).astype(np.float32)
    ours = xai_core.explain(
        net, INP, "gradient_shap", background=background, target=1, multiply_by_inputs=False
    )
    theirs = GradientShap(net, multiply_by_inputs=False).attribute(
        torch.from_numpy(INP), torch.from_numpy(background), target=1
    )
    np.testing.assert_allclose(ours.attributions, theirs.numpy(), rtol=1e-5)
    with pytest.raises(xai_core.OptionError, match="multiply_by_inputs must be True or False"):
        xai_core.explain(net, INP, "gradient_shap", background=background, multiply_by_inputs=1)


# -- the same options on the Keras and Paddle twins (the same weights) ----------------------
@pytest.mark.parametrize(
    "method, options",
    [
        ("kernel_shap", {"background": np.zeros((1, 6), np.float32)}),
        ("lime", {"model_regressor": LinearRegression(), "seed": 0, "n_samples": 200}),
        ("feature_ablation", {}),
    ],
)
def test_per_sample_masks_give_the_same_numbers_on_every_framework(method, options):
    pytest.importorskip("tensorflow")
    pytest.importorskip("paddle")
    from xai_core.testing.twins import mlp_weights, twin

    weights = mlp_weights(seed=4)
    x = np.random.default_rng(2).normal(size=(3, 6)).astype(np.float32)
    mask = np.array([[0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1], [3, 3, 3, 1, 1, 1]])
    got = {
        fw: xai_core.explain(
            twin(fw, "mlp", weights), x, method, feature_mask=mask, target=1, **options
        ).attributions
        for fw in ("torch", "tensorflow", "paddle")
    }
    assert len({np.unique(row).size for row in got["torch"]}) > 1  # the groups differ per row
    for fw in ("tensorflow", "paddle"):
        np.testing.assert_allclose(got[fw], got["torch"], rtol=1e-4, atol=1e-5, err_msg=fw)
    net = twin("torch", "mlp", weights)
    theirs = (
        ShapleyValues(net).attribute(torch.from_numpy(x), target=1, feature_mask=captum_mask(mask))
        if method == "kernel_shap"
        else None
    )
    if theirs is not None:
        np.testing.assert_allclose(got["torch"], theirs.numpy(), rtol=1e-4, atol=1e-5)


# -- round one's per-input options on the Keras and Paddle twins -----------------------------
def _two_input_cases():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(3, 3)).astype(np.float32)
    noise = tuple(rng.normal(0, 0.5, size=(4, 3, d)).astype(np.float32) for d in (4, 3))
    return (a, b), [
        ("occlusion", {"window": ((2,), (1,)), "strides": ((2,), (1,))}, None),
        ("feature_ablation", {"feature_mask": (np.array([0, 0, 1, 1]), np.array([2, 0, 3]))}, None),
        (
            "feature_ablation",  # one mask row per sample, per input
            {"feature_mask": (np.tile([0, 1, 1, 2], (3, 1)), np.array([[3, 3, 4]] * 3))},
            None,
        ),
        (
            "kernel_shap",
            {
                "feature_mask": (np.array([0, 0, 1, 1]), np.array([2, 2, 1])),
                "background": (np.zeros((1, 4), np.float32), np.zeros((1, 3), np.float32)),
            },
            None,
        ),
        ("saliency", {"abs": False}, ("infidelity", {"perturbations": noise})),
    ]


@pytest.mark.parametrize("case", range(5))
def test_per_input_options_give_the_same_numbers_on_every_framework(case):
    pytest.importorskip("tensorflow")
    pytest.importorskip("paddle")
    from xai_core.testing.twins import twin, two_input_weights

    inputs, cases = _two_input_cases()
    method, options, metric = cases[case]
    weights = two_input_weights(seed=2)
    got = {}
    for fw in ("torch", "tensorflow", "paddle"):
        model = twin(fw, "two_input", weights)
        e = xai_core.explain(model, inputs, method, target=1, **options)
        got[fw] = (
            xai_core.evaluate(model, e, metric[0], **metric[1])
            if metric is not None
            else np.concatenate([np.asarray(p).reshape(3, -1) for p in e.attributions], axis=1)
        )
    assert np.abs(got["torch"]).max() > 0
    for fw in ("tensorflow", "paddle"):
        np.testing.assert_allclose(got[fw], got["torch"], rtol=1e-4, atol=1e-6, err_msg=fw)
