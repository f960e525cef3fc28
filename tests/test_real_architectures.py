"""Real architectures, PyTorch: in-place ops, BatchNorm, residuals, attention.

References never go through xai_core's hooks: Captum on the same model, or the
layer recomputed by hand without in-place operations.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, LayerGradCam, Saliency

import xai_core
from xai_core_explainers.deep_shap import AdditivityWarning

from conftest import torch_state
from real_models import MobileNetish, resnet, vit


def images(n=3, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, 3, size, size)).astype(np.float32)


def test_activations_before_an_in_place_relu_are_not_clipped():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(inplace=True))
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    expl = xai_core.explain(model, x, "activations", layers=["0", "1"])
    with torch.no_grad():
        linear = model[0](torch.from_numpy(x)).numpy()
    assert (linear < 0).any()
    np.testing.assert_allclose(expl.activations["0"], linear, rtol=1e-6)
    np.testing.assert_allclose(expl.activations["1"], np.maximum(linear, 0), rtol=1e-6)


def test_resnet_layers_are_captured_before_the_next_in_place_write():
    model, x = resnet(), images()
    names = ["bn1", "layer1.0.bn1", "layer1.0.bn2", "layer1.0"]
    expl = xai_core.explain(model, x, "activations", layers=names)
    with torch.no_grad():  # the same layers, recomputed without in-place operations
        t = torch.from_numpy(x)
        block = model.layer1[0]
        stem = model.stem(t)
        bn1 = block.bn1(block.conv1(stem))
        bn2 = block.bn2(block.conv2(torch.relu(bn1)))
        expected = {
            "bn1": model.bn1(model.conv1(t)),
            "layer1.0.bn1": bn1,
            "layer1.0.bn2": bn2,
            "layer1.0": torch.relu(bn2 + stem),
        }
    for name in names:
        np.testing.assert_allclose(
            expl.activations[name], expected[name].numpy(), rtol=1e-5, atol=1e-6, err_msg=name
        )


@pytest.mark.parametrize("layer", ["layer1.0.bn1", "layer1.0.bn2", "layer1.0", "layer2.0.conv1"])
def test_grad_cam_on_a_resnet_equals_captum(layer):
    model, x = resnet(), images()
    before = torch_state(model)
    expl = xai_core.explain(model, x, "grad_cam", layer=layer, target=1, relu_attributions=False)
    assert torch_state(model) == before
    module = model.get_submodule(layer)
    reference = LayerGradCam(model, module).attribute(torch.from_numpy(x), target=1)
    np.testing.assert_allclose(
        expl.extras["layer_attributions"], reference[:, 0].detach().numpy(), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("build", [resnet, lambda: MobileNetish().eval(), vit])
def test_gradient_methods_equal_captum_on_real_architectures(build):
    torch.manual_seed(0)
    model, x = build(), images(2)
    t = torch.from_numpy(x)
    sal = xai_core.explain(model, x, "saliency", target=0)
    ref = Saliency(model).attribute(t, target=0).numpy()
    np.testing.assert_allclose(sal.attributions, ref, rtol=1e-4, atol=1e-6)
    ig = xai_core.explain(model, x, "integrated_gradients", target=2, n_steps=16)
    ref = IntegratedGradients(model).attribute(t, target=2, n_steps=16).detach().numpy()
    np.testing.assert_allclose(ig.attributions, ref, rtol=1e-3, atol=1e-5)


class WithUnusedLayers(torch.nn.Module):
    """`spare` runs but its output is discarded; `never` is owned and never called."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.spare = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.never = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        self.spare(x)
        return self.fc(self.conv(x).relu().mean((2, 3)))


def test_a_layer_that_does_not_reach_the_output_is_refused_like_captum():
    """The output does not depend on `spare`: Grad-CAM there is an error that says so, not
    zeros that say nothing (Captum 0.9 raises autograd's 'not used in the graph')."""
    torch.manual_seed(0)
    model, x = WithUnusedLayers().eval(), images(2, 8)
    before = torch_state(model)
    with pytest.raises(RuntimeError, match="not have been used"):
        LayerGradCam(model, model.spare).attribute(torch.from_numpy(x), target=0)
    with pytest.raises(xai_core.GradientNotReachedError, match="layer 'spare'"):
        xai_core.explain(model, x, "grad_cam", layer="spare", target=0)
    assert torch_state(model) == before


