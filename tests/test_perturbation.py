"""Occlusion, feature ablation and RISE: forward passes only, on any backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation, Occlusion

import xai_core

from conftest import torch_state
from models import images, tabular, torch_cnn, torch_linear


@pytest.mark.parametrize(
    "window, strides, baselines",
    [
        ((1, 3, 3), 1, 0.0),
        ((1, 2, 2), (1, 2, 2), 0.5),
        ((1, 4, 3), (1, 2, 2), "per-sample"),
        ((1, 8, 8), 1, 0.1),
    ],
)
def test_occlusion_equals_captum(window, strides, baselines):
    model, x = torch_cnn(), images(3)
    if baselines == "per-sample":
        baselines = np.random.default_rng(2).uniform(size=x.shape).astype(np.float32)
    before = torch_state(model)
    expl = xai_core.explain(
        model, x, "occlusion", window=window, strides=strides, baselines=baselines, target=4
    )
    assert torch_state(model) == before
    b = torch.from_numpy(baselines) if isinstance(baselines, np.ndarray) else baselines
    ref = Occlusion(model).attribute(
        torch.from_numpy(x), sliding_window_shapes=window, strides=strides, baselines=b, target=4
    )
    np.testing.assert_allclose(expl.attributions, ref.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mask", [None, "quadrants", "rows"])
@pytest.mark.parametrize("baselines", [0.0, 0.3])
def test_feature_ablation_equals_captum(mask, baselines):
    model, x = torch_cnn(), images(3)
    feature_mask = {
        None: None,
        "quadrants": (np.arange(8)[:, None] // 4) * 2 + (np.arange(8)[None] // 4),
        "rows": np.repeat(np.arange(8)[:, None], 8, axis=1),
    }[mask]
    if feature_mask is not None:
        feature_mask = feature_mask[None]  # (1, 8, 8): broadcast over the channel
    expl = xai_core.explain(
        model,
        x,
        "feature_ablation",
        feature_mask=feature_mask,
        baselines=baselines,
        target=[1, 2, 3],
    )
    ref = FeatureAblation(model).attribute(
        torch.from_numpy(x),
        baselines=baselines,
        target=torch.tensor([1, 2, 3]),
        feature_mask=None if feature_mask is None else torch.from_numpy(feature_mask)[None],
    )
    np.testing.assert_allclose(expl.attributions, ref.numpy(), rtol=1e-5, atol=1e-6)


def test_ablating_a_feature_of_a_linear_model_is_w_times_x_minus_b():
    model, x = torch_linear(n_in=5, n_out=3), tabular(4, d=5)
    b = np.linspace(-1, 1, 5).astype(np.float32)
    expl = xai_core.explain(model, x, "feature_ablation", baselines=b, target=2)
    w = model[0].weight.detach().numpy()[2]
    np.testing.assert_allclose(expl.attributions, w * (x - b), rtol=1e-5, atol=1e-6)
    occ = xai_core.explain(model, x, "occlusion", window=(1,), baselines=b, target=2)
    np.testing.assert_allclose(occ.attributions, w * (x - b), rtol=1e-5, atol=1e-6)


def test_perturbations_go_to_the_model_in_batches(forward_rows):
    model, x = torch_cnn(), images(2)
    xai_core.explain(model, x, "occlusion", window=(1, 2, 2), strides=(1, 2, 2))
    assert max(forward_rows) == 16 * 2  # all 16 windows of both samples in one call
    forward_rows.clear()
    xai_core.explain(
        model, x, "occlusion", window=(1, 2, 2), strides=(1, 2, 2), internal_batch_size=6
    )
    assert max(forward_rows) <= 6 and sum(forward_rows) >= 32


def rise_reference(model, x, target, n_masks, cell, p, seed):
    """RISE written out from its documented draws, sample by sample, mask by mask."""
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    grids = (rng.random((n_masks, cell, cell)) < p).astype(np.float32)
    h, w = x.shape[2:]
    ch, cw = int(np.ceil(h / cell)), int(np.ceil(w / cell))
    shifts = rng.integers(0, [ch, cw], (n_masks, 2))
    saliency = np.zeros((len(x), h, w))
    for grid, (dy, dx) in zip(grids, shifts):
        up = F.interpolate(
            torch.from_numpy(grid)[None, None],
            size=((cell + 1) * ch, (cell + 1) * cw),
            mode="bilinear",
            align_corners=False,
        )[0, 0].numpy()
        mask = up[dy : dy + h, dx : dx + w]
        with torch.no_grad():
            out = model(torch.from_numpy(x * mask[None, None])).numpy()
        saliency += out[np.arange(len(x)), target][:, None, None] * mask
    return saliency / (n_masks * p)


def test_rise_follows_its_documented_draws():
    model, x = torch_cnn(), images(2)
    expl = xai_core.explain(model, x, "rise", n_masks=40, cell=3, p=0.4, seed=7, target=[0, 5])
    expected = rise_reference(model, x, np.array([0, 5]), 40, 3, 0.4, 7)
    np.testing.assert_allclose(expl.extras["saliency"], expected, rtol=1e-5, atol=1e-7)
    assert expl.attributions.shape == x.shape
    again = xai_core.explain(
        model, x, "rise", n_masks=40, cell=3, p=0.4, seed=7, target=[0, 5], internal_batch_size=7
    )
    np.testing.assert_allclose(again.attributions, expl.attributions, rtol=1e-6)


def test_perturbation_methods_take_token_ids_as_they_are():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Embedding(20, 4), torch.nn.Flatten(), torch.nn.Linear(20, 2)
    ).eval()
    ids = np.random.default_rng(0).integers(1, 20, (3, 5))
    occ = xai_core.explain(model, ids, "occlusion", window=(2,), baselines=0, target=1)
    abl = xai_core.explain(model, ids, "feature_ablation", baselines=0, target=1)
    rise = xai_core.explain(model, ids, "rise", n_masks=10, cell=2, seed=0, target=1)
    for expl in (occ, abl, rise):
        assert expl.attributions.shape == ids.shape and np.isfinite(expl.attributions).all()
    with torch.no_grad():
        full = model(torch.from_numpy(ids))[:, 1]
        padded = ids.copy()
        padded[:, 3] = 0
        drop = full - model(torch.from_numpy(padded))[:, 1]
    np.testing.assert_allclose(abl.attributions[:, 3], drop.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "method, options, message",
    [
        ("occlusion", {}, "needs window"),
        ("occlusion", {"window": (1, 9, 9)}, "larger than a sample"),
        ("occlusion", {"window": (1, 2, 2), "strides": (1, 3, 3)}, "strides"),
        ("occlusion", {"window": (2, 2)}, "one positive int per dimension"),
        ("feature_ablation", {"feature_mask": np.ones((3, 3), int)}, "broadcastable"),
        ("feature_ablation", {"feature_mask": np.ones((8, 8))}, "integer group ids"),
        ("rise", {"p": 1.5}, "keep probability"),
        ("rise", {"cell": 20}, "finer than"),
    ],
)
def test_bad_options_are_option_errors(method, options, message):
    with pytest.raises(xai_core.OptionError, match=message):
        xai_core.explain(torch_cnn(), images(2), method, **options)


@pytest.mark.parametrize("algorithm", ["kernel", "permutation", "partition"])
def test_kernel_shap_over_feature_groups_is_exact_on_a_linear_model(algorithm):
    model, x = torch_linear(n_in=6, n_out=2), tabular(3)
    background = tabular(5, seed=4)
    mask = np.array([0, 0, 1, 1, 1, 2])
    expl = xai_core.explain(
        model,
        x,
        "kernel_shap",
        background=background,
        feature_mask=mask,
        algorithm=algorithm,
        target=1,
        seed=0,
    )
    contributions = model[0].weight.detach().numpy()[1] * (x - background.mean(0))
    groups = np.stack([contributions[:, mask == g].sum(1) for g in range(3)], axis=1)
    np.testing.assert_allclose(expl.extras["group_values"], groups, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(expl.attributions, groups[:, mask], rtol=1e-4, atol=1e-6)
    assert np.abs(expl.convergence_delta).max() < 1e-4


def test_lime_over_feature_groups_recovers_a_linear_model():
    model, x = torch_linear(n_in=6, n_out=2), tabular(2)
    background = tabular(8, seed=4)
    mask = np.array([0, 0, 1, 1, 2, 2])
    expl = xai_core.explain(
        model, x, "lime", background=background, feature_mask=mask, n_samples=2000, target=0, seed=1
    )
    contributions = model[0].weight.detach().numpy()[0] * (x - background.mean(0))
    groups = np.stack([contributions[:, mask == g].sum(1) for g in range(3)], axis=1)
    np.testing.assert_allclose(expl.attributions, groups[:, mask], rtol=0.05, atol=0.02)


def test_lime_on_images_takes_superpixels_as_a_feature_mask():
    model, x = torch_cnn(), images(2)
    superpixels = (np.arange(8)[:, None] // 4) * 2 + (np.arange(8)[None] // 3)
    by_mask = xai_core.explain(
        model, x, "lime", feature_mask=superpixels[None], n_samples=100, seed=3
    )
    by_function = xai_core.explain(
        model, x, "lime", segmentation_fn=lambda image: superpixels, n_samples=100, seed=3
    )
    np.testing.assert_allclose(by_mask.attributions, by_function.attributions, rtol=1e-10)
    assert len(np.unique(by_mask.attributions[0])) <= 6
