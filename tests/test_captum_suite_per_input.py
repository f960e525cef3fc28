"""Captum's own multi-input cases, with Captum's hard-coded numbers (from captum's
tests/attr/test_occlusion.py and test_feature_ablation.py) and Captum run live.

Before, per-input options were packed as if they were baselines (a per-input
`feature_mask` became float and was refused, per-input `feature_names` a raw
ValueError), and occlusion slid one window over the concatenated row, so a window
straddled two inputs (Captum's case: 240 where Captum has 400).
"""

from __future__ import annotations

from itertools import combinations
from math import factorial

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation, Occlusion
from captum.testing.helpers.basic_models import (
    BasicModel_MultiLayer,
    BasicModel_MultiLayer_MultiInput,
)

import xai_core

INP1 = np.array([[23.0, 100.0, 0.0], [20.0, 50.0, 30.0]], np.float32)
INP2 = np.array([[20.0, 50.0, 30.0], [0.0, 100.0, 0.0]], np.float32)
INP3 = np.array([[0.0, 100.0, 10.0], [2.0, 10.0, 3.0]], np.float32)


def close(got, want):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-4)


def test_occlusion_windows_are_per_input_as_in_captum_s_test():
    net = BasicModel_MultiLayer_MultiInput()
    expected = (
        [[492.0, 492.0, 492.0], [400.0, 400.0, 400.0]],
        [[80.0, 200.0, 120.0], [0.0, 400.0, 0.0]],
        [[400.0, 420.0, 440.0], [48.0, 50.0, 52.0]],
    )
    expl = xai_core.explain(
        net,
        (INP1, INP2, INP3),
        "occlusion",
        window=((3,), (1,), (2,)),
        forward_kwargs={"scale": 1},
        target=0,
    )
    close(expl.attributions, expected)
    # two attributed inputs, the third passed along (Captum's additional_forward_args)
    two = xai_core.explain(
        net,
        (INP1, INP2),
        "occlusion",
        window=((3,), (1,)),
        forward_kwargs={"x3": INP3, "scale": 1},
        target=0,
    )
    close(two.attributions, expected[:1])
    with pytest.raises(xai_core.OptionError, match="one shape per input"):
        xai_core.explain(
            net, (INP1, INP2, INP3), "occlusion", window=(2,), target=0, forward_kwargs={"scale": 1}
        )


def test_occlusion_per_input_with_strides_equals_captum_live():
    torch.manual_seed(0)
    net = BasicModel_MultiLayer_MultiInput()
    rng = np.random.default_rng(0)
    a, b, c = (rng.normal(size=(3, 3)).astype(np.float32) for _ in range(3))
    windows, strides = ((2,), (1,), (3,)), (1, 1, 2)
    expl = xai_core.explain(
        net,
        (a, b, c),
        "occlusion",
        window=windows,
        strides=strides,
        baselines=(0.5, 0.0, -1.0),
        forward_kwargs={"scale": 2},
        target=1,
    )
    want = Occlusion(net).attribute(
        tuple(map(torch.from_numpy, (a, b, c))),
        sliding_window_shapes=windows,
        strides=strides,
        baselines=(0.5, 0.0, -1.0),
        additional_forward_args=(2,),
        target=1,
    )
    close(expl.attributions, [w.numpy() for w in want])


def test_feature_ablation_per_input_and_per_sample_masks_equal_captum():
    """Captum's multi-input mask case: one id is one feature across the inputs (Captum 0.9's
    cross-tensor masks; its numbers are 1092 where Captum before 0.8, taking each input
    alone, had 492 — disjoint ids give those, checked too)."""
    net = BasicModel_MultiLayer_MultiInput()
    mask1 = np.array([[1, 1, 1], [0, 1, 0]])
    mask2 = np.array([[0, 1, 2]])
    mask3 = np.array([[0, 1, 2], [0, 0, 0]])
    captum = FeatureAblation(net).attribute(
        tuple(map(torch.from_numpy, (INP1, INP2, INP3))),
        feature_mask=tuple(map(torch.from_numpy, (mask1, mask2, mask3))),
        additional_forward_args=(1,),
        target=0,
    )
    captum = [c.numpy() for c in captum]
    np.testing.assert_allclose(captum[0], [[1092.0, 1092.0, 1092.0], [260.0, 600.0, 260.0]])
    expl = xai_core.explain(
        net,
        (INP1, INP2, INP3),
        "feature_ablation",
        feature_mask=(mask1, mask2, mask3),
        forward_kwargs={"scale": 1},
        target=0,
    )
    close(expl.attributions, captum)
    as_dict = xai_core.explain(
        lambda_model(net),
        {"x1": INP1, "x2": INP2, "x3": INP3},
        "feature_ablation",
        feature_mask={"x1": mask1, "x2": mask2, "x3": mask3},
        target=0,
    )
    close(as_dict.attributions.values(), captum)
    # each input alone (Captum's older tests): ids made disjoint by hand
    alone = xai_core.explain(
        net,
        (INP1, INP2, INP3),
        "feature_ablation",
        feature_mask=(mask1, mask2 + 2, mask3 + 5),
        forward_kwargs={"scale": 1},
        target=0,
    )
    close(
        alone.attributions,
        (
            [[492.0, 492.0, 492.0], [200.0, 200.0, 200.0]],
            [[80.0, 200.0, 120.0], [0.0, 400.0, 0.0]],
            [[0.0, 400.0, 40.0], [60.0, 60.0, 60.0]],
        ),
    )