@pytest.mark.parametrize(
    "method, options", [("grad_cam", {"layer": "never"}), ("activations", {"layers": ["never"]})]
)
def test_a_layer_that_never_runs_is_named_in_a_clear_error(method, options):
    torch.manual_seed(0)
    model = WithUnusedLayers().eval()
    before = torch_state(model)
    with pytest.raises(xai_core.OptionError, match="'never' did not run"):
        xai_core.explain(model, images(2, 8), method, **options)
    assert torch_state(model) == before


def test_deep_shap_on_in_place_relus_leaves_the_model_as_it_was():
    model, x = resnet(), images(2)
    background = images(4, seed=1)
    for p in model.parameters():  # a user's gradients from training must survive
        p.grad = torch.full_like(p, 0.5)
    names = [n for n, _ in model.named_parameters()]
    keys = list(model.state_dict())
    before = torch_state(model)
    expl = xai_core.explain(model, x, "deep_shap", background=background, target=1)
    assert np.isfinite(expl.attributions).all() and expl.attributions.shape == x.shape
    assert [n for n, _ in model.named_parameters()] == names
    assert list(model.state_dict()) == keys
    assert torch_state(model) == before
    assert all(float(p.grad.mean()) == 0.5 for p in model.parameters())
    assert all(m.inplace for m in model.modules() if isinstance(m, torch.nn.ReLU))
    # the next explanation on the same model works
    xai_core.explain(model, x, "saliency")


class FailsOnLargeBatches(torch.nn.Module):
    """Fails once shap has hooked it: shap runs background and inputs together."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)
        self.act = torch.nn.ReLU()

    def forward(self, x):
        if len(x) > 3:
            raise RuntimeError("this model takes at most 3 rows")
        return self.act(self.fc(x))


def test_a_failed_deep_shap_leaves_no_hooks_and_names_gradient_shap():
    torch.manual_seed(0)
    model = FailsOnLargeBatches().eval()
    x = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    before = torch_state(model)
    with pytest.raises(xai_core.CapabilityError, match="gradient_shap"):
        xai_core.explain(model, x, "deep_shap", background=np.zeros((3, 4), np.float32))
    assert torch_state(model) == before
    assert [n for n, _ in model.named_parameters()] == ["fc.weight", "fc.bias"]
    xai_core.explain(model, x, "saliency")


def test_deep_shap_warns_when_its_values_do_not_add_up():
    model, x = vit(), images(2)
    with pytest.warns(AdditivityWarning, match="do not add up"):
        expl = xai_core.explain(model, x, "deep_shap", background=images(3, seed=2))
    assert np.abs(expl.convergence_delta).max() > 1e-2


def test_every_layer_that_runs_is_captured_by_default():
    torch.manual_seed(0)
    expl = xai_core.explain(WithUnusedLayers().eval(), images(2, 8), "activations")
    assert set(expl.activations) == {"conv", "spare", "fc"}


def test_lime_on_a_64_pixel_image_with_its_default_segmentation():
    model, x = resnet(), images(1, 64)
    expl = xai_core.explain(model, x, "lime", n_samples=60, seed=0)
    assert expl.attributions.shape == x.shape and np.isfinite(expl.attributions).all()
    assert len(np.unique(expl.attributions[0, 0])) > 4  # quickshift found several segments


def test_grad_cam_on_vision_transformer_tokens_equals_a_hand_computation():
    model, x = vit(), images(2)
    layer = model.encoder.layers[1]
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.setdefault("tokens", o))
    try:
        out = model(torch.from_numpy(x))
        (grad,) = torch.autograd.grad(out[:, 1].sum(), store["tokens"])
    finally:
        handle.remove()
    act = store["tokens"].detach()[:, 1:].reshape(2, 4, 4, 16)  # patches on the 4 x 4 grid
    weights = grad[:, 1:].reshape(2, 4, 4, 16).mean(dim=(1, 2), keepdim=True)
    expected = torch.relu((weights * act).sum(-1)).numpy()
    expl = xai_core.explain(
        model, x, "grad_cam", layer="encoder.layers.1", token_grid=(4, 4), target=1
    )
    np.testing.assert_allclose(expl.extras["layer_attributions"], expected, rtol=1e-4, atol=1e-7)
    assert expl.attributions.shape == x.shape
    with pytest.raises(xai_core.OptionError, match="token_grid"):
        xai_core.explain(model, x, "grad_cam", layer="encoder.layers.1", target=1)


def test_unknown_layer_lists_leaves_and_blocks():
    with pytest.raises(xai_core.UnknownLayerError, match=r"accepted too: .*layer1\.0"):
        xai_core.explain(resnet(), images(1), "grad_cam", layer="layer9.0")
