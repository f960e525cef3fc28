"""`neuron=` with `layer=`: Captum's Neuron* methods, compared with Captum on the same model
and with closed forms (issue 22)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import xai_core

from conftest import torch_state
from real_models import resnet
from reference_checks import assert_close, captum_attribute

captum_attr = pytest.importorskip("captum.attr")


class NeuronNet(nn.Module):
    """Conv-ReLU-conv-ReLU-fc-ReLU-fc, one module per use (what Captum's DeepLift needs).
    No ReLU feeds a max-pool: Captum's DeepLift hooks go stale there (see test_modified_
    backprop), so the rules are compared where Captum's are right."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.relu1 = nn.Conv2d(1, 4, 3), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(4, 6, 3, stride=3), nn.ReLU()
        self.flat, self.fc, self.relu3, self.fc2 = (
            nn.Flatten(),
            nn.Linear(24, 5),
            nn.ReLU(),
            nn.Linear(5, 3),
        )

    def forward(self, x):
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc2(self.relu3(self.fc(self.flat(x))))


def images(n=3, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).normal(size=(n, 1, 10, 10))).astype(np.float32)


def captum(cls, model, layer, x, neuron, **kwargs):
    return captum_attribute(cls(model, getattr(model, layer)), x, neuron, **kwargs)


#: ours -> (Captum's class, our options, Captum's options)
METHODS = {
    "saliency": ("NeuronGradient", {"abs": False}, {}),
    "integrated_gradients": (
        "NeuronIntegratedGradients",
        {"n_steps": 20, "integration": "gausslegendre"},
        {"n_steps": 20},
    ),
    "deeplift": ("NeuronDeepLift", {}, {}),
    "guided_backprop": ("NeuronGuidedBackprop", {}, {}),
    "deconvolution": ("NeuronDeconvolution", {}, {}),
}


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize(
    "layer, neuron",
    # relu2's (0, 0, 0) is negative before the ReLU for the first image: the rule of the
    # neuron's own layer (deconvolution passes it, DeepLift rescales it) must apply there
    [("conv2", (1, 0, 1)), ("relu2", (0, 0, 0)), ("fc", 4), ("relu3", 2)],
)
def test_neuron_methods_equal_captums(method, layer, neuron):
    model = NeuronNet().eval()
    x = images()
    name, ours_options, captum_options = METHODS[method]
    before = torch_state(model)
    e = xai_core.explain(model, x, method, layer=layer, neuron=neuron, **ours_options)
    assert torch_state(model) == before
    reference = captum(getattr(captum_attr, name), model, layer, x, neuron, **captum_options)
    assert_close(e.attributions, reference)
    assert e.options["layer"] == layer and e.options["neuron"] == neuron


def test_neuron_deeplift_with_baselines_equals_captum_and_is_complete():
    model = NeuronNet().eval()
    x, baselines = images(), images(seed=1, scale=0.2)
    e = xai_core.explain(model, x, "deeplift", layer="fc", neuron=3, baselines=baselines)
    reference = captum(
        captum_attr.NeuronDeepLift, model, "fc", x, 3, baselines=torch.from_numpy(baselines)
    )
    assert_close(e.attributions, reference)

    def unit(inp):
        body = model.relu2(model.conv2(model.relu1(model.conv1(torch.from_numpy(inp)))))
        return model.fc(model.flat(body))[:, 3].detach().numpy()

    difference = unit(x) - unit(baselines)
    np.testing.assert_allclose(e.attributions.reshape(3, -1).sum(1), difference, atol=1e-5)
    np.testing.assert_allclose(e.convergence_delta, 0, atol=1e-5)


def test_neuron_deeplift_shap_equals_captum():
    model = NeuronNet().eval()
    x, background = images(2), images(4, seed=3, scale=0.3)
    e = xai_core.explain(model, x, "deeplift_shap", layer="fc", neuron=1, background=background)
    reference = captum(
        captum_attr.NeuronDeepLiftShap, model, "fc", x, 1, baselines=torch.from_numpy(background)
    )
    assert_close(e.attributions, reference)


