"""Small models shared by the tests."""

from __future__ import annotations

import numpy as np


def torch_linear(n_in: int = 5, n_out: int = 3, seed: int = 0):
    """A single Linear layer: saliency = |W[t]|, gradient x input = W[t] * x exactly."""
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, n_out))


def torch_mlp(seed: int = 0):
    from xai_core.testing.twins import mlp_weights, torch_mlp

    return torch_mlp(mlp_weights(seed=seed))


def torch_cnn(seed: int = 0):
    from xai_core.testing.twins import cnn_weights, torch_cnn

    return torch_cnn(cnn_weights(seed=seed))


def images(n: int = 4, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, 1, 8, 8)).astype(np.float32)


def tabular(n: int = 4, d: int = 6, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def export_twin_cnn_to_onnx(path, channels: int = 1, seed: int = 0) -> None:
    """The PyTorch CNN twin (`cnn_weights(channels, seed)`) exported to ONNX at `path`, in a
    subprocess: exporters must not share a process with TensorFlow (see test_onnx_backend)."""
    import subprocess
    import sys

    code = (
        "import torch; from xai_core.testing.twins import cnn_weights, torch_cnn;"
        f"m = torch_cnn(cnn_weights(channels={channels}, seed={seed})).eval();"
        f"torch.onnx.export(m, torch.zeros(1, {channels}, 10, 10), {str(path)!r}, dynamo=False,"
        "input_names=['x'], output_names=['y'], dynamic_axes={'x': {0: 'n'}, 'y': {0: 'n'}})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def quantus_cnn():
    """The twin CNN in eval mode (Quantus refuses a model in training mode)."""
    from xai_core.testing.twins import cnn_weights, torch_cnn

    return torch_cnn(cnn_weights(seed=4)).eval()


def quantus_digits() -> np.ndarray:
    """Four 1 x 10 x 10 inputs for the Quantus comparisons."""
    return np.random.default_rng(5).normal(size=(4, 1, 10, 10)).astype(np.float32)
