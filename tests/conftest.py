"""Shared fixtures, and the one rule that keeps the suite from crashing.

Importing tensorflow and then paddle in one process is a segfault inside
paddle's native library; paddle first, then tensorflow, works. So, if paddle
is installed, it is imported here, before any test module can import
tensorflow, whatever tests are selected and in whatever order. (The library
itself never imports a framework the user's model does not need.)
"""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# transformers (imported by the BERT tests) otherwise loads its TensorFlow half whenever
# shap probes a model's class, and that half refuses Keras 3 (see README, Troubleshooting)
os.environ.setdefault("USE_TF", "0")

if importlib.util.find_spec("paddle") is not None:
    import paddle  # noqa: F401  - must precede tensorflow; see the docstring


if importlib.util.find_spec("hypothesis") is not None:
    from hypothesis import HealthCheck, settings

    # CI runs "ci" (a few seconds per fuzz test); HYPOTHESIS_PROFILE=deep runs many more
    settings.register_profile(
        "ci",
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        derandomize=True,
    )
    settings.register_profile(
        "deep", max_examples=400, deadline=None, suppress_health_check=list(HealthCheck)
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _spy_rows(monkeypatch, method: str) -> list[int]:
    from xai_core_backends.pytorch.adapter import TorchAdapter

    sizes: list[int] = []
    original = getattr(TorchAdapter, method)

    def spy(self, inputs, *args):
        sizes.append(len(inputs))
        return original(self, inputs, *args)

    monkeypatch.setattr(TorchAdapter, method, spy)
    return sizes


@pytest.fixture
def gradient_rows(monkeypatch) -> list[int]:
    """Row counts of every call the PyTorch backend gets for input gradients."""
    return _spy_rows(monkeypatch, "gradients_and_outputs")


@pytest.fixture
def forward_rows(monkeypatch) -> list[int]:
    """Row counts of every forward call the PyTorch backend gets."""
    return _spy_rows(monkeypatch, "forward")


def torch_state(model) -> tuple:
    """Everything an explanation must leave as it found it on a torch module."""
    import torch

    hooks = tuple(
        (
            name,
            len(m._forward_hooks),
            len(m._forward_pre_hooks),
            len(m._backward_hooks),
            len(getattr(m, "_backward_pre_hooks", {})),
        )
        for name, m in model.named_modules()
    )
    modes = tuple((name, m.training) for name, m in model.named_modules())
    params = tuple(
        (name, p.requires_grad, p.grad is None, float(p.detach().double().sum()))
        for name, p in model.named_parameters()
    )
    return modes, hooks, params, torch.is_grad_enabled()


def keras_state(model) -> tuple:
    """Layer attributes (nothing may be left behind), trainable flags and weights."""
    layers = [model, *model._flatten_layers(include_self=False, recursive=True)]
    return tuple(
        (
            layer.name,
            tuple(sorted(vars(layer))),
            layer.trainable,
            tuple(float(np.asarray(w).sum()) for w in layer.get_weights()),
        )
        for layer in layers
    )


def paddle_state(model) -> tuple:
    """Modes, hooks, stop_gradient flags and .grad of every sublayer and parameter."""
    layers = list(model.named_sublayers(include_self=True))  # a generator: read it once
    modes = tuple((name, layer.training) for name, layer in layers)
    hooks = tuple(
        (name, len(layer._forward_post_hooks), len(layer._forward_pre_hooks))
        for name, layer in layers
    )
    params = tuple(
        (name, p.stop_gradient, p.grad is None, float(p.numpy().sum()))
        for name, p in model.named_parameters()
    )
    return modes, hooks, params