def test_neuron_feature_ablation_equals_captum():
    model = NeuronNet().eval()
    x = images(2)
    e = xai_core.explain(model, x, "feature_ablation", layer="conv2", neuron=(2, 1, 0))
    reference = captum(captum_attr.NeuronFeatureAblation, model, "conv2", x, (2, 1, 0))
    assert_close(e.attributions, reference)


@pytest.mark.parametrize("inplace", [False, True])
def test_a_linear_neurons_gradient_is_its_weight_row_also_before_an_inplace_relu(inplace):
    """Closed form: d fc1(x)[j] / dx = W1[j], whatever follows (an in-place ReLU that writes
    over fc1's output must not move what is differentiated)."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(inplace=inplace), nn.Linear(4, 2)).eval()
    x = np.random.default_rng(2).normal(size=(5, 6)).astype(np.float32)
    e = xai_core.explain(model, x, "saliency", layer="0", neuron=3, abs=False)
    np.testing.assert_allclose(
        e.attributions, np.tile(model[0].weight[3].detach().numpy(), (5, 1)), rtol=1e-6
    )
    np.testing.assert_array_equal(e.target, [3] * 5)
    w = model[0].weight[3].detach().numpy()
    ig = xai_core.explain(model, x, "integrated_gradients", layer="0", neuron=3)
    np.testing.assert_allclose(ig.attributions, x * w, rtol=1e-5)
    ixg = xai_core.explain(model, x, "input_x_gradient", layer="0", neuron=3)
    np.testing.assert_allclose(ixg.attributions, x * w, rtol=1e-6)
    b = np.random.default_rng(3).normal(size=(1, 6)).astype(np.float32)
    gs = xai_core.explain(model, x, "gradient_shap", layer="0", neuron=3, background=b, seed=0)
    np.testing.assert_allclose(gs.attributions, (x - b) * w, rtol=1e-5, atol=1e-6)


def test_the_same_call_without_neuron_explains_the_model_again():
    """The layer recording is the neuron call's only: a plain call afterwards explains the
    model's output (closed form on a linear model)."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 2)).eval()
    x = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)
    xai_core.explain(model, x, "saliency", layer="0", neuron=1)
    e = xai_core.explain(model, x, "saliency", target=1, abs=False)
    w = (model[1].weight @ model[0].weight).detach().numpy()
    np.testing.assert_allclose(e.attributions, np.tile(w[1], (2, 1)), rtol=1e-5)


class SkipsABranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.used, self.unused = nn.Linear(6, 3), nn.Linear(6, 3)

    def forward(self, x):
        return self.used(x)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"neuron": 1}, "needs layer="),
        ({"neuron": 1, "layer": "used", "target": 0}, "no target="),
        ({"neuron": -1, "layer": "used"}, "non-negative int"),
        ({"neuron": 1.5, "layer": "used"}, "non-negative int"),
        ({"neuron": 1, "layer": "nope"}, "nope"),
        ({"neuron": 1, "layer": "unused"}, "unused"),
    ],
)
def test_bad_neuron_calls_are_clear_errors_and_leave_the_model(options, match):
    model = SkipsABranch().eval()
    before = torch_state(model)
    with pytest.raises(xai_core.XaiError, match=match):
        xai_core.explain(model, np.zeros((2, 6), np.float32), "saliency", **options)
    assert torch_state(model) == before


def test_a_method_without_a_neuron_form_says_which_have_one():
    with pytest.raises(xai_core.OptionError, match="deeplift.*integrated_gradients.*saliency"):
        xai_core.explain(NeuronNet().eval(), images(1), "grad_cam", layer="conv2", neuron=(0, 0, 0))


