"""The same weights give the same numbers on PyTorch, Keras and Paddle.

Twins are built from one set of NumPy weights (kernels transposed between NCHW
and NHWC); forward outputs, input gradients, captured activations and every
installed explainer's output are compared to the PyTorch twin at 1e-5 relative.
"""

from __future__ import annotations

import numpy as np
import pytest

import xai_core
from xai_core.registry import REGISTRY
from xai_core.testing.twins import cnn_weights, from_layout, mlp_weights, to_layout, twin

from models import images, tabular

pytest.importorskip("tensorflow")
pytest.importorskip("paddle")

FRAMEWORKS = ["torch", "tensorflow", "paddle"]
OTHERS = ["tensorflow", "paddle"]
RTOL = 1e-5


class Reference:
    """An array option built from the case's inputs, put in each framework's layout."""

    def __init__(self, make):
        self.make = make

    def __repr__(self) -> str:
        return "array"


class Shape:
    """A per-sample shape given in PyTorch's layout (C, H, W), put in each framework's."""

    def __init__(self, shape):
        self.shape = shape

    def __repr__(self) -> str:
        return f"shape{self.shape}"

    def resolve(self, framework: str):
        if len(self.shape) == 3 and framework == "tensorflow":
            return (self.shape[1], self.shape[2], self.shape[0])
        return self.shape


BACKGROUND = Reference(lambda x: np.random.default_rng(7).uniform(0, 0.5, (6, *x.shape[1:])))
BASELINE = Reference(lambda x: np.full((1, *x.shape[1:]), 0.25))

#: options for every explainer in the repo; an explainer missing here fails the test below
METHOD_OPTIONS: dict[str, list[dict]] = {
    "saliency": [{}, {"abs": False, "multiply_by_inputs": True}],
    "smoothgrad": [{"n_samples": 5, "seed": 1}, {"n_samples": 4, "seed": 2, "variant": "vargrad"}],
    "integrated_gradients": [{}, {"baselines": BASELINE, "integration": "riemann_middle"}],
    "gradient_shap": [{"background": BACKGROUND, "n_samples": 8, "stdevs": 0.05, "seed": 3}],
    "activations": [{"layers": None}],
    "grad_cam": [{"layer": "conv2", "only": "cnn"}, {"layer": "conv1", "only": "cnn"}],
    "kernel_shap": [
        {"background": BACKGROUND, "seed": 4, "n_samples": 200, "only": "mlp"},
        {"background": BACKGROUND, "seed": 4, "algorithm": "permutation", "only": "mlp"},
    ],
    "lime": [
        {"background": BACKGROUND, "seed": 5, "n_samples": 300, "only": "mlp"},
        {"seed": 5, "n_samples": 200, "only": "cnn"},
    ],
    "occlusion": [
        {"window": Shape((1, 3, 3)), "strides": Shape((1, 2, 2)), "only": "cnn"},
        {"window": (2,), "baselines": 0.5, "only": "mlp"},
    ],
    "feature_ablation": [{}, {"baselines": BASELINE, "only": "mlp"}],
    "rise": [{"n_masks": 30, "cell": 3, "seed": 6, "only": "cnn"}],
    "guided_backprop": [{}],
    "deconvolution": [{}],
    "input_x_gradient": [{}],
    "deeplift": [{}, {"baselines": BASELINE, "multiply_by_inputs": False}],
    "deeplift_shap": [{"background": BACKGROUND}],
    "lrp": [
        {},
        {"rule": "gamma"},
        {"rule": "alpha1-beta0"},
        {"rule": "z+"},
        {"composite": "epsilon_plus_flat"},
        {"composite": "epsilon_alpha2_beta1_flat"},
    ],
    "guided_grad_cam": [{"layer": "conv2", "only": "cnn"}, {"layer": "conv1", "only": "cnn"}],
    "layer_gradient_x_activation": [
        {"layer": "conv2", "only": "cnn"},
        {"layer": "fc1", "only": "mlp"},
    ],
    "internal_influence": [
        {"layer": "conv1", "n_steps": 8, "only": "cnn"},
        {"layer": "fc1", "baselines": BASELINE, "only": "mlp"},
    ],
    "layer_conductance": [
        {"layer": "conv2", "n_steps": 8, "only": "cnn"},
        {"layer": "fc1", "only": "mlp"},
    ],
    # shap's DeepExplainer exists for PyTorch and TensorFlow only (paddle: see its own test)
    "deep_shap": [{"background": BACKGROUND, "only": "mlp", "frameworks": ["tensorflow"]}],
}


