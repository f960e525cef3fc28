"""Several inputs and token ids: the same weights give the same numbers on every framework."""

from __future__ import annotations

import numpy as np
import pytest

import xai_core
from xai_core.testing.twins import text_weights, twin, two_input_weights

pytest.importorskip("tensorflow")
pytest.importorskip("paddle")

FRAMEWORKS = ["torch", "tensorflow", "paddle"]


def close(actual, expected, rtol=1e-4):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    scale = max(float(np.abs(expected).max()), 1e-12)
    assert float(np.abs(actual - expected).max()) / scale <= rtol


def two_inputs(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32)


TWO_INPUT_CASES = {
    "saliency": {"abs": False},
    "integrated_gradients": {"baselines": (0.25, np.zeros(3, np.float32)), "n_steps": 16},
    "smoothgrad": {"n_samples": 4, "seed": 1},
    "gradient_shap": {"background": two_inputs(5, seed=2), "n_samples": 6, "seed": 2},
    "kernel_shap": {"background": two_inputs(5, seed=2), "n_samples": 100, "seed": 3},
    "lime": {"background": two_inputs(5, seed=2), "n_samples": 100, "seed": 3},
}


@pytest.mark.parametrize("method", list(TWO_INPUT_CASES))
def test_a_two_input_model_has_the_same_explanation_on_every_framework(method):
    weights, x = two_input_weights(), two_inputs()
    results = {
        fw: xai_core.explain(
            twin(fw, "two_input", weights), x, method, target=1, **TWO_INPUT_CASES[method]
        )
        for fw in FRAMEWORKS
    }
    for fw in FRAMEWORKS[1:]:
        for ours, reference in zip(results[fw].attributions, results["torch"].attributions):
            close(ours, reference)


TEXT_CASES = {
    "integrated_gradients": {"layer": "embed", "n_steps": 12, "baselines": 0},
    "saliency": {"layer": "embed", "abs": False, "multiply_by_inputs": True},
    "activations": {"layers": ["embed"]},
    "kernel_shap": {"background": np.zeros((1, 7), np.int64), "n_samples": 60, "seed": 4},
}


@pytest.mark.parametrize("method", list(TEXT_CASES))
def test_a_token_model_has_the_same_explanation_on_every_framework(method):
    weights = text_weights()
    ids = np.random.default_rng(0).integers(1, 20, (3, 7))
    results = {
        fw: xai_core.explain(twin(fw, "text", weights), ids, method, target=2, **TEXT_CASES[method])
        for fw in FRAMEWORKS
    }
    for fw in FRAMEWORKS[1:]:
        if method == "activations":
            close(results[fw].activations["embed"], results["torch"].activations["embed"])
            continue
        close(results[fw].attributions, results["torch"].attributions)
        if results[fw].convergence_delta is not None:
            np.testing.assert_allclose(
                results[fw].convergence_delta, results["torch"].convergence_delta, atol=1e-5
            )


def test_layer_ig_on_the_token_twin_has_the_closed_form():
    """Mean pooling then a dense layer is linear in the embedding output: layer IG from a
    pad-token baseline is exactly fc.weight[t] / n_tokens * (E[ids] - E[0])."""
    weights = text_weights()
    ids = np.random.default_rng(1).integers(1, 20, (2, 7))
    expl = xai_core.explain(
        twin("paddle", "text", weights),
        ids,
        "integrated_gradients",
        layer="embed",
        target=0,
        baselines=0,
        n_steps=4,
    )
    table, w = weights["embed.table"], weights["fc.weight"][0]
    expected = (table[ids] - table[0]) * w / ids.shape[1]
    np.testing.assert_allclose(expl.attributions, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(expl.convergence_delta).max() < 1e-5