RESNET_LAYER, RESNET_NEURON = "layer1.0.conv2", (1, 2, 3)


def resnet_images(n=2, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).normal(size=(n, 3, 16, 16))).astype(np.float32)


@pytest.mark.parametrize(
    "method, name, options, captum_options",
    [
        ("saliency", "NeuronGradient", {"abs": False}, {}),
        ("integrated_gradients", "NeuronIntegratedGradients", {"n_steps": 16}, {"n_steps": 16}),
        ("guided_backprop", "NeuronGuidedBackprop", {}, {}),
    ],
)
def test_neuron_methods_equal_captums_on_a_resnet(method, name, options, captum_options):
    """BatchNorm with real statistics, one in-place ReLU module reused in every block and
    `out += identity` after the layer: the recorded output must be the conv's own."""
    model, x = resnet(), resnet_images()
    before = torch_state(model)
    e = xai_core.explain(model, x, method, layer=RESNET_LAYER, neuron=RESNET_NEURON, **options)
    assert torch_state(model) == before
    unit = model.get_submodule(RESNET_LAYER)
    method_of_captum = getattr(captum_attr, name)(model, unit)
    assert_close(
        e.attributions, captum_attribute(method_of_captum, x, RESNET_NEURON, **captum_options)
    )


def test_neuron_deeplift_is_complete_on_a_resnet():
    """Sum of DeepLift's attributions = the neuron at x minus the neuron at the baseline."""
    model, x = resnet(), resnet_images()
    baselines = resnet_images(seed=4, scale=0.1)
    e = xai_core.explain(
        model, x, "deeplift", layer=RESNET_LAYER, neuron=RESNET_NEURON, baselines=baselines
    )
    seen = []
    hook = model.get_submodule(RESNET_LAYER).register_forward_hook(
        lambda _m, _i, out: seen.append(out[(slice(None), *RESNET_NEURON)].detach().clone())
    )
    try:
        with torch.no_grad():
            model(torch.from_numpy(x)), model(torch.from_numpy(baselines))
    finally:
        hook.remove()
    difference = (seen[0] - seen[1]).numpy().astype(np.float64)
    sums = e.attributions.reshape(len(x), -1).sum(axis=1, dtype=np.float64)
    np.testing.assert_allclose(sums, difference, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("variant", ["smoothgrad", "vargrad"])
@pytest.mark.parametrize(
    "method, name", [("saliency", "NeuronGradient"), ("guided_backprop", "NeuronGuidedBackprop")]
)
def test_noise_tunnel_over_a_neuron_equals_captums_neuron_method_on_the_copies(
    method, name, variant
):
    """Captum's NoiseTunnel(Neuron*): the neuron's method on the documented noisy copies
    (`xai_core.noise_tunnel`), aggregated per sample by Captum's formulas."""
    model, x = NeuronNet().eval(), images(2)
    nt = {"nt_samples": 3, "stdevs": 0.3, "seed": 5}
    options = {"abs": False} if method == "saliency" else {}
    e = xai_core.explain(
        model, x, method, layer="conv2", neuron=(1, 0, 1), noise_tunnel=variant, **nt, **options
    )
    rng = np.random.default_rng(nt["seed"])
    noise = rng.standard_normal((3, *x.shape), dtype=np.float32) * np.float32(0.3)
    copies = (x[None] + noise).reshape(-1, *x.shape[1:])
    per_copy = captum(getattr(captum_attr, name), model, "conv2", copies, (1, 0, 1))
    a = per_copy.reshape(3, 2, *x.shape[1:]).astype(np.float64)
    reference = a.mean(0) if variant == "smoothgrad" else a.var(0)
    assert_close(e.attributions, reference)
    unit = model.relu1(model.conv1(torch.from_numpy(x)))
    flat_index = np.ravel_multi_index((1, 0, 1), model.conv2(unit).shape[1:])
    np.testing.assert_array_equal(e.target, [flat_index] * 2)
