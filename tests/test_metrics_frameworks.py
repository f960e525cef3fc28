"""Every metric gives the same scores on the PyTorch, Keras and Paddle twins (the same
weights), seeded draws included; model_randomization never modifies the model; and
metrics refuse what they cannot score with an error that says what to do."""

from __future__ import annotations

import numpy as np
import pytest

import xai_core
from xai_core.testing.twins import cnn_weights, from_layout, to_layout, twin

from models import export_twin_cnn_to_onnx

pytest.importorskip("tensorflow")
pytest.importorskip("paddle")

FRAMEWORKS = ["torch", "tensorflow", "paddle"]

#: every built-in metric with options small enough for a test; a new metric missing
#: here fails `test_every_metric_is_covered`
METRIC_OPTIONS = {
    "infidelity": {"seed": 1, "n_perturb_samples": 6},
    "sensitivity_max": {"seed": 2, "n_perturb_samples": 4},
    "deletion": {"steps": 25},
    "insertion": {"steps": 25, "baseline": 0.1},
    "faithfulness_correlation": {"seed": 3, "n_runs": 12, "subset_size": 20},
    "sparseness": {},
    "complexity": {},
    "effective_complexity": {"eps": 0.05},
    "completeness": {},
    "model_randomization": {"seed": 4},
    "smooth_model_randomization": {"seed": 5, "n_samples": 3},
    "efficient_model_randomization": {"seed": 6},
    "random_logit": {"seed": 7},
}


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    # three channels: with one, NCHW and NHWC flatten alike and layout bugs would hide
    return np.random.default_rng(11).normal(size=(3, 3, 10, 10)).astype(np.float32)


@pytest.fixture(scope="module")
def twins():
    weights = cnn_weights(channels=3, seed=2)
    return {fw: twin(fw, "cnn", weights) for fw in FRAMEWORKS}


def test_every_metric_is_covered():
    built_in = {
        r["name"]
        for r in xai_core.plugins()
        if r["group"] == "xai_core.metrics" and r["distribution"] == "xai-core"
    }
    assert sorted(METRIC_OPTIONS) == sorted(built_in)


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency"])
@pytest.mark.parametrize("metric", sorted(METRIC_OPTIONS))
def test_same_scores_on_every_framework(twins, images, metric, method):
    if metric == "completeness" and method == "saliency":
        pytest.skip("saliency has no baseline (its refusal is tested below)")
    scores = {}
    for fw, model in twins.items():
        x = to_layout(images, fw)
        e = xai_core.explain(model, x, method)
        scores[fw] = xai_core.evaluate(model, e, metric, **METRIC_OPTIONS[metric])
    assert np.isfinite(scores["torch"]).all()
    for fw in ("tensorflow", "paddle"):
        np.testing.assert_allclose(scores[fw], scores["torch"], rtol=1e-4, atol=1e-6, err_msg=fw)


#: the Quantus options added in round two (tests/test_quantus_suite_round_two.py holds
#: Quantus's numbers for each): the same scores on every framework too
OPTION_CASES = [
    (
        "faithfulness_correlation",
        {"seed": 3, "n_runs": 12, "subset_size": 20, "similarity": "kendall"},
    ),
    (
        "faithfulness_correlation",
        {"seed": 3, "n_runs": 12, "subset_size": 20, "similarity": "spearman"},
    ),
    ("sparseness", {"normalise": False, "abs": False}),
    ("complexity", {"normalise": False}),
    ("deletion", {"steps": 25, "baseline": "mean"}),
    ("deletion", {"steps": 25, "baseline": "uniform", "seed": 2}),
    ("model_randomization", {"seed": 4, "layer_order": "bottom_up"}),
    ("model_randomization", {"seed": 4, "layer_order": "independent", "similarity": "kendall"}),
    (
        "sensitivity_max",
        {
            "seed": 2,
            "n_perturb_samples": 4,
            "perturb_radius": 0.5,
            "return_nan_when_prediction_changes": True,
        },
    ),
    ("random_logit", {"seed": 7, "similarity": "spearman"}),
]


@pytest.mark.parametrize("metric, options", OPTION_CASES)
def test_round_two_options_give_the_same_scores_on_every_framework(twins, images, metric, options):
    scores = {}
    for fw, model in twins.items():
        e = xai_core.explain(model, to_layout(images, fw), "saliency", abs=False)
        scores[fw] = xai_core.evaluate(model, e, metric, **options)
    for fw in ("tensorflow", "paddle"):
        np.testing.assert_allclose(
            scores[fw], scores["torch"], rtol=1e-4, atol=1e-6, equal_nan=True, err_msg=fw
        )


def test_gradient_shap_without_inputs_factor_on_every_framework(twins, images):
    background = np.random.default_rng(2).normal(size=(4, 3, 10, 10)).astype(np.float32)
    got = {
        fw: from_layout(
            xai_core.explain(
                model,
                to_layout(images, fw),
                "gradient_shap",
                background=to_layout(background, fw),
                seed=1,
                n_samples=5,
                multiply_by_inputs=False,
            ).attributions,
            fw,
        )
        for fw, model in twins.items()
    }
    for fw in ("tensorflow", "paddle"):
        np.testing.assert_allclose(got[fw], got["torch"], rtol=1e-4, atol=1e-6, err_msg=fw)


