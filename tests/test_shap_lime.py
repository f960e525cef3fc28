"""Kernel SHAP, DeepSHAP and LIME driven through adapters: additivity, closed forms,
seeded determinism, the outsider and forward-only backends, and shap interop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xai_core
from xai_outsider_numpy import BlackBox, NumpyMLP

from models import images, tabular, torch_cnn, torch_linear, torch_mlp

BACKGROUND = tabular(30, d=5, seed=9)


@pytest.mark.parametrize("algorithm", ["kernel", "permutation", "partition"])
def test_kernel_shap_is_exact_on_a_linear_model(algorithm):
    model, x = torch_linear(), tabular(4, d=5)
    w = model[0].weight.detach().numpy()
    expl = xai_core.explain(
        model,
        x,
        "kernel_shap",
        background=BACKGROUND,
        seed=0,
        target=[0, 1, 2, 1],
        algorithm=algorithm,
    )
    expected = w[[0, 1, 2, 1]] * (x - BACKGROUND.mean(0))
    np.testing.assert_allclose(expl.attributions, expected, atol=1e-5)
    np.testing.assert_allclose(expl.convergence_delta, 0, atol=1e-4)


def test_kernel_shap_additivity_on_a_nonlinear_model():
    model, x = torch_mlp(), tabular(3)
    expl = xai_core.explain(model, x, "kernel_shap", background=tabular(20, seed=4), seed=1)
    outputs = expl.predictions[np.arange(3), expl.target]
    total = expl.attributions.sum(1) + expl.extras["base_values"]
    np.testing.assert_allclose(total, outputs, atol=1e-4)
    assert np.all(np.abs(expl.convergence_delta) <= 1e-4)


def test_kernel_shap_is_seeded_without_touching_the_global_random_state():
    model, x = torch_mlp(), tabular(2)
    options = {"background": tabular(20, seed=4), "n_samples": 40}
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = xai_core.explain(model, x, "kernel_shap", seed=5, **options)
    b = xai_core.explain(model, x, "kernel_shap", seed=5, **options)
    c = xai_core.explain(model, x, "kernel_shap", seed=6, **options)
    assert np.array_equal(np.random.get_state()[1], before)
    np.testing.assert_array_equal(a.attributions, b.attributions)
    assert not np.allclose(a.attributions, c.attributions)


def test_large_backgrounds_are_summarised_and_say_how():
    expl = xai_core.explain(
        torch_mlp(),
        tabular(1),
        "kernel_shap",
        background=tabular(300, seed=2),
        seed=0,
        max_background=20,
    )
    assert expl.options["background_summary"] == "shap.kmeans(20)"
    assert np.all(np.abs(expl.convergence_delta) <= 1e-4)


def test_kernel_shap_and_lime_on_the_outsider_and_forward_only_backends():
    mlp = NumpyMLP.random()
    x = np.random.default_rng(0).normal(size=(3, 5))
    bg = np.random.default_rng(1).normal(size=(25, 5))
    for model in (mlp, BlackBox(mlp)):
        shap_expl = xai_core.explain(model, x, "kernel_shap", background=bg, seed=0)
        total = shap_expl.attributions.sum(1) + shap_expl.extras["base_values"]
        np.testing.assert_allclose(total, mlp(x)[np.arange(3), shap_expl.target], atol=1e-4)
        lime_expl = xai_core.explain(model, x, "lime", background=bg, seed=0, n_samples=300)
        assert lime_expl.attributions.shape == x.shape
    # the same numbers through the plugin's adapter and through the black box
    a = xai_core.explain(mlp, x, "lime", background=bg, seed=3, n_samples=300)
    b = xai_core.explain(BlackBox(mlp), x, "lime", background=bg, seed=3, n_samples=300)
    np.testing.assert_allclose(a.attributions, b.attributions, rtol=1e-6)


def test_lime_tabular_recovers_a_linear_model_in_standardised_units():
    model, x = torch_linear(), tabular(2, d=5)
    w = model[0].weight.detach().numpy()
    expl = xai_core.explain(
        model, x, "lime", background=BACKGROUND, seed=0, target=2, n_samples=3000
    )
    # LIME fits a ridge model on features scaled by the background's standard deviation
    expected = w[2] * BACKGROUND.std(0)
    np.testing.assert_allclose(expl.attributions, np.tile(expected, (2, 1)), rtol=0.05, atol=0.01)


def test_lime_is_seeded():
    model, x = torch_mlp(), tabular(2)
    a = xai_core.explain(model, x, "lime", background=tabular(30), seed=4, n_samples=200)
    b = xai_core.explain(model, x, "lime", background=tabular(30), seed=4, n_samples=200)
    c = xai_core.explain(model, x, "lime", background=tabular(30), seed=5, n_samples=200)
    np.testing.assert_array_equal(a.attributions, b.attributions)
    assert not np.allclose(a.attributions, c.attributions)


def test_lime_image_layouts_and_batching(forward_rows):
    sizes = forward_rows
    model, x = torch_cnn(), images(2)
    expl = xai_core.explain(model, x, "lime", seed=0, n_samples=400, target=[3, 4])
    assert expl.attributions.shape == x.shape
    # small images are cut into an 8 x 8 grid of segments: one weight per segment
    assert len(np.unique(expl.attributions[0])) <= 64 and np.abs(expl.attributions).max() > 0
    assert max(sizes) >= 400  # every perturbed image of a sample in one call, not 10 at a time
    again = xai_core.explain(model, x, "lime", seed=0, n_samples=400, target=[3, 4])
    np.testing.assert_array_equal(expl.attributions, again.attributions)


def test_lime_image_on_rgb_spreads_each_segment_over_all_channels():
    from xai_core.testing.twins import cnn_weights, torch_cnn

    model = torch_cnn(cnn_weights(channels=3))
    rgb = np.random.default_rng(0).uniform(size=(1, 3, 8, 8)).astype(np.float32)
    expl = xai_core.explain(model, rgb, "lime", seed=1, n_samples=300, target=2)
    assert expl.attributions.shape == rgb.shape
    np.testing.assert_array_equal(expl.attributions[0, 0], expl.attributions[0, 2])
    assert np.abs(expl.attributions).max() > 0


def test_deep_shap_on_torch_is_additive():
    model, x = torch_cnn(), images(3)
    expl = xai_core.explain(model, x, "deep_shap", background=images(8, seed=5), target=[1, 2, 3])
    assert np.all(np.abs(expl.convergence_delta) <= 1e-4)


def test_deep_shap_on_other_backends_names_gradient_shap():
    with pytest.raises(xai_core.CapabilityError, match="gradient_shap"):
        xai_core.explain(
            NumpyMLP.random(), tabular(2, d=5), "deep_shap", background=tabular(4, d=5)
        )


def test_to_shap_feeds_shap_plots():
    import shap
    from matplotlib import pyplot as plt

    names = [f"f{i}" for i in range(6)]
    expl = xai_core.explain(
        torch_mlp(), tabular(3), "kernel_shap", background=tabular(20), seed=0, feature_names=names
    )
    sv = expl.to_shap()
    assert sv.feature_names == names and sv.values.shape == (3, 6)
    np.testing.assert_allclose(
        sv.values.sum(1) + sv.base_values, expl.predictions[np.arange(3), expl.target], atol=1e-4
    )
    shap.plots.waterfall(sv[0], show=False)
    shap.plots.bar(sv, show=False)
    shap.plots.beeswarm(sv, show=False)
    plt.close("all")
    # methods without base values stay additive through f(x) - sum(attributions)
    ig = xai_core.explain(torch_mlp(), tabular(3), "integrated_gradients").to_shap()
    np.testing.assert_allclose(
        ig.values.sum(1) + ig.base_values,
        xai_core.explain(torch_mlp(), tabular(3), "saliency").predictions.max(1),
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    "method, options, fragment",
    [
        ("kernel_shap", {}, "background"),
        ("kernel_shap", {"background": np.zeros((3, 5)), "algorithm": "exact"}, "algorithm"),
        ("lime", {"mode": "text"}, "mode"),
        ("deep_shap", {}, "background"),
    ],
)
def test_bad_options(method, options, fragment):
    with pytest.raises(xai_core.OptionError, match=fragment):
        xai_core.get_explainer(method, **options)


def linear_model(framework: str, w: np.ndarray, b: np.ndarray):
    """y = x @ w.T + b in `framework` (w in PyTorch's (out, in) layout)."""
    if framework == "torch":
        model = torch.nn.Linear(w.shape[1], w.shape[0])
        model.load_state_dict({"weight": torch.from_numpy(w), "bias": torch.from_numpy(b)})
        return model
    if framework == "paddle":
        paddle = pytest.importorskip("paddle")
        model = paddle.nn.Linear(w.shape[1], w.shape[0])
        model.weight.set_value(w.T.copy())
        model.bias.set_value(b)
        return model
    if framework == "tensorflow":
        keras = pytest.importorskip("keras")
        model = keras.Sequential([keras.Input((w.shape[1],)), keras.layers.Dense(w.shape[0])])
        model.layers[-1].set_weights([w.T, b])
        return model
    return BlackBox(lambda rows: np.asarray(rows) @ w.T + b)  # the outsider, forward only


@pytest.mark.parametrize("framework", ["torch", "paddle", "tensorflow", "outsider"])
def test_linear_exactness_additivity_and_seeds_on_every_backend(framework):
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 5)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    model, x = linear_model(framework, w, b), tabular(3, d=5)
    target = [0, 2, 1]
    options = {"background": BACKGROUND, "target": target, "n_samples": 300}
    a = xai_core.explain(model, x, "kernel_shap", seed=7, **options)
    np.testing.assert_allclose(a.attributions, w[target] * (x - BACKGROUND.mean(0)), atol=1e-4)
    assert np.all(np.abs(a.convergence_delta) <= 1e-4)  # additivity
    again = xai_core.explain(model, x, "kernel_shap", seed=7, **options)
    np.testing.assert_array_equal(a.attributions, again.attributions)
    lime_a = xai_core.explain(model, x, "lime", seed=7, **options)
    lime_b = xai_core.explain(model, x, "lime", seed=7, **options)
    np.testing.assert_array_equal(lime_a.attributions, lime_b.attributions)
    signs = np.sign(w[target] * BACKGROUND.std(0))
    assert np.array_equal(np.sign(lime_a.attributions), signs)  # LIME finds the linear model
    # the same seeded numbers as the pure-NumPy outsider backend on the same weights
    reference = linear_model("outsider", w, b)
    ref_shap = xai_core.explain(reference, x, "kernel_shap", seed=7, **options)
    ref_lime = xai_core.explain(reference, x, "lime", seed=7, **options)
    np.testing.assert_allclose(a.attributions, ref_shap.attributions, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(lime_a.attributions, ref_lime.attributions, rtol=1e-4, atol=1e-6)


def test_lime_image_equals_the_library_at_the_same_seed():
    import lime.lime_image

    from xai_core_explainers.lime_explainer import grid_segments

    model, x, target = torch_cnn(), images(2), [1, 2]
    ours = xai_core.explain(model, x, "lime", seed=3, n_samples=300, target=target)

    def classify(batch):  # lime hands RGB channels-last images; the model wants 1 x H x W
        nchw = np.ascontiguousarray(batch[..., :1].transpose(0, 3, 1, 2), dtype=np.float32)
        with torch.no_grad():
            return model(torch.from_numpy(nchw)).numpy().astype(np.float64)

    explainer = lime.lime_image.LimeImageExplainer(random_state=3)
    for i, t in enumerate(target):
        rgb = np.repeat(x[i].transpose(1, 2, 0), 3, axis=-1)
        exp = explainer.explain_instance(
            rgb,
            classify,
            labels=(t,),
            top_labels=None,
            hide_color=0,
            num_samples=300,
            segmentation_fn=lambda image: grid_segments(image, 1),
            random_seed=3,
        )
        weights = np.zeros(exp.segments.max() + 1)
        for segment, weight in exp.local_exp[t]:
            weights[segment] = weight
        expected = weights[exp.segments]
        np.testing.assert_allclose(
            ours.attributions[i, 0], expected, atol=1e-6 * np.abs(expected).max()
        )
        assert ours.extras["intercepts"][i] == pytest.approx(exp.intercept[t], rel=1e-5)
