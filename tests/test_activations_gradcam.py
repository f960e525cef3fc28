"""Activation capture and Grad-CAM: against direct computation, Captum and torch's interpolate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam

import xai_core

from conftest import torch_state
from explainers_helpers import resize_bilinear
from models import images, tabular, torch_cnn, torch_mlp


def direct_torch_cnn(model, x):
    """Every layer of the torch CNN twin computed by calling its modules one by one."""
    with torch.no_grad():
        out = {}
        h = torch.from_numpy(x)
        for name in ["conv1", "relu1", "pool", "conv2", "relu2", "gap", "flatten", "fc"]:
            h = getattr(model, name)(h)
            out[name] = h.numpy()
    return out


def test_activations_equal_direct_computation():
    model, x = torch_cnn(), images(5)
    expl = xai_core.explain(model, x, "activations", layers=None, internal_batch_size=2)
    direct = direct_torch_cnn(model, x)
    assert list(expl.activations) == list(direct)  # every leaf, in order
    for name, value in direct.items():
        np.testing.assert_allclose(expl.activations[name], value, atol=1e-5 * np.abs(value).max())
    np.testing.assert_allclose(
        expl.predictions, direct["fc"], atol=1e-5 * np.abs(direct["fc"]).max()
    )
    assert expl.attributions is None and expl.options["channels_last"] is False


def test_patterns_select_layers_and_unknown_names_list_the_layers():
    model, x = torch_cnn(), images(2)
    expl = xai_core.explain(model, x, "activations", layers="conv*")
    assert list(expl.activations) == ["conv1", "conv2"]
    expl = xai_core.explain(model, x, "activations", layers=["fc", "relu?"])
    assert list(expl.activations) == ["fc", "relu1", "relu2"]
    for bad in (["conv3"], "dense*"):
        with pytest.raises(xai_core.UnknownLayerError) as info:
            xai_core.explain(model, x, "activations", layers=bad)
        assert "conv1" in str(info.value) and "flatten" in str(info.value)


def test_a_container_module_can_be_named_exactly():
    model = torch.nn.Sequential(
        torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU()), torch.nn.Linear(4, 2)
    )
    expl = xai_core.explain(model, tabular(3), "activations", layers=["0"])
    with torch.no_grad():
        np.testing.assert_allclose(expl.activations["0"], model[0](torch.from_numpy(tabular(3))))


def test_capture_leaves_no_hook_also_after_an_error():
    model = torch_mlp()
    model.train()
    before = torch_state(model)
    xai_core.explain(model, tabular(2), "activations", layers=["fc1", "relu"])
    with pytest.raises(xai_core.InputError):
        xai_core.explain(model, tabular(2)[:, :4], "activations", layers=["fc1"])
    with pytest.raises(xai_core.OptionError):
        xai_core.explain(model, tabular(2), "grad_cam", layer="fc1")
    assert torch_state(model) == before


@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("layer", ["conv1", "conv2"])
def test_grad_cam_equals_captum_layer_grad_cam(layer, relu):
    model, x, target = torch_cnn(), images(4), [0, 4, 8, 9]
    expl = xai_core.explain(
        model, x, "grad_cam", layer=layer, target=target, relu_attributions=relu
    )
    reference = LayerGradCam(model, getattr(model, layer)).attribute(
        torch.from_numpy(x), target=torch.tensor(target), relu_attributions=relu
    )
    reference = reference.detach().numpy()[:, 0]
    cam = expl.extras["layer_attributions"]
    np.testing.assert_allclose(cam, reference, rtol=1e-5, atol=1e-6 * np.abs(reference).max())
    assert expl.attributions.shape == x.shape  # upsampled to the input, its layout kept


def test_grad_cam_upsampling_equals_torch_bilinear():
    maps = np.random.default_rng(0).uniform(size=(3, 4, 5))
    ours = resize_bilinear(maps, (8, 13))
    reference = torch.nn.functional.interpolate(
        torch.from_numpy(maps)[:, None], size=(8, 13), mode="bilinear", align_corners=False
    )[:, 0].numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-12)


def test_grad_cam_needs_a_spatial_layer():
    with pytest.raises(xai_core.OptionError) as info:
        xai_core.explain(torch_cnn(), images(2), "grad_cam", layer="fc")
    assert "no spatial or time axis" in str(info.value) and "conv1, conv2" in str(info.value)
    with pytest.raises(xai_core.OptionError, match="layer=<name"):
        xai_core.get_explainer("grad_cam")
    with pytest.raises(xai_core.UnknownLayerError, match="conv2"):
        xai_core.explain(torch_cnn(), images(2), "grad_cam", layer="conv9")


def test_grad_cam_and_feature_map_pictures():
    from matplotlib.figure import Figure

    from xai_core.plotting import plot_feature_maps

    model, x = torch_cnn(), images(3)
    cam = xai_core.explain(model, x, "grad_cam", layer="conv2")
    assert isinstance(cam.plot(), Figure)
    acts = xai_core.explain(model, x, "activations", layers=["conv2"])
    fig = plot_feature_maps(acts, "conv2", sample=1)
    drawn = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(drawn) == 16
    np.testing.assert_allclose(drawn[5], acts.activations["conv2"][1, 5])
