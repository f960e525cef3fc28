"""Every user mistake raises an XaiError subclass whose message names the problem and the fix."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import xai_core
from xai_core.validation import check_inputs

from models import tabular, torch_cnn, torch_mlp


def test_unknown_method_lists_installed_methods():
    with pytest.raises(xai_core.UnknownMethodError) as info:
        xai_core.explain(torch_mlp(), tabular(), "salency")
    assert "'salency'" in str(info.value) and "saliency" in str(info.value)


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(xai_core.OptionError) as info:
        xai_core.get_explainer("saliency", absolute=True)
    assert "absolute" in str(info.value) and "multiply_by_inputs" in str(info.value)


@pytest.mark.parametrize("value", [0, -3, 2.5, "8"])
def test_bad_internal_batch_size(value):
    with pytest.raises(xai_core.OptionError, match="internal_batch_size"):
        xai_core.get_explainer("saliency", internal_batch_size=value)


def test_bad_option_value():
    with pytest.raises(xai_core.OptionError, match="abs must be True or False"):
        xai_core.get_explainer("saliency", abs="yes")


@pytest.mark.parametrize(
    "inputs, fragment",
    [
        (np.full((2, 6), np.nan, np.float32), "NaN or inf"),
        (np.array([[0, 1, 2, 3, 4, np.inf]], np.float32), "NaN or inf"),
        (np.array([[np.inf, -np.inf, 0, 0, 0, 0]], np.float32), "NaN or inf"),
        (np.zeros((0, 6), np.float32), "empty batch"),
        (np.zeros(6, np.float32), "x[None]"),
        (np.zeros((2, 5), np.float32), "shape (2, 5)"),
        (np.array([["a"] * 6]), "real numbers"),
        (np.ones((2, 6), np.complex64), "real numbers"),
    ],
)
def test_bad_inputs(inputs, fragment):
    with pytest.raises(xai_core.InputError) as info:
        xai_core.explain(torch_mlp(), inputs, "saliency")
    assert fragment in str(info.value)


def test_huge_finite_inputs_are_accepted_without_warnings():
    # their sum overflows float32: the fast finiteness check must fall back, not reject
    huge = np.full((3, 6), np.finfo(np.float32).max, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_inputs(huge) is huge


def test_wrong_layout_for_a_cnn_says_which_layout():
    nhwc = np.zeros((2, 8, 8, 1), np.float32)
    with pytest.raises(xai_core.InputError, match="channels-first"):
        xai_core.explain(torch_cnn(), nhwc, "saliency")


def test_integer_inputs_stay_integers_and_a_float_model_says_so():
    with pytest.raises(xai_core.InputError, match="astype\\('float32'\\)"):
        xai_core.explain(torch_mlp(), np.ones((2, 6), dtype=np.int64), "activations")
    embed = torch.nn.Sequential(
        torch.nn.Embedding(10, 4), torch.nn.Flatten(), torch.nn.Linear(12, 2)
    )
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(xai_core.InputError, match="layer='0'"):  # no gradient w.r.t. ids
        xai_core.explain(embed, ids, "saliency")
    expl = xai_core.explain(embed, ids, "activations", layers=["0"])  # forward-only: fine
    assert expl.inputs.dtype == np.int64 and expl.activations["0"].shape == (2, 3, 4)


@pytest.mark.parametrize(
    "target, error",
    [
        (3, "out of range"),
        (-1, "out of range"),
        ([0, 1], "one per sample"),
        ([0, 1, 2, 0, 1], "one per sample"),
        ("cat", "must be None, an int"),
        (1.5, "must be None, an int"),
    ],
)
def test_bad_targets(target, error):
    with pytest.raises(xai_core.TargetError, match=error):
        xai_core.explain(torch_mlp(), tabular(4), "saliency", target=target)


def test_target_resolution():
    model, x = torch_mlp(), tabular(4)
    with torch.no_grad():
        predicted = model(torch.from_numpy(x)).argmax(1).numpy()
    assert np.array_equal(xai_core.explain(model, x, "saliency").target, predicted)
    assert np.array_equal(xai_core.explain(model, x, "saliency", target=2).target, [2] * 4)
    per_sample = [0, 1, 2, 1]
    assert np.array_equal(
        xai_core.explain(model, x, "saliency", target=per_sample).target, per_sample
    )
    as_tensor = torch.tensor(per_sample)
    assert np.array_equal(
        xai_core.explain(model, x, "saliency", target=as_tensor).target, per_sample
    )


def test_single_output_model_explains_its_only_output():
    model = torch.nn.Sequential(torch.nn.Linear(6, 1))
    expl = xai_core.explain(model, tabular(3), "saliency", abs=False)
    assert np.array_equal(expl.target, [0, 0, 0])
    np.testing.assert_allclose(expl.attributions, np.tile(model[0].weight.detach().numpy(), (3, 1)))


def test_unsupported_model_lists_installed_backends():
    with pytest.raises(xai_core.UnsupportedModelError) as info:
        xai_core.explain(object(), tabular(), "saliency")
    assert "builtins.object" in str(info.value) and "torch" in str(info.value)


def test_forward_only_backend_points_to_forward_only_methods():
    from xai_outsider_numpy import BlackBox

    with pytest.raises(xai_core.CapabilityError) as info:
        xai_core.explain(BlackBox(lambda x: x[:, :2]), tabular(), "saliency")
    message = str(info.value)
    assert (
        "numpy_blackbox" in message and "gradients" in message and "kernel_shap or lime" in message
    )


def test_model_returning_a_tuple_is_explained_as_an_error():
    class TwoHeads(torch.nn.Module):
        def forward(self, x):
            return x, x

    with pytest.raises(xai_core.InputError, match="tuple"):
        xai_core.explain(TwoHeads(), tabular(), "saliency")