def _weights(model, fw):
    if fw == "torch":
        return [p.detach().numpy().copy() for p in model.state_dict().values()]
    if fw == "tensorflow":
        return [w.copy() for w in model.get_weights()]
    return [p.numpy().copy() for p in model.state_dict().values()]


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_model_randomization_leaves_the_model_bit_for_bit(twins, images, fw):
    model = twins[fw]
    x = to_layout(images, fw)
    e = xai_core.explain(model, x, "integrated_gradients")
    before = _weights(model, fw)
    result = xai_core.evaluate(model, e, "model_randomization", seed=0, details=True)
    after = _weights(model, fw)
    assert all(np.array_equal(b, a) for b, a in zip(before, after, strict=True))
    assert result.curve_labels and len(result.curve_labels) == 3  # conv1, conv2, fc
    assert result.curves.shape == (3, 3)
    # the original model explained again still gives the original attributions
    again = xai_core.explain(model, x, "integrated_gradients")
    np.testing.assert_array_equal(again.attributions, e.attributions)


def test_randomised_layers_are_the_same_numbers_on_every_framework(twins):
    """The draws are made in PyTorch's layout and put into each framework's."""
    adapters = {fw: xai_core.adapt(m) for fw, m in twins.items()}
    torch_layers = [n for n in (i.name for i in adapters["torch"].layers()) if n != "relu1"]
    assert adapters["torch"].layer_parameters("conv1")[0].shape == (8, 3, 3, 3)
    for fw in ("tensorflow", "paddle"):
        names = [i.name for i in adapters[fw].layers() if i.n_params > 0]
        for theirs, ours in zip(names, ["conv1", "conv2", "fc"], strict=True):
            for a, b in zip(
                adapters[fw].layer_parameters(theirs),
                adapters["torch"].layer_parameters(ours),
                strict=True,
            ):
                np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=f"{fw} {theirs}")
    assert torch_layers


def test_a_randomised_copy_computes_with_the_new_weights(twins, images):
    model = twins["torch"]
    adapter = xai_core.adapt(model)
    zero = [np.zeros_like(p) for p in adapter.layer_parameters("fc")]
    copy = adapter.with_parameters({"fc": zero})
    assert np.all(copy.forward(images) == 0)
    assert not np.all(adapter.forward(images) == 0)
    with pytest.raises(xai_core.XaiError, match="shapes"):
        adapter.with_parameters({"fc": zero[:1]})


def test_seeded_metrics_repeat_and_a_drawn_seed_is_recorded(twins, images):
    model = twins["torch"]
    e = xai_core.explain(model, images, "saliency")
    first = xai_core.evaluate(model, e, "infidelity", details=True)
    seed = first.options["seed"]
    assert isinstance(seed, int)
    again = xai_core.evaluate(model, e, "infidelity", seed=seed)
    np.testing.assert_array_equal(again, first.scores)
    other = xai_core.evaluate(model, e, "infidelity", seed=seed + 1)
    assert not np.array_equal(other, first.scores)


# -- refusals ----------------------------------------------------------------------------


def test_metric_needing_gradients_on_a_forward_only_backend(twins, images, tmp_path):
    """sensitivity_max re-explains with the explanation's method: a gradient method on an
    ONNX export is refused, pointing to forward-only methods."""
    pytest.importorskip("onnxruntime")
    path = tmp_path / "cnn.onnx"
    export_twin_cnn_to_onnx(path, channels=3, seed=2)
    onnx_model = xai_core.load_model(path)
    e = xai_core.explain(twins["torch"], images, "saliency")
    with pytest.raises(xai_core.CapabilityError, match="gradients"):
        xai_core.evaluate(onnx_model, e, "sensitivity_max", seed=0)
    with pytest.raises(xai_core.CapabilityError, match="model_randomization"):
        xai_core.evaluate(onnx_model, e, "model_randomization", seed=0)
    # forward-only metrics work there, equal to PyTorch's
    np.testing.assert_allclose(
        xai_core.evaluate(onnx_model, e, "deletion", steps=10),
        xai_core.evaluate(twins["torch"], e, "deletion", steps=10),
        rtol=1e-5,
    )


def test_clear_errors(twins, images):
    model = twins["torch"]
    e = xai_core.explain(model, images, "saliency")
    with pytest.raises(xai_core.UnknownMetricError, match="Installed metrics: .*deletion"):
        xai_core.evaluate(model, e, "delition")
    with pytest.raises(xai_core.OptionError, match="'stepz'.*steps"):
        xai_core.evaluate(model, e, "deletion", stepz=3)
    with pytest.raises(xai_core.OptionError, match="steps must be an integer"):
        xai_core.evaluate(model, e, "deletion", steps=0)
    with pytest.raises(xai_core.OptionError, match="subset_size"):
        xai_core.evaluate(model, e, "faithfulness_correlation", subset_size=1000)
    with pytest.raises(xai_core.OptionError, match="perturbations must be shaped"):
        xai_core.evaluate(model, e, "infidelity", perturbations=np.zeros((2, 3)))
    with pytest.raises(xai_core.XaiError, match="Explanation"):
        xai_core.evaluate(model, e.attributions, "deletion")
    layer = xai_core.explain(model, images, "integrated_gradients", layer="conv2")
    with pytest.raises(xai_core.XaiError, match="layer 'conv2'"):
        xai_core.evaluate(model, layer, "deletion")
    capture = xai_core.explain(model, images, "activations", layers=["conv1"])
    with pytest.raises(xai_core.XaiError, match="capture-only"):
        xai_core.evaluate(model, capture, "sparseness")
    with pytest.raises(xai_core.UnknownLayerError):
        xai_core.evaluate(model, e, "model_randomization", layers=["nope"])
