"""A third-party backend, written only against xai_core's public API.

`NumpyMLP` is a two-layer ReLU network in pure NumPy with hand-written
backpropagation; `BlackBox` wraps any predict function and offers only
`forward` (like a remote scoring service).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

import xai_core
from xai_core import LayerInfo, ModelAdapter


class NumpyMLP:
    """relu(x @ W1 + b1) @ W2 + b2"""

    def __init__(self, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> None:
        self.w1, self.b1, self.w2, self.b2 = w1, b1, w2, b2

    @classmethod
    def random(cls, n_in: int = 5, hidden: int = 7, n_out: int = 3, seed: int = 0) -> NumpyMLP:
        rng = np.random.default_rng(seed)
        return cls(
            rng.normal(size=(n_in, hidden)),
            rng.normal(size=hidden),
            rng.normal(size=(hidden, n_out)),
            rng.normal(size=n_out),
        )

    def layer_outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        fc1 = x @ self.w1 + self.b1
        relu = np.maximum(fc1, 0)
        return {"fc1": fc1, "relu": relu, "fc2": relu @ self.w2 + self.b2}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.layer_outputs(x)["fc2"]


class BlackBox:
    """Only a predict function: no gradients, no layers."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray]) -> None:
        self.predict = predict


class NumpyMLPAdapter(ModelAdapter):
    backend = "numpy_mlp"

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        if inputs.ndim != 2 or inputs.shape[1] != self.model.w1.shape[0]:
            raise ValueError(f"expected (batch, {self.model.w1.shape[0]}), got {inputs.shape}")
        return self.model(inputs)

    def _backward_to(self, inputs: np.ndarray, target: np.ndarray, layer: str) -> np.ndarray:
        outs = self.model.layer_outputs(inputs)
        g_out = np.zeros_like(outs["fc2"])
        g_out[np.arange(len(inputs)), target] = 1.0
        if layer == "fc2":
            return g_out
        g_relu = g_out @ self.model.w2.T
        if layer == "relu":
            return g_relu
        g_fc1 = g_relu * (outs["fc1"] > 0)
        if layer == "fc1":
            return g_fc1
        return g_fc1 @ self.model.w1.T

    def gradients(self, inputs: np.ndarray, target: np.ndarray) -> np.ndarray:
        return self._backward_to(inputs, target, "input")

    def layers(self) -> list[LayerInfo]:
        m = self.model
        return [
            LayerInfo("fc1", "Dense", m.w1.size + m.b1.size, (None, m.w1.shape[1])),
            LayerInfo("relu", "ReLU", 0, (None, m.w1.shape[1])),
            LayerInfo("fc2", "Dense", m.w2.size + m.b2.size, (None, m.w2.shape[1])),
        ]

    def capture(self, inputs: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        self.check_layers(layers)
        outs = self.model.layer_outputs(inputs)
        return {name: outs[name] for name in layers}

    def layer_gradients(self, inputs, target, layer):
        self.check_layers([layer])
        return self.model.layer_outputs(inputs)[layer], self._backward_to(inputs, target, layer)


class BlackBoxAdapter(ModelAdapter):
    backend = "numpy_blackbox"

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(inputs))


@xai_core.hookimpl
def xai_adapt(model):
    if isinstance(model, NumpyMLP):
        return NumpyMLPAdapter(model)
    if isinstance(model, BlackBox):
        return BlackBoxAdapter(model)
    return None
