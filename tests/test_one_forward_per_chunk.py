"""Gradient methods run the model once per chunk (issue 21): the gradient pass that runs
the samples also gives the predictions and the target, and Integrated Gradients' f(baseline)
rides in the first gradient call. Each framework's model counts its own forward calls
(a forward hook; on Keras a counting layer that runs inside the compiled graph), so a
prediction pass, a baseline pass or a second pass per chunk would show as a call more."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xai_core
from xai_core.testing.twins import cnn_weights, mlp_weights, to_layout, twin

FRAMEWORKS = ["torch", "tensorflow", "paddle"]
N_STEPS = 32


def counted(framework: str, kind: str) -> tuple[object, list[int]]:
    """The twin model, and the list its forward calls append their row counts to."""
    weights = mlp_weights() if kind == "mlp" else cnn_weights(channels=1)
    model = twin(framework, kind, weights)
    calls: list[int] = []
    if framework == "torch":
        model.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
        return model, calls
    if framework == "paddle":
        model.register_forward_post_hook(lambda layer, args, out: calls.append(len(args[0])))
        return model, calls
    import keras
    import tensorflow as tf

    class Count(keras.layers.Layer):
        """Identity that counts its calls at run time, inside a traced function too."""

        def call(self, x):
            def bump(rows):
                calls.append(int(rows))
                return np.float32(0)

            tick = tf.py_function(bump, [tf.shape(x)[0]], tf.float32)
            tick.set_shape([])
            return x + tick

    shape = (6,) if kind == "mlp" else (10, 10, 1)
    return keras.Sequential([keras.Input(shape), Count(), model]), calls


def inputs(framework: str, kind: str, n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    if kind == "mlp":
        return rng.normal(size=(n, 6)).astype(np.float32)
    return to_layout(rng.normal(size=(n, 1, 10, 10)).astype(np.float32), framework)


def own_outputs(framework: str, model, x: np.ndarray) -> np.ndarray:
    """The model's outputs from its framework, called by hand."""
    if framework == "torch":
        import torch

        with torch.no_grad():
            return model(torch.from_numpy(x)).numpy()
    if framework == "paddle":
        import paddle

        with paddle.no_grad():
            return model(paddle.to_tensor(x)).numpy()
    return np.asarray(model(x, training=False))


CASES = [  # method, model kind, samples, options, rows the model must see
    ("saliency", "mlp", 4, {}, 4),
    ("saliency", "mlp", 4, {"layer": "fc1"}, 4),
    ("integrated_gradients", "cnn", 1, {"n_steps": N_STEPS}, 1 + 1 + N_STEPS),
    ("integrated_gradients", "mlp", 3, {"n_steps": 8, "baselines": "rows"}, 3 + 3 + 8 * 3),
    ("smoothgrad", "mlp", 4, {"n_samples": 10, "seed": 0}, 4 + 40),
    ("grad_cam", "cnn", 2, {"layer": "conv2"}, 2),
]


def options_for(options: dict, x: np.ndarray) -> dict:
    if options.get("baselines") == "rows":  # one baseline per sample: rows of their own
        return {**options, "baselines": np.linspace(0.1, 0.9, len(x))[:, None] * x}
    return options


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(("method", "kind", "n", "options", "rows"), CASES)
@pytest.mark.parametrize("target", [None, 1])
def test_one_forward_for_a_batch_that_fits_one_call(
    framework, method, kind, n, options, rows, target
):
    model, calls = counted(framework, kind)
    x = inputs(framework, kind, n)
    opts = options_for(options, x)
    explanation = xai_core.explain(model, x, method, target=target, **opts)
    assert calls == [rows]  # no prediction pass, no baseline pass: one call
    expected = own_outputs(framework, model, x)
    np.testing.assert_allclose(explanation.predictions, expected, rtol=1e-5, atol=1e-6)
    chosen = expected.argmax(axis=1) if target is None else np.full(n, target)
    np.testing.assert_array_equal(explanation.target, chosen)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_the_pass_gives_the_same_attributions_as_a_prediction_pass_first(framework):
    """Against the explainer run with the target chosen beforehand from the model's own
    outputs (the two-pass way): the same numbers, so the target came from the samples."""
    model, _ = counted(framework, "cnn")
    x = inputs(framework, "cnn", 3)
    by_hand = own_outputs(framework, model, x).argmax(axis=1)
    for method, options in [
        ("integrated_gradients", {"n_steps": 16}),
        ("smoothgrad", {"n_samples": 4, "seed": 1}),
        ("saliency", {}),
        ("grad_cam", {"layer": "conv2"}),
    ]:
        one = xai_core.explain(model, x, method, **options)
        given = xai_core.explain(model, x, method, target=by_hand, **options)
        np.testing.assert_allclose(one.attributions, given.attributions, rtol=1e-5, atol=1e-7)
        if one.convergence_delta is not None:
            np.testing.assert_allclose(one.convergence_delta, given.convergence_delta, atol=1e-6)