def lambda_model(net):
    class ByName(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x1, x2, x3):
            return self.net(x1, x2, x3, 1)

    return ByName()


def test_a_single_input_per_sample_mask_as_in_captum_s_test():
    net = BasicModel_MultiLayer()
    inp = np.array([[2.0, 10.0, 3.0], [20.0, 50.0, 30.0]], np.float32)
    mask = np.array([[0, 0, 1], [1, 1, 0]])
    expl = xai_core.explain(net, inp, "feature_ablation", feature_mask=mask, target=0)
    np.testing.assert_allclose(expl.attributions, [[41.0, 41.0, 12.0], [280.0, 280.0, 120.0]])


def test_kernel_shap_and_lime_take_per_input_masks_and_names():
    net = BasicModel_MultiLayer_MultiInput()
    masks = (np.array([[0, 0, 1]]), np.array([[1, 2, 2]]), np.array([[3, 3, 3]]))
    background = tuple(np.zeros((1, 3), np.float32) for _ in range(3))
    expl = xai_core.explain(
        net,
        (INP1, INP2, INP3),
        "kernel_shap",
        feature_mask=masks,
        background=background,
        forward_kwargs={"scale": 1},
        target=0,
        seed=0,
        n_samples=200,
        feature_names=(["a0", "a1", "a2"], ["b0", "b1", "b2"], ["c0", "c1", "c2"]),
    )
    # 4 features: shap enumerates every coalition, so these are the exact Shapley values
    inputs = np.stack([INP1, INP2, INP3], axis=1)  # (N, 3 inputs, 3)
    ids = np.stack([m[0] for m in masks])  # (3 inputs, 3): feature of each element

    def f(present):  # the model with the absent features at the baseline 0
        kept = np.where(np.isin(ids, present)[None], inputs, 0.0)
        with torch.no_grad():
            return net(*torch.from_numpy(kept.astype(np.float32)).unbind(1), 1)[:, 0].numpy()

    phi = np.zeros((2, 4))
    for j in range(4):
        others = [k for k in range(4) if k != j]
        for size in range(4):
            for subset in combinations(others, size):
                weight = factorial(size) * factorial(3 - size) / factorial(4)
                phi[:, j] += weight * (f([*subset, j]) - f(list(subset)))
    want = [phi[:, m[0]] for m in masks]
    close(expl.attributions, want)
    with pytest.raises(xai_core.OptionError, match="for input 1 has 2 names"):
        xai_core.explain(
            net,
            (INP1, INP2, INP3),
            "lime",
            background=background,
            target=0,
            forward_kwargs={"scale": 1},
            feature_names=(["a0", "a1", "a2"], ["b0", "b1"], []),
        )


def test_infidelity_takes_perturbations_in_the_inputs_structure_as_captum():
    from captum.metrics import infidelity

    net = BasicModel_MultiLayer_MultiInput()
    rng = np.random.default_rng(0)
    k, n = 4, 2
    noise = tuple(rng.normal(0, 60, size=(k, n, 3)).astype(np.float32) for _ in range(3))
    expl = xai_core.explain(
        net, (INP1, INP2, INP3), "saliency", abs=False, forward_kwargs={"scale": 1}, target=0
    )
    ours = xai_core.evaluate(net, expl, "infidelity", perturbations=noise)

    def perturb(inputs):  # Captum repeats each sample k times, sample by sample
        drawn = tuple(torch.from_numpy(p.transpose(1, 0, 2).reshape(n * k, 3)) for p in noise)
        return drawn, tuple(x - d for x, d in zip(inputs, drawn))

    theirs = infidelity(
        net,
        perturb,
        tuple(map(torch.from_numpy, (INP1, INP2, INP3))),
        tuple(torch.from_numpy(a.astype(np.float32)) for a in expl.attributions),
        additional_forward_args=(1,),
        target=0,
        n_perturb_samples=k,
    )
    assert ours.max() > 1.0  # the noise crosses the ReLUs: a real infidelity
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-6 * ours.max())
    with pytest.raises(xai_core.OptionError, match="for input 1 has shape"):
        xai_core.evaluate(
            net, expl, "infidelity", perturbations=(noise[0], noise[1][:, :1], noise[2])
        )


@pytest.mark.parametrize("method", ["kernel_shap", "gradient_shap"])
def test_a_scalar_background_is_one_reference_row_closed_form(method):
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 3)
    x = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    options = {"n_samples": 20, "seed": 0}
    expl = xai_core.explain(net, x, method, background=0.5, target=2, **options)
    w = net.weight.detach().numpy()[2]
    np.testing.assert_allclose(expl.attributions, w * (x - 0.5), rtol=1e-4, atol=1e-5)
