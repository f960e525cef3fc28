"""Several inputs, keyword arguments, structured and multi-axis outputs (PyTorch vs Captum)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, Saliency

import xai_core

from conftest import torch_state


class TwoInputs(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(4, 8)
        self.b = torch.nn.Linear(3, 8, bias=False)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, a, b):
        return self.out(torch.relu(self.a(a) + self.b(b)))


def two_inputs(n=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32)


def test_a_tuple_of_inputs_equals_captum():
    model, (a, b) = TwoInputs().eval(), two_inputs()
    expl = xai_core.explain(
        model,
        (a, b),
        "integrated_gradients",
        target=1,
        n_steps=20,
        baselines=(0.5, np.ones(3, np.float32)),
    )
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    ref = IntegratedGradients(model).attribute(
        (ta, tb), baselines=(0.5, torch.ones(1, 3)), target=1, n_steps=20
    )
    assert isinstance(expl.attributions, tuple) and isinstance(expl.inputs, tuple)
    for ours, theirs in zip(expl.attributions, ref):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-4, atol=1e-6)
    sal = xai_core.explain(model, [ta, tb], "saliency", target=2)
    ref = Saliency(model).attribute((ta, tb), target=2)
    assert isinstance(sal.attributions, list)
    for ours, theirs in zip(sal.attributions, ref):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-5, atol=1e-7)


def test_a_dict_of_inputs_is_passed_by_keyword():
    model, (a, b) = TwoInputs().eval(), two_inputs()
    by_position = xai_core.explain(model, (a, b), "saliency", abs=False, target=0)
    by_name = xai_core.explain(model, {"b": b, "a": a}, "saliency", abs=False, target=0)
    assert list(by_name.attributions) == ["b", "a"]
    np.testing.assert_array_equal(by_name.attributions["a"], by_position.attributions[0])
    np.testing.assert_array_equal(by_name.attributions["b"], by_position.attributions[1])


@pytest.mark.parametrize(
    "method, options",
    [
        ("kernel_shap", {"n_samples": 200}),
        ("lime", {"n_samples": 200}),
        ("gradient_shap", {"n_samples": 10}),
    ],
)
def test_reference_methods_take_backgrounds_in_the_inputs_structure(method, options):
    model, (a, b) = TwoInputs().eval(), two_inputs()
    background = two_inputs(8, seed=1)
    expl = xai_core.explain(model, (a, b), method, background=background, seed=0, **options)
    assert [x.shape for x in expl.attributions] == [a.shape, b.shape]
    if method == "kernel_shap":  # additive over both inputs together
        assert np.abs(expl.convergence_delta).max() < 1e-4


def test_inputs_of_different_batch_sizes_are_an_input_error():
    model, (a, b) = TwoInputs().eval(), two_inputs()
    with pytest.raises(xai_core.InputError, match="different batch sizes"):
        xai_core.explain(model, (a, b[:3]), "saliency")


def test_a_tuple_given_to_a_one_input_model_is_an_input_error_not_numpy_s():
    model = torch.nn.Linear(4, 2)
    a, _ = two_inputs()
    with pytest.raises(xai_core.InputError):
        xai_core.explain(model, (a, a), "saliency")
    with pytest.raises(xai_core.InputError, match="not a regular array"):
        xai_core.explain(model, [[1.0, 2.0], [3.0]], "saliency")


class Masked(torch.nn.Module):
    """Mean of the unmasked features: the mask is an argument, not an input."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.fc = torch.nn.Linear(6, 2)

    def forward(self, x, mask=None, scale=1.0):
        return self.fc(torch.tanh(x * mask) * scale)


def test_forward_kwargs_follow_their_samples_like_captum_additional_forward_args():
    model = Masked().eval()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6)).astype(np.float32)
    mask = (rng.uniform(size=(4, 6)) > 0.3).astype(np.float32)
    kwargs = {"mask": mask, "scale": 2.0}
    results = [
        xai_core.explain(
            model,
            x,
            "integrated_gradients",
            target=1,
            n_steps=12,
            forward_kwargs=kwargs,
            internal_batch_size=size,
        ).attributions
        for size in (None, 5, 4)
    ]
    ref = (
        IntegratedGradients(model)
        .attribute(
            torch.from_numpy(x),
            target=1,
            n_steps=12,
            additional_forward_args=(torch.from_numpy(mask), 2.0),
        )
        .detach()
        .numpy()
    )
    for ours in results:
        np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)
    smooth = [
        xai_core.explain(
            model,
            x,
            "smoothgrad",
            n_samples=6,
            seed=3,
            forward_kwargs=kwargs,
            internal_batch_size=size,
        ).attributions
        for size in (None, 7)
    ]
    np.testing.assert_allclose(smooth[0], smooth[1], rtol=1e-5)


