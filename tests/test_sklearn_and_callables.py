"""Fitted scikit-learn estimators and plain NumPy functions as models (issue 24): the
forward-only methods, the metrics and datasets, with the same calls as for networks;
checked against closed forms on linear models and against shap and LIME themselves."""

from __future__ import annotations

import numpy as np
import pytest

import xai_core

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

X, Y = load_breast_cancer(return_X_y=True)
BASELINE = X.mean(axis=0, keepdims=True)


@pytest.fixture(scope="module")
def pipeline():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, Y)


def test_feature_ablation_of_a_margin_is_the_linear_closed_form(pipeline):
    e = xai_core.explain(
        pipeline,
        X[:4],
        "feature_ablation",
        baselines=BASELINE,
        output="decision_function",
        target=0,
    )
    scaler, logistic = pipeline
    expected = logistic.coef_[0] * (scaler.transform(X[:4]) - scaler.transform(BASELINE))
    assert e.backend == "sklearn"
    np.testing.assert_allclose(e.attributions, expected, rtol=1e-9, atol=1e-12)


def test_probabilities_by_default_and_the_predicted_class(pipeline):
    e = xai_core.explain(pipeline, X[:5], "occlusion", window=(3,), baselines=0.0)
    np.testing.assert_allclose(e.predictions, pipeline.predict_proba(X[:5]), rtol=1e-12)
    np.testing.assert_array_equal(e.target, pipeline.predict(X[:5]))


def test_kernel_shap_on_a_forest_equals_shaps_own_kernel_explainer():
    import shap

    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X[:, :6], Y)
    background, rows = X[:15, :6], X[100:102, :6]
    e = xai_core.explain(
        forest, rows, "kernel_shap", background=background, n_samples=200, seed=0, target=1
    )
    explainer = shap.KernelExplainer(lambda a: forest.predict_proba(a)[:, 1], background)
    np.random.seed(0)
    reference = explainer.shap_values(rows, nsamples=200, silent=True)
    # 6 features, 200 samples: every coalition is enumerated, so both are exact Shapley
    # values of the same game (no sampling noise), and add up to the whole gap
    np.testing.assert_allclose(e.attributions, reference, rtol=1e-6, atol=1e-9)
    full = forest.predict_proba(rows)[:, 1] - forest.predict_proba(background)[:, 1].mean()
    np.testing.assert_allclose(e.attributions.sum(1), full, rtol=1e-6, atol=1e-9)


def test_a_regressor_explains_predict_and_lime_recovers_its_slopes():
    w = np.array([2.0, -1.0, 0.5, 0.0])
    x = np.random.default_rng(0).normal(size=(200, 4))
    model = LinearRegression().fit(x, x @ w + 1.0)
    e = xai_core.explain(model, x[:2], "lime", background=x, n_samples=2000, seed=0)
    # LIME's tabular weights are slopes per standard deviation of the background
    np.testing.assert_allclose(e.attributions[0], w * x.std(axis=0), rtol=0.05, atol=0.05)


def test_metrics_and_datasets_run_on_an_estimator(pipeline, tmp_path):
    e = xai_core.explain(pipeline, X[:6], "feature_ablation", baselines=BASELINE)
    scores = xai_core.evaluate(pipeline, e, "deletion")
    assert scores.shape == (6,) and np.isfinite(scores).all()
    stored = xai_core.explain_dataset(
        pipeline,
        X[:10],
        "feature_ablation",
        out=tmp_path / "store.zarr",
        progress=False,
        baselines=BASELINE,
    )
    np.testing.assert_allclose(stored[0:6].attributions, e.attributions, rtol=1e-12)


def test_estimator_refusals_say_what_to_do(pipeline):
    with pytest.raises(xai_core.CapabilityError, match="feature_ablation"):
        xai_core.explain(pipeline, X[:2], "saliency")
    with pytest.raises(xai_core.InputError, match="predict_proba, decision_function, predict"):
        xai_core.explain(pipeline, X[:2], "feature_ablation", output="transform")
    regressor = LinearRegression().fit(X, Y)
    with pytest.raises(xai_core.InputError, match="has no predict_proba"):
        xai_core.explain(regressor, X[:2], "feature_ablation", output="predict_proba")
    with pytest.raises(xai_core.InputError, match="refused the inputs"):
        xai_core.explain(pipeline, X[:2, :5], "feature_ablation")


def test_a_plain_numpy_function_is_a_model():
    """shap's and LIME's convention: a function of NumPy rows; closed form on a linear one."""
    w = np.random.default_rng(1).normal(size=(30, 2))
    e = xai_core.explain(lambda a: a @ w, X[:3], "feature_ablation", target=1)
    np.testing.assert_allclose(e.attributions, X[:3] * w[:, 1], rtol=1e-9)
    assert e.backend == "numpy"


def test_a_function_of_torch_tensors_is_told_to_name_its_framework():
    torch = pytest.importorskip("torch")
    with pytest.raises(xai_core.ModelOutputError, match="FunctionModel"):
        xai_core.explain(lambda a: torch.tanh(a), X[:2], "feature_ablation")
