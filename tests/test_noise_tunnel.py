"""`noise_tunnel=` over any attribution method (issue 22): Captum's NoiseTunnel, with the
noisy copies drawn as `xai_core.noise_tunnel` documents. References: Captum's base method
on those same copies, aggregated by Captum's formulas; and the same weights on Keras and
Paddle."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import xai_core
from xai_core.testing.twins import cnn_weights, from_layout, to_layout, twin

from models import images

captum_attr = pytest.importorskip("captum.attr")

NT = {"nt_samples": 4, "stdevs": 0.2, "seed": 3}


def copies_of(x: np.ndarray) -> np.ndarray:
    """The documented draws: copy k of the batch is x + rng.standard_normal(...)[k] * stdevs."""
    rng = np.random.default_rng(NT["seed"])
    noise = rng.standard_normal((NT["nt_samples"], *x.shape), dtype=np.float32) * np.float32(0.2)
    return (x[None] + noise).reshape(-1, *x.shape[1:])


def aggregated(per_copy: np.ndarray, variant: str, n: int) -> np.ndarray:
    a = per_copy.reshape(NT["nt_samples"], n, *per_copy.shape[1:]).astype(np.float64)
    return {"smoothgrad": a.mean(0), "smoothgrad_sq": (a * a).mean(0), "vargrad": a.var(0)}[variant]


CAPTUM = {
    "integrated_gradients": ("IntegratedGradients", {"n_steps": 8}),
    "guided_backprop": ("GuidedBackprop", {}),
    "deconvolution": ("Deconvolution", {}),  # (DeepLift: Captum's hooks go stale on this
    # CNN's ReLU -> max-pool, test_modified_backprop.py)
    "input_x_gradient": ("InputXGradient", {}),
}


@pytest.mark.parametrize("variant", ["smoothgrad", "smoothgrad_sq", "vargrad"])
@pytest.mark.parametrize("method", CAPTUM)
def test_noise_tunnel_equals_captums_method_on_the_documented_copies(method, variant):
    model = twin("torch", "cnn", cnn_weights()).eval()
    x = images(3)
    cls, options = CAPTUM[method]
    e = xai_core.explain(model, x, method, noise_tunnel=variant, target=1, **NT, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_copy = getattr(captum_attr, cls)(model).attribute(
            torch.from_numpy(copies_of(x)), target=1, **options
        )
    reference = aggregated(per_copy.detach().numpy(), variant, len(x))
    np.testing.assert_allclose(e.attributions, reference, atol=1e-5 * np.abs(reference).max())
    assert e.options["noise_tunnel"] == variant and e.options["seed"] == NT["seed"]


def test_one_seed_draws_the_same_copies_for_the_three_variants():
    model, x = twin("torch", "cnn", cnn_weights()).eval(), images(2)
    got = {
        v: xai_core.explain(model, x, "saliency", abs=False, noise_tunnel=v, **NT).attributions
        for v in ("smoothgrad", "smoothgrad_sq", "vargrad")
    }
    squares = got["smoothgrad_sq"].astype(np.float64)
    mean = got["smoothgrad"].astype(np.float64)
    np.testing.assert_allclose(got["vargrad"], squares - mean**2, rtol=1e-4, atol=1e-9)


def test_the_target_is_each_samples_own_predicted_class_and_baselines_follow_copies():
    model, x = twin("torch", "cnn", cnn_weights()).eval(), images(3)
    baselines = images(3, seed=8) * 0.1  # one per sample
    e = xai_core.explain(
        model,
        x,
        "integrated_gradients",
        noise_tunnel="smoothgrad",
        baselines=baselines,
        n_steps=8,
        **NT,
    )
    with torch.no_grad():
        predicted = model(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(e.target, predicted.argmax(axis=1))
    np.testing.assert_allclose(e.predictions, predicted, rtol=1e-6)
    target = np.tile(e.target, NT["nt_samples"])
    reference = captum_attr.IntegratedGradients(model).attribute(
        torch.from_numpy(copies_of(x)),
        baselines=torch.from_numpy(np.tile(baselines, (NT["nt_samples"], 1, 1, 1))),
        target=torch.from_numpy(target),
        n_steps=8,
    )
    expected = aggregated(reference.detach().numpy(), "smoothgrad", 3)
    np.testing.assert_allclose(e.attributions, expected, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("framework", ["tensorflow", "paddle"])
@pytest.mark.parametrize("method", ["guided_backprop", "integrated_gradients"])
def test_noise_tunnel_gives_the_same_numbers_on_every_framework(framework, method):
    pytest.importorskip(framework)
    x = images(3)
    options = {
        "noise_tunnel": "vargrad",
        **NT,
        **({"n_steps": 8} if method != "guided_backprop" else {}),
    }
    reference = xai_core.explain(twin("torch", "cnn", cnn_weights()), x, method, **options)
    other = xai_core.explain(
        twin(framework, "cnn", cnn_weights()), to_layout(x, framework), method, **options
    )
    np.testing.assert_array_equal(other.target, reference.target)
    scale = np.abs(reference.attributions).max()
    np.testing.assert_allclose(
        from_layout(other.attributions, framework), reference.attributions, atol=1e-5 * scale
    )


@pytest.mark.parametrize(
    "method, options, match",
    [
        ("smoothgrad", {"noise_tunnel": "smoothgrad"}, "draws noise of its own"),
        ("saliency", {"noise_tunnel": "smooth"}, "noise_tunnel must be one of"),
        ("saliency", {"noise_tunnel": "vargrad", "nt_samples": 0}, "nt_samples"),
        ("saliency", {"noise_tunnel": "vargrad", "stdevs": -1.0}, "stdevs"),
    ],
)
def test_bad_noise_tunnel_options_are_refused(method, options, match):
    with pytest.raises(xai_core.OptionError, match=match):
        xai_core.explain(twin("torch", "cnn", cnn_weights()), images(2), method, **options)