class DictOutput(torch.nn.Module):
    def __init__(self, keys=("logits", "aux")) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.fc = torch.nn.Linear(4, 3)
        self.keys = keys

    def forward(self, x):
        y = self.fc(x)
        return dict(zip(self.keys, (y, y * 10)))


class TupleOutput(DictOutput):
    def forward(self, x):
        return tuple(super().forward(x).values())


def test_the_output_to_explain_is_picked_by_key_index_or_logits():
    x, _ = two_inputs()
    base = DictOutput().eval()
    plain = base.fc
    expected = xai_core.explain(plain, x, "saliency", abs=False, target=1).attributions
    logits = xai_core.explain(base, x, "saliency", abs=False, target=1)
    np.testing.assert_array_equal(logits.attributions, expected)
    aux = xai_core.explain(base, x, "saliency", abs=False, target=1, output="aux")
    np.testing.assert_allclose(aux.attributions, 10 * expected, rtol=1e-6)
    second = xai_core.explain(TupleOutput().eval(), x, "saliency", abs=False, output=1, target=1)
    np.testing.assert_allclose(second.attributions, 10 * expected, rtol=1e-6)
    with pytest.raises(xai_core.InputError, match="tuple of 2 outputs"):
        xai_core.explain(TupleOutput().eval(), x, "saliency")
    with pytest.raises(xai_core.InputError, match=r"keys \['a', 'b'\]"):
        xai_core.explain(DictOutput(("a", "b")).eval(), x, "saliency")


class Segmenter(torch.nn.Module):
    """(N, 3, 8, 8) images to (N, 4, 8, 8) class scores per pixel."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.conv1 = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(6, 4, 3, padding=1)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x)))


def test_a_pixel_of_a_segmentation_output_equals_captum_target_tuple():
    model = Segmenter().eval()
    x = np.random.default_rng(0).uniform(size=(2, 3, 8, 8)).astype(np.float32)
    before = torch_state(model)
    expl = xai_core.explain(model, x, "saliency", target=(1, 4, 4))
    ref = Saliency(model).attribute(torch.from_numpy(x), target=(1, 4, 4)).numpy()
    np.testing.assert_allclose(expl.attributions, ref, rtol=1e-5, atol=1e-8)
    per_sample = xai_core.explain(model, x, "saliency", target=[(1, 4, 4), (3, 0, 7)])
    ref2 = Saliency(model).attribute(torch.from_numpy(x[1:]), target=(3, 0, 7)).numpy()
    np.testing.assert_allclose(per_sample.attributions[1:], ref2, rtol=1e-5, atol=1e-8)
    assert torch_state(model) == before
    with pytest.raises(xai_core.TargetError, match=r"target=\(0, 0, 0\)"):
        xai_core.explain(model, x, "saliency")


def test_a_class_summed_over_a_pixel_mask_equals_captum_with_a_wrapper():
    model = Segmenter().eval()
    x = np.random.default_rng(1).uniform(size=(2, 3, 8, 8)).astype(np.float32)
    mask = torch.zeros(8, 8)
    mask[2:6, 3:7] = 1

    def class_2_in_mask(out):  # the usual segmentation explanation
        return (out[:, 2] * mask).sum(dim=(1, 2))

    expl = xai_core.explain(model, x, "integrated_gradients", output=class_2_in_mask, n_steps=16)
    ref = IntegratedGradients(lambda t: class_2_in_mask(model(t))).attribute(
        torch.from_numpy(x), n_steps=16
    )
    np.testing.assert_allclose(expl.attributions, ref.detach().numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_are_explained_in_float32(dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    x, _ = two_inputs()
    full = xai_core.explain(model, x, "integrated_gradients", target=0, n_steps=8)
    half = xai_core.explain(model.to(dtype), x, "integrated_gradients", target=0, n_steps=8)
    assert half.attributions.dtype == np.float32 and half.predictions.dtype == np.float32
    np.testing.assert_allclose(half.attributions, full.attributions, rtol=0.1, atol=0.05)
