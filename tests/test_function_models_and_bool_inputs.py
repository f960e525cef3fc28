"""Plain functions as models (Captum's `forward_func`), named with their framework, and
boolean inputs (Captum's `BasicModelBoolInput`): compared with Captum on the same
function and inputs, and the same function written in each framework."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation, IntegratedGradients, Occlusion, Saliency, ShapleyValues
from captum.testing.helpers.basic_models import BasicModelBoolInput

import xai_core

W = np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32)
X = np.array([[0.2, 1.0, 0.3], [2.0, 5.0, 3.0]], np.float32)


def numpy_fn(a):
    return np.tanh(a @ W)


def torch_fn(a):
    return torch.tanh(a @ torch.from_numpy(W))


def framework_fn(framework: str):
    """tanh(x @ W) as a function of `framework`'s tensors."""
    if framework == "torch":
        return torch_fn
    if framework == "paddle":
        paddle = pytest.importorskip("paddle")
        return lambda a: paddle.tanh(paddle.matmul(a, paddle.to_tensor(W)))
    tf = pytest.importorskip("tensorflow")
    return lambda a: tf.tanh(tf.matmul(a, tf.constant(W)))


def test_a_numpy_function_is_explained_forward_only_as_captum_explains_it():
    fm = xai_core.FunctionModel(numpy_fn)
    ours = xai_core.explain(fm, X, "feature_ablation", target=1)
    theirs = FeatureAblation(torch_fn).attribute(torch.from_numpy(X), target=1)
    assert ours.backend == "numpy"
    np.testing.assert_allclose(ours.attributions, theirs.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(xai_core.CapabilityError, match="function of torch, TensorFlow or Paddle"):
        xai_core.explain(fm, X, "saliency")


@pytest.mark.parametrize("framework", ["torch", "tensorflow", "paddle"])
def test_a_framework_function_gets_gradients_equal_to_captum(framework):
    fm = xai_core.FunctionModel(framework_fn(framework), framework)
    ig = xai_core.explain(fm, X, "integrated_gradients", target=1)
    saliency = xai_core.explain(fm, X, "saliency", target=1, abs=False)
    assert (
        ig.backend == {"torch": "torch", "tensorflow": "tensorflow", "paddle": "paddle"}[framework]
    )
    want_ig = IntegratedGradients(torch_fn).attribute(torch.from_numpy(X), target=1)
    want_saliency = Saliency(torch_fn).attribute(torch.from_numpy(X), target=1, abs=False)
    np.testing.assert_allclose(ig.attributions, want_ig.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(saliency.attributions, want_saliency.numpy(), rtol=1e-5)


def test_a_function_on_several_inputs_with_keyword_arguments():
    def two(a, b, scale=1.0):
        return np.tanh(a @ W + b @ W) * scale

    fm = xai_core.FunctionModel(two)
    ours = xai_core.explain(
        fm, (X, X[::-1].copy()), "feature_ablation", target=0, forward_kwargs={"scale": 2.0}
    )
    theirs = FeatureAblation(
        lambda a, b, scale: torch.tanh(a @ torch.from_numpy(W) + b @ torch.from_numpy(W)) * scale
    ).attribute(
        (torch.from_numpy(X), torch.from_numpy(X[::-1].copy())),
        target=0,
        additional_forward_args=(2.0,),
    )
    for got, want in zip(ours.attributions, theirs):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_a_plain_function_is_a_numpy_function_and_other_frameworks_are_named():
    """shap's and LIME's convention (issue 24): a plain function takes NumPy rows."""
    plain = xai_core.explain(numpy_fn, X, "feature_ablation")
    named = xai_core.explain(xai_core.FunctionModel(numpy_fn, "numpy"), X, "feature_ablation")
    np.testing.assert_array_equal(plain.attributions, named.attributions)
    with pytest.raises(xai_core.UnsupportedModelError, match="one of numpy, torch"):
        xai_core.FunctionModel(numpy_fn, "jax")


# -- boolean inputs ------------------------------------------------------------------------
BOOL = np.array([[True, False, True], [False, True, True]])


@pytest.mark.parametrize(
    "method, options",
    [
        ("feature_ablation", {}),
        ("occlusion", {"window": (1,)}),
        ("kernel_shap", {"background": np.zeros((1, 3), bool)}),
    ],
)
def test_bool_inputs_are_switched_off_as_captum_does(method, options):
    net = BasicModelBoolInput()
    kwargs = {"add_input": 0.0, "mult": 1.0}
    ours = xai_core.explain(net, BOOL, method, target=0, forward_kwargs=kwargs, **options)
    reference = ShapleyValues if method == "kernel_shap" else FeatureAblation
    theirs = reference(net).attribute(
        torch.from_numpy(BOOL), target=0, additional_forward_args=(0.0, 1.0), baselines=False
    )
    assert ours.attributions.any()
    np.testing.assert_allclose(ours.attributions, theirs.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("framework", ["torch", "tensorflow", "paddle"])
def test_bool_inputs_give_the_same_ablation_on_every_framework(framework):
    if framework == "torch":
        fn = lambda a: torch_fn(a.float())  # noqa: E731
    elif framework == "paddle":
        paddle = pytest.importorskip("paddle")
        fn = lambda a: paddle.tanh(paddle.matmul(a.astype("float32"), paddle.to_tensor(W)))  # noqa: E731
    else:
        tf = pytest.importorskip("tensorflow")
        fn = lambda a: tf.tanh(tf.matmul(tf.cast(a, tf.float32), tf.constant(W)))  # noqa: E731
    ours = xai_core.explain(xai_core.FunctionModel(fn, framework), BOOL, "feature_ablation")
    theirs = FeatureAblation(lambda a: torch_fn(a.float())).attribute(
        torch.from_numpy(BOOL), target=torch.from_numpy(ours.target)
    )
    np.testing.assert_allclose(ours.attributions, theirs.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["integrated_gradients", "smoothgrad", "gradient_shap"])
def test_methods_that_move_the_inputs_refuse_bools_saying_what_works(method):
    options = {"background": BOOL} if method == "gradient_shap" else {}
    with pytest.raises(xai_core.InputError, match="booleans.*perturbation method"):
        xai_core.explain(BasicModelBoolInput(), BOOL, method, target=0, **options)


# -- aggregation mode: one value for the whole batch ----------------------------------------
def batch_sum(framework: str):
    """sum over the batch of tanh(x @ W)[:, 0]: one value per batch, in `framework`."""
    if framework == "numpy":
        return lambda a: numpy_fn(a)[:, 0].sum()
    fn = framework_fn(framework)
    if framework == "tensorflow":
        import tensorflow as tf

        return lambda a: tf.reduce_sum(fn(a)[:, 0])
    return lambda a: fn(a)[:, 0].sum()


def torch_batch_sum(a):
    return torch_fn(a)[:, 0].sum()


@pytest.mark.parametrize("framework", ["numpy", "torch", "tensorflow", "paddle"])
@pytest.mark.parametrize(
    "method, options, reference",
    [
        ("feature_ablation", {}, lambda f, x: FeatureAblation(f).attribute(x)),
        (
            "feature_ablation",
            {"feature_mask": np.array([[0, 0, 1]])},
            lambda f, x: FeatureAblation(f).attribute(x, feature_mask=torch.tensor([[0, 0, 1]])),
        ),
        (
            "occlusion",
            {"window": (2,)},
            lambda f, x: Occlusion(f).attribute(x, sliding_window_shapes=(2,)),
        ),
        (
            "kernel_shap",
            {"background": np.zeros((1, 3), np.float32)},
            lambda f, x: ShapleyValues(f).attribute(x),
        ),
    ],
)
def test_a_function_of_the_whole_batch_is_explained_as_captum_s_aggregation_mode(
    framework, method, options, reference
):
    fm = xai_core.FunctionModel(batch_sum(framework), framework)
    ours = xai_core.explain(fm, X, method, **options)
    theirs = reference(torch_batch_sum, torch.from_numpy(X)).numpy()  # (1, features)
    assert ours.attributions.shape == X.shape  # every sample's row: the batch's values
    assert ours.options["aggregate_mode"] is True
    np.testing.assert_allclose(
        ours.attributions, np.repeat(theirs, len(X), 0), rtol=1e-4, atol=1e-5
    )


def test_a_batch_value_is_refused_by_methods_without_aggregation_mode():
    fm = xai_core.FunctionModel(batch_sum("torch"), "torch")
    with pytest.raises(xai_core.ModelOutputError, match="aggregation mode"):
        xai_core.explain(fm, X, "saliency")
    with pytest.raises(xai_core.OptionError, match="algorithm='kernel'"):
        xai_core.explain(
            fm, X, "kernel_shap", background=np.zeros((1, 3), np.float32), algorithm="permutation"
        )