CHUNKED = [  # method, samples, options, rows per call: every row run once, chunks full
    ("saliency", 10, {}, 4),
    ("integrated_gradients", 2, {"n_steps": 8}, 6),
    ("smoothgrad", 3, {"n_samples": 7, "seed": 0}, 5),
]


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(("method", "n", "options", "per_call"), CHUNKED)
def test_one_forward_per_chunk(framework, method, n, options, per_call):
    model, calls = counted(framework, "mlp")
    x = inputs(framework, "mlp", n)
    xai_core.explain(model, x, method, internal_batch_size=per_call, **options)
    needed = {
        "saliency": n,
        "integrated_gradients": n + 1 + options.get("n_steps", 0) * n,  # samples, baseline
        "smoothgrad": n + options.get("n_samples", 0) * n,  # samples, noisy copies
    }[method]
    assert sum(calls) == needed  # each row once: no pass of its own for any of them
    assert max(calls) <= per_call
    # blocks of a sample's rows stay whole, so a call may fall short of per_call rows; the
    # rows that lead the first call take the place of blocks there, adding no call
    blocks = per_call // n if method != "saliency" else None
    if blocks is None:
        assert len(calls) == math.ceil(n / per_call)
    else:
        lead = needed - options.get("n_steps", options.get("n_samples", 0)) * n
        in_first = max(1, (blocks * n - lead) // n)
        rest = options.get("n_steps", options.get("n_samples", 0)) - in_first
        first_calls = math.ceil((lead + in_first * n) / per_call)  # 2 where lead + 1 block
        assert len(calls) == first_calls + math.ceil(rest / blocks)  # overflow one call


def test_a_backend_that_cannot_take_targets_from_its_pass_gets_a_prediction_pass():
    """Third-party adapters keep the old contract: a target array, after a forward pass."""
    from xai_core_backends.pytorch.adapter import TorchAdapter

    class Plain(TorchAdapter):
        targets_from_pass = False
        seen: list = []

        def gradients_and_outputs(self, inputs, target):
            assert isinstance(target, np.ndarray)  # never a function of the outputs
            return super().gradients_and_outputs(inputs, target)

    model, calls = counted("torch", "mlp")
    x = inputs("torch", "mlp", 4)
    explanation = xai_core.explain(Plain(model), x, "saliency")
    assert calls == [4, 4]  # the prediction pass, then the gradient pass
    np.testing.assert_array_equal(explanation.target, own_outputs("torch", model, x).argmax(axis=1))


# -- real architectures: BatchNorm, in-place ReLU, residual adds; several inputs with
# batch-first keyword arguments (the samples' lead rows must carry their own rows) --------
def test_one_forward_on_a_resnet_with_the_numbers_of_captum():
    import torch
    from captum.attr import IntegratedGradients, Saliency

    from real_models import resnet

    model = resnet()
    calls: list[int] = []
    model.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    x = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        chosen = model(torch.from_numpy(x)).argmax(1)
    calls.clear()
    ig = xai_core.explain(model, x, "integrated_gradients", n_steps=8)
    assert calls == [3 + 1 + 8 * 3]  # samples, shared baseline, path: one call
    np.testing.assert_array_equal(ig.target, chosen.numpy())
    reference = IntegratedGradients(model).attribute(
        torch.from_numpy(x), target=chosen, n_steps=8, return_convergence_delta=True
    )
    np.testing.assert_allclose(ig.attributions, reference[0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ig.convergence_delta, reference[1].numpy(), atol=1e-4)
    for method, options in [
        ("saliency", {}),
        ("grad_cam", {"layer": "layer2"}),
        ("smoothgrad", {"n_samples": 3, "seed": 0}),
    ]:
        calls.clear()
        explanation = xai_core.explain(model, x, method, **options)
        assert len(calls) == 1, method
        np.testing.assert_array_equal(explanation.target, chosen.numpy())
    saliency = Saliency(model).attribute(torch.from_numpy(x), target=chosen)
    np.testing.assert_allclose(
        xai_core.explain(model, x, "saliency").attributions, saliency.numpy(), rtol=1e-5
    )


def test_several_inputs_with_row_keyword_arguments_lead_the_first_call():
    import torch
    from captum.attr import IntegratedGradients

    class TwoInputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = torch.nn.Linear(7, 3)

        def forward(self, a, b, scale):
            return torch.tanh(self.fc(torch.cat([a, b], dim=1))) * scale[:, None]

    model = TwoInputs().eval()
    calls: list[int] = []
    model.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 4)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    scale = np.array([1.0, -2.0, 0.5, 3.0], np.float32)  # one per sample: follows its rows
    explanation = xai_core.explain(
        model, (a, b), "integrated_gradients", n_steps=6, forward_kwargs={"scale": scale}
    )
    assert calls == [4 + 4 + 6 * 4]  # samples, one baseline per sample (rows carry kwargs)
    with torch.no_grad():
        own = model(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(scale))
    np.testing.assert_allclose(explanation.predictions, own.numpy(), rtol=1e-6)
    chosen = own.argmax(1)
    reference = IntegratedGradients(model).attribute(
        (torch.from_numpy(a), torch.from_numpy(b)),
        target=chosen,
        additional_forward_args=(torch.from_numpy(scale),),
        n_steps=6,
    )
    for ours, theirs in zip(explanation.attributions, reference):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-6)