def resolve(options: dict, x: np.ndarray, framework: str) -> dict:
    def value(v):
        if isinstance(v, Reference):
            return to_layout(v.make(x).astype(np.float32), framework)
        return v.resolve(framework) if isinstance(v, Shape) else v

    return {k: value(v) for k, v in options.items() if k not in ("only", "frameworks")}


def assert_close(actual, expected, what):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: {actual.shape} vs {expected.shape}"
    scale = max(float(np.abs(expected).max()), 1e-12)
    err = float(np.abs(actual - expected).max()) / scale
    assert err <= RTOL, f"{what}: relative error {err:.2e}"


CASES = {
    "mlp": (mlp_weights(), tabular(5), "fc1"),
    "cnn": (cnn_weights(), images(5), "conv2"),
}


@pytest.fixture(scope="module")
def twins():
    return {
        (fw, kind): twin(fw, kind, weights)
        for fw in FRAMEWORKS
        for kind, (weights, _, _) in CASES.items()
    }


@pytest.mark.parametrize("kind", CASES)
@pytest.mark.parametrize("framework", OTHERS)
def test_forward_gradients_and_activations_agree(twins, framework, kind):
    _, x, layer = CASES[kind]
    reference, other = xai_core.adapt(twins["torch", kind]), xai_core.adapt(twins[framework, kind])
    xo = to_layout(x, framework)
    target = np.arange(len(x)) % 3
    assert_close(other.forward(xo), reference.forward(x), "forward")
    assert_close(
        from_layout(other.gradients(xo, target), framework),
        reference.gradients(x, target),
        "input gradients",
    )
    assert_close(
        from_layout(other.capture(xo, [layer])[layer], framework),
        reference.capture(x, [layer])[layer],
        f"activation of {layer}",
    )
    act_o, grad_o = other.layer_gradients(xo, target, layer)
    act_r, grad_r = reference.layer_gradients(x, target, layer)
    assert_close(from_layout(grad_o, framework), grad_r, f"gradient at {layer}")


@pytest.mark.parametrize("kind", ["functional", "subclassed"])
def test_every_keras_model_kind_agrees(kind):
    from xai_core.testing.twins import keras_cnn, keras_mlp

    x = tabular(4)
    reference = xai_core.adapt(twin("torch", "mlp", mlp_weights()))
    other = xai_core.adapt(keras_mlp(mlp_weights(), kind))
    target = np.array([0, 1, 2, 0])
    assert_close(other.forward(x), reference.forward(x), "forward")
    assert_close(other.gradients(x, target), reference.gradients(x, target), "gradients")
    assert_close(other.capture(x, ["fc1"])["fc1"], reference.capture(x, ["fc1"])["fc1"], "fc1")
    xi = images(3)
    cnn_ref = xai_core.adapt(twin("torch", "cnn", cnn_weights()))
    cnn = xai_core.adapt(keras_cnn(cnn_weights(), kind))
    act, grad = cnn.layer_gradients(to_layout(xi, "tensorflow"), np.array([1, 2, 3]), "conv1")
    _, grad_ref = cnn_ref.layer_gradients(xi, np.array([1, 2, 3]), "conv1")
    assert_close(from_layout(grad, "tensorflow"), grad_ref, "gradient at conv1")


def test_every_installed_explainer_has_cross_framework_options():
    missing = [m for m in xai_core.explainers() if m not in METHOD_OPTIONS]
    assert not missing, f"add {missing} to METHOD_OPTIONS so they are compared across frameworks"


@pytest.mark.parametrize(
    "method, options, kind",
    [
        (m, o, kind)
        for m, opts in METHOD_OPTIONS.items()
        for o in opts
        for kind in CASES
        if o.get("only", kind) == kind  # e.g. Grad-CAM needs the CNN
    ],
    ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={w}" for k, w in v.items()),
)
def test_every_explainer_gives_the_same_explanation(twins, method, options, kind):
    _, x, _ = CASES[kind]
    reference = xai_core.explain(twins["torch", kind], x, method, **resolve(options, x, "torch"))
    for framework in options.get("frameworks", OTHERS):
        xf = to_layout(x, framework)
        expl = xai_core.explain(
            twins[framework, kind], xf, method, **resolve(options, x, framework)
        )
        assert expl.backend == framework
        np.testing.assert_array_equal(expl.target, reference.target)
        if reference.attributions is not None:
            like = x if reference.layer is None else reference.attributions  # a layer's shape
            assert expl.attributions.shape == to_layout(like, framework).shape  # layout kept
            assert_close(
                from_layout(expl.attributions, framework),
                reference.attributions,
                f"{method} on {framework}",
            )
        assert list(expl.activations) == list(reference.activations)  # same layer names
        for name, value in reference.activations.items():
            assert_close(from_layout(expl.activations[name], framework), value, name)
        for name, value in reference.extras.items():
            assert_close(expl.extras[name], value, name)  # RISE: its (N, H, W) saliency
        if reference.convergence_delta is not None and method not in ("kernel_shap", "deep_shap"):
            scale = np.abs(reference.predictions).max()
            np.testing.assert_allclose(
                expl.convergence_delta, reference.convergence_delta, atol=RTOL * scale
            )


