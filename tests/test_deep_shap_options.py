"""deep_shap takes output= and forward_kwargs like every other method, or refuses them.

Before, shap.DeepExplainer got the raw model: a margin `output=` came back as shap's
class-0 values, and a masking keyword left attributions on masked features. The
reference is shap.DeepExplainer on the wrapper a user would write by hand.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import shap
import torch
from transformers import ConvNextConfig, ConvNextForImageClassification

import xai_core
from xai_core_explainers.deep_shap import AdditivityWarning

from conftest import torch_state


class Masked(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
        )

    def forward(self, x, mask=None, scale=1.0):
        return self.net(x * mask) * scale if mask is not None else self.net(x) * scale


def margin(out):
    return out[:, 2:3] - out[:, 0:1]


class ByHand(torch.nn.Module):
    """What a shap user writes: the kwargs and the output picked inside forward."""

    def __init__(self, model, mask, pick):
        super().__init__()
        self.model, self.mask, self.pick = model, mask, pick

    def forward(self, x):
        return self.pick(self.model(x, mask=self.mask.expand(len(x), -1), scale=2.0))


def shap_by_hand(model, mask_row, pick, background, x_row):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.DeepExplainer(ByHand(model, mask_row, pick), torch.from_numpy(background))
        values = explainer.shap_values(torch.from_numpy(x_row), check_additivity=False)
    return np.asarray(values)


def test_deep_shap_passes_output_and_batch_first_forward_kwargs_to_shap():
    model = Masked().eval()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 6)).astype(np.float32)
    background = rng.normal(size=(8, 6)).astype(np.float32)
    mask = (rng.uniform(size=(3, 6)) > 0.4).astype(np.float32)
    mask[:, 0] = 0  # feature 0 is masked for every sample
    before = torch_state(model)
    expl = xai_core.explain(
        model,
        x,
        "deep_shap",
        background=background,
        output=margin,
        forward_kwargs={"mask": mask, "scale": 2.0},
        target=0,
    )
    assert torch_state(model) == before
    for i in range(3):
        want = shap_by_hand(
            model, torch.from_numpy(mask[i : i + 1]), margin, background, x[i : i + 1]
        )
        np.testing.assert_allclose(expl.attributions[i], want.reshape(6), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(expl.attributions[mask == 0], 0)  # masked: exactly nothing
    # additivity against the model with those kwargs and that output
    f = margin(model(torch.from_numpy(x), mask=torch.from_numpy(mask), scale=2.0)).detach()
    gap = expl.attributions.sum(1) + expl.extras["base_values"] - f.numpy()[:, 0]
    np.testing.assert_allclose(gap, 0, atol=1e-4)


def test_deep_shap_on_keras_picks_the_output_and_refuses_keyword_arguments():
    keras.utils.set_random_seed(0)
    inp = keras.Input((5,))
    hidden = keras.layers.Dense(6, activation="relu")(inp)
    model = keras.Model(inp, [keras.layers.Dense(3)(hidden), keras.layers.Dense(2)(hidden)])
    rng = np.random.default_rng(0)
    x, background = (
        rng.normal(size=(2, 5)).astype("float32"),
        rng.normal(size=(6, 5)).astype("float32"),
    )
    expl = xai_core.explain(model, x, "deep_shap", background=background, output=1, target=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = shap.DeepExplainer((model.inputs, model.outputs[1]), background)
        want = np.asarray(reference.shap_values(x, check_additivity=False))[..., 1]
    np.testing.assert_allclose(expl.attributions, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(xai_core.CapabilityError, match="gradient_shap"):
        xai_core.explain(
            model,
            x,
            "deep_shap",
            background=background,
            output=1,
            forward_kwargs={"mask": None},
        )


def test_deep_shap_runs_a_huggingface_convnext_and_refuses_torchscript_clearly():
    torch.manual_seed(0)
    config = ConvNextConfig(
        num_channels=3, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, num_labels=3
    )
    model = ConvNextForImageClassification(config).eval()  # ModelOutput, empty ModuleLists
    x = np.random.default_rng(0).uniform(size=(2, 3, 32, 32)).astype(np.float32)
    before = torch_state(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AdditivityWarning)  # LayerNorm, GELU: shap's rules
        expl = xai_core.explain(model, x, "deep_shap", background=np.zeros_like(x), target=1)
    assert expl.attributions.shape == x.shape and np.isfinite(expl.attributions).all()
    assert torch_state(model) == before
    scripted = torch.jit.trace(torch.nn.Linear(4, 3), torch.zeros(1, 4))
    rows = np.zeros((2, 4), np.float32)
    with pytest.raises(xai_core.CapabilityError, match="TorchScript"):
        xai_core.explain(scripted, rows, "deep_shap", background=rows)


class Segmenter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x, keep=None):
        y = torch.relu(self.conv(x))
        return y * keep if keep is not None else y


def test_deep_shap_explains_a_pixel_of_a_segmentation_map_selected_with_a_keyword():
    """Captum's DeepLift on the same pixel (a ReLU-conv model: DeepLift's rescale rule
    and shap's agree), with the keyword passed as additional_forward_args."""
    from captum.attr import DeepLift

    model = Segmenter().eval()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 6, 6)).astype(np.float32)
    keep = (rng.uniform(size=(2, 1, 6, 6)) > 0.3).astype(np.float32)
    keep[:, :, 2, 2] = 1
    zeros = np.zeros((1, 3, 6, 6), np.float32)
    expl = xai_core.explain(
        model, x, "deep_shap", background=zeros, target=(1, 2, 2), forward_kwargs={"keep": keep}
    )

    def pixel(inputs, keep):
        return model(inputs, keep=keep)[:, 1, 2, 2][:, None]

    want = DeepLift(Wrapped(pixel, model)).attribute(
        torch.from_numpy(x),
        baselines=torch.zeros(1, 3, 6, 6),
        target=0,
        additional_forward_args=(torch.from_numpy(keep),),
    )
    np.testing.assert_allclose(expl.attributions, want.detach().numpy(), rtol=1e-4, atol=1e-6)


class Wrapped(torch.nn.Module):
    """`fn` as a module that owns `model`, so that DeepLift's hooks reach its ReLUs."""

    def __init__(self, fn, model):
        super().__init__()
        self.fn = fn
        self.model = model

    def forward(self, *args):
        return self.fn(*args)
