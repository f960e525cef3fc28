"""The same network in every framework, built from one set of NumPy weights.

Used by the cross-framework tests and by `xai demo`: if the weights are equal,
every explanation must be equal too (after the NCHW/NHWC transpose). Weights
are stored in PyTorch's conventions (Linear: (out, in); Conv2d: (out, in, kh, kw))
and converted for the others. Framework imports happen inside each builder.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Weights = dict[str, np.ndarray]


def mlp_weights(n_in: int = 6, hidden: int = 16, n_out: int = 3, seed: int = 0) -> Weights:
    rng = np.random.default_rng(seed)
    return {
        "fc1.weight": rng.normal(0, 1 / np.sqrt(n_in), (hidden, n_in)).astype(np.float32),
        "fc1.bias": rng.normal(0, 0.1, hidden).astype(np.float32),
        "fc2.weight": rng.normal(0, 1 / np.sqrt(hidden), (n_out, hidden)).astype(np.float32),
        "fc2.bias": rng.normal(0, 0.1, n_out).astype(np.float32),
    }


def cnn_weights(channels: int = 1, n_out: int = 10, seed: int = 0) -> Weights:
    rng = np.random.default_rng(seed)
    c1, c2 = 8, 16
    return {
        "conv1.weight": rng.normal(0, 1 / np.sqrt(9 * channels), (c1, channels, 3, 3)).astype(
            np.float32
        ),
        "conv1.bias": rng.normal(0, 0.1, c1).astype(np.float32),
        "conv2.weight": rng.normal(0, 1 / np.sqrt(9 * c1), (c2, c1, 3, 3)).astype(np.float32),
        "conv2.bias": rng.normal(0, 0.1, c2).astype(np.float32),
        "fc.weight": rng.normal(0, 1 / np.sqrt(c2), (n_out, c2)).astype(np.float32),
        "fc.bias": rng.normal(0, 0.1, n_out).astype(np.float32),
    }


# -- PyTorch ---------------------------------------------------------------------
def torch_mlp(weights: Weights) -> Any:
    import torch
    from torch import nn

    class MLP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            hidden, n_in = weights["fc1.weight"].shape
            self.fc1 = nn.Linear(n_in, hidden)
            self.relu = nn.ReLU()
            self.fc2 = nn.Linear(hidden, weights["fc2.weight"].shape[0])

        def forward(self, x):
            return self.fc2(self.relu(self.fc1(x)))

    model = MLP()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    return model


def torch_cnn(weights: Weights | None = None, channels: int = 1, n_out: int = 10) -> Any:
    """conv(3x3, pad 1) - ReLU - maxpool 2 - conv(3x3, pad 1) - ReLU - global avg pool - dense."""
    import torch
    from torch import nn

    if weights is not None:
        channels = weights["conv1.weight"].shape[1]
        n_out = weights["fc.weight"].shape[0]

    class CNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(channels, 8, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.relu2 = nn.ReLU()
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(16, n_out)

        def forward(self, x):
            x = self.pool(self.relu1(self.conv1(x)))
            x = self.gap(self.relu2(self.conv2(x)))
            return self.fc(self.flatten(x))

    model = CNN()
    if weights is not None:
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    return model


def torch_weights(model: Any) -> Weights:
    """A trained PyTorch twin's weights, to build the other frameworks' twins from."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}
