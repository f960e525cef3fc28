"""Metrics on the architectures people evaluate: a torchvision-style ResNet-18 (BatchNorm,
in-place ReLUs, `out += identity`), keras.applications MobileNetV2 and paddle.vision's
resnet18. Every metric runs; the model comes back bit for bit (weights, BatchNorm
statistics, modes, hooks); a model with every layer re-drawn explains differently."""

from __future__ import annotations

import numpy as np
import pytest

import xai_core

from real_models import resnet18

FORWARD_METRICS = {
    "deletion": {"steps": 16},
    "insertion": {"steps": 16},
    "infidelity": {"seed": 0, "n_perturb_samples": 3},
    "faithfulness_correlation": {"seed": 0, "n_runs": 5, "subset_size": 64},
    "sparseness": {},
    "complexity": {},
}


def _torch_state(model):
    import torch

    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        [m.training for m in model.modules()],
        sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
        [p.grad for p in model.parameters()],
        torch.is_grad_enabled(),
    )


def test_every_metric_on_a_resnet18_leaves_it_as_it_was():
    model = resnet18(seed=1)
    model.train()  # the user's mode: BatchNorm would update its statistics in train mode
    x = np.random.default_rng(0).uniform(size=(2, 3, 32, 32)).astype(np.float32)
    before = _torch_state(model)
    e = xai_core.explain(model, x, "saliency")
    for metric, options in FORWARD_METRICS.items():
        scores = xai_core.evaluate(model, e, metric, **options)
        assert scores.shape == (2,) and np.isfinite(scores).all(), metric
    sensitivity = xai_core.evaluate(model, e, "sensitivity_max", seed=0, n_perturb_samples=2)
    assert np.isfinite(sensitivity).all()
    ig = xai_core.explain(model, x, "integrated_gradients", n_steps=32)
    # completeness is IG's own convergence delta relative to f(x) - f(0), computed apart
    zeros = xai_core.explain(model, np.zeros_like(x), "saliency", target=ig.target)
    change = ig.predictions[[0, 1], ig.target] - zeros.predictions[[0, 1], ig.target]
    np.testing.assert_allclose(
        xai_core.evaluate(model, ig, "completeness"),
        np.abs(ig.convergence_delta) / np.abs(change),
        rtol=2e-2,
    )
    cascade = xai_core.evaluate(model, e, "model_randomization", seed=0, details=True)
    with_params = [i.name for i in xai_core.adapt(model).layers() if i.n_params > 0]
    assert cascade.curve_labels == with_params[::-1]  # top down: fc first
    assert np.all(cascade.curves[:, -1] < 0.99)  # a random network explains differently
    after = _torch_state(model)
    for name, value in before[0].items():
        assert np.array_equal(value.numpy(), after[0][name].numpy()), name
    assert before[1:] == after[1:]


def test_mobilenetv2_keras_metrics_and_its_weights_after():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=4
    )
    x = np.random.default_rng(1).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    before = [w.copy() for w in model.get_weights()]
    e = xai_core.explain(model, x, "saliency")
    for metric in ("deletion", "infidelity", "sparseness"):
        assert np.isfinite(xai_core.evaluate(model, e, metric, **FORWARD_METRICS[metric])).all()
    layers = [i.name for i in xai_core.adapt(model).layers() if i.n_params > 0][-4:]
    cascade = xai_core.evaluate(
        model, e, "model_randomization", seed=0, layers=layers, details=True
    )
    assert cascade.curve_labels == layers[::-1]
    assert all(np.array_equal(b, a) for b, a in zip(before, model.get_weights(), strict=True))


def test_paddle_resnet18_metrics_and_its_state_after():
    paddle = pytest.importorskip("paddle")
    from paddle.vision.models import resnet18 as paddle_resnet18

    paddle.seed(0)
    model = paddle_resnet18(pretrained=False, num_classes=5)
    x = np.random.default_rng(2).uniform(size=(2, 3, 32, 32)).astype(np.float32)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    e = xai_core.explain(model, x, "saliency")
    for metric in ("deletion", "infidelity", "complexity"):
        assert np.isfinite(xai_core.evaluate(model, e, metric, **FORWARD_METRICS[metric])).all()
    cascade = xai_core.evaluate(model, e, "model_randomization", seed=0, details=True)
    assert np.all(cascade.curves[:, -1] < 0.99)
    after = model.state_dict()
    for name, value in before.items():  # BatchNorm statistics included
        assert np.array_equal(value, after[name].numpy()), name