#: (kind, layer, neuron in PyTorch's layout): the ReLU neurons are inactive for some of the
#: samples, so that the rule of the neuron's own layer shows (Guided Backprop, DeepLift)
NEURONS = [("cnn", "conv2", (1, 2, 3)), ("cnn", "relu2", (3, 1, 2)), ("mlp", "fc1", 5)]
NEURONS += [("mlp", "relu", 2)]


def neuron_in_layout(neuron, framework: str):
    if isinstance(neuron, tuple) and len(neuron) == 3 and framework == "tensorflow":
        return (neuron[1], neuron[2], neuron[0])  # (C, H, W) -> Keras's (H, W, C)
    return neuron


@pytest.mark.parametrize(
    "method", [m for m in xai_core.explainers() if REGISTRY.explainer_class(m).neuron_option]
)
@pytest.mark.parametrize("kind, layer, neuron", NEURONS, ids=lambda v: str(v))
def test_every_neuron_method_gives_the_same_explanation(twins, method, kind, layer, neuron):
    """Captum's Neuron* methods (`neuron=` with `layer=`), the neuron indexed in each
    framework's own layout of the layer's output."""
    _, x, _ = CASES[kind]
    options = METHOD_OPTIONS[method][0]
    reference = xai_core.explain(
        twins["torch", kind], x, method, layer=layer, neuron=neuron, **resolve(options, x, "torch")
    )
    assert np.abs(reference.attributions).max() > 0
    for framework in OTHERS:
        expl = xai_core.explain(
            twins[framework, kind],
            to_layout(x, framework),
            method,
            layer=layer,
            neuron=neuron_in_layout(neuron, framework),
            **resolve(options, x, framework),
        )
        assert expl.options["neuron"] == neuron_in_layout(neuron, framework)
        got = from_layout(expl.attributions, framework)
        assert_close(got, reference.attributions, f"{method} neuron on {framework}")


@pytest.mark.parametrize("kind", ["functional", "subclassed"])
@pytest.mark.parametrize("method", ["saliency", "deeplift", "deconvolution"])
def test_keras_neurons_of_every_model_kind_agree_and_leave_the_layers_as_they_were(kind, method):
    """A functional graph and a subclassed `call` both record the layer through its `call`,
    inside the rule's own `call` where the method has rules; afterwards no layer keeps an
    instance attribute of ours."""
    from xai_core.testing.twins import keras_mlp

    x = tabular(5)
    reference = xai_core.explain(
        twin("torch", "mlp", mlp_weights()), x, method, layer="relu", neuron=2
    )
    model = keras_mlp(mlp_weights(), kind)
    attributes = {id(layer): set(vars(layer)) for layer in model.layers}
    expl = xai_core.explain(model, x, method, layer="relu", neuron=2)
    assert_close(expl.attributions, reference.attributions, f"{method} neuron, {kind}")
    assert {id(layer): set(vars(layer)) for layer in model.layers} == attributes


@pytest.mark.parametrize("kind, layer, neuron", NEURONS[:2], ids=lambda v: str(v))
def test_noise_tunnel_over_a_neuron_gives_the_same_explanation(twins, kind, layer, neuron):
    _, x, _ = CASES[kind]
    nt = {"noise_tunnel": "smoothgrad_sq", "nt_samples": 3, "stdevs": 0.2, "seed": 1}
    reference = xai_core.explain(
        twins["torch", kind], x, "integrated_gradients", layer=layer, neuron=neuron, **nt
    )
    for framework in OTHERS:
        expl = xai_core.explain(
            twins[framework, kind],
            to_layout(x, framework),
            "integrated_gradients",
            layer=layer,
            neuron=neuron_in_layout(neuron, framework),
            **nt,
        )
        got = from_layout(expl.attributions, framework)
        assert_close(got, reference.attributions, f"noise tunnel neuron on {framework}")
