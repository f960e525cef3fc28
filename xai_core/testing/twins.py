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


# -- Keras (channels-last) ----------------------------------------------------------------
def _conv_kernel_hwio(w: np.ndarray) -> np.ndarray:
    """PyTorch/Paddle (out, in, kh, kw) -> Keras (kh, kw, in, out)."""
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def keras_mlp(weights: Weights, kind: str = "sequential") -> Any:
    """The MLP twin as a Sequential, functional or subclassed Keras model."""
    import keras

    hidden, n_in = weights["fc1.weight"].shape
    n_out = weights["fc2.weight"].shape[0]

    def layers():
        return (
            keras.layers.Dense(hidden, name="fc1"),
            keras.layers.ReLU(name="relu"),
            keras.layers.Dense(n_out, name="fc2"),
        )

    if kind == "sequential":
        model = keras.Sequential([keras.Input((n_in,)), *layers()])
    elif kind == "functional":
        inputs = keras.Input((n_in,))
        fc1, relu, fc2 = layers()
        model = keras.Model(inputs, fc2(relu(fc1(inputs))))
    elif kind == "subclassed":

        class MLP(keras.Model):
            def __init__(self) -> None:
                super().__init__()
                self.fc1, self.relu, self.fc2 = layers()

            def call(self, x):
                return self.fc2(self.relu(self.fc1(x)))

        model = MLP()
        model(np.zeros((1, n_in), np.float32))
    else:
        raise ValueError(kind)
    model.get_layer("fc1").set_weights([weights["fc1.weight"].T, weights["fc1.bias"]])
    model.get_layer("fc2").set_weights([weights["fc2.weight"].T, weights["fc2.bias"]])
    return model


def keras_cnn(weights: Weights, kind: str = "sequential", size: int | None = None) -> Any:
    """The CNN twin in Keras, channels-last; layer names as in the PyTorch twin.

    `size` fixes the image side (None: any size, as the other twins accept)."""
    import keras

    channels = weights["conv1.weight"].shape[1]
    n_out = weights["fc.weight"].shape[0]

    def layers():
        return (
            keras.layers.Conv2D(8, 3, padding="same", name="conv1"),
            keras.layers.ReLU(name="relu1"),
            keras.layers.MaxPooling2D(2, name="pool"),
            keras.layers.Conv2D(16, 3, padding="same", name="conv2"),
            keras.layers.ReLU(name="relu2"),
            keras.layers.GlobalAveragePooling2D(keepdims=True, name="gap"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(n_out, name="fc"),
        )

    if kind == "sequential":
        model = keras.Sequential([keras.Input((size, size, channels)), *layers()])
    elif kind == "functional":
        inputs = keras.Input((size, size, channels))
        x = inputs
        for layer in layers():
            x = layer(x)
        model = keras.Model(inputs, x)
    elif kind == "subclassed":

        class CNN(keras.Model):
            def __init__(self) -> None:
                super().__init__()
                self.stack = list(layers())
                for layer in self.stack:
                    setattr(self, layer.name, layer)

            def call(self, x):
                for layer in self.stack:
                    x = layer(x)
                return x

        model = CNN()
        model(np.zeros((1, 8, 8, channels), np.float32))
    else:
        raise ValueError(kind)
    for conv in ("conv1", "conv2"):
        model.get_layer(conv).set_weights(
            [_conv_kernel_hwio(weights[f"{conv}.weight"]), weights[f"{conv}.bias"]]
        )
    model.get_layer("fc").set_weights([weights["fc.weight"].T, weights["fc.bias"]])
    return model


# -- Paddle (channels-first) ------------------------------------------------------------------
def paddle_mlp(weights: Weights) -> Any:
    import paddle
    from paddle import nn

    hidden, n_in = weights["fc1.weight"].shape
    n_out = weights["fc2.weight"].shape[0]

    class MLP(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(n_in, hidden)
            self.relu = nn.ReLU()
            self.fc2 = nn.Linear(hidden, n_out)

        def forward(self, x):
            return self.fc2(self.relu(self.fc1(x)))

    model = MLP()
    model.set_state_dict({k: paddle.to_tensor(_paddle_layout(k, v)) for k, v in weights.items()})
    return model


def paddle_cnn(weights: Weights) -> Any:
    import paddle
    from paddle import nn

    channels = weights["conv1.weight"].shape[1]
    n_out = weights["fc.weight"].shape[0]

    class CNN(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2D(channels, 8, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.pool = nn.MaxPool2D(2)
            self.conv2 = nn.Conv2D(8, 16, 3, padding=1)
            self.relu2 = nn.ReLU()
            self.gap = nn.AdaptiveAvgPool2D(1)
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(16, n_out)

        def forward(self, x):
            x = self.pool(self.relu1(self.conv1(x)))
            x = self.gap(self.relu2(self.conv2(x)))
            return self.fc(self.flatten(x))

    model = CNN()
    model.set_state_dict({k: paddle.to_tensor(_paddle_layout(k, v)) for k, v in weights.items()})
    return model


def _paddle_layout(name: str, value: np.ndarray) -> np.ndarray:
    """Paddle's Linear stores (in, out); its convolutions use PyTorch's layout."""
    is_linear = name.endswith(".weight") and value.ndim == 2
    return np.ascontiguousarray(value.T) if is_linear else value


# -- several inputs and token ids --------------------------------------------------
def two_input_weights(seed: int = 0) -> Weights:
    """out(relu(a @ Wa.T + ba + b @ Wb.T)): a (4 features) and b (3 features)."""
    rng = np.random.default_rng(seed)
    return {
        "a.weight": rng.normal(0, 0.5, (8, 4)).astype(np.float32),
        "a.bias": rng.normal(0, 0.1, 8).astype(np.float32),
        "b.weight": rng.normal(0, 0.5, (8, 3)).astype(np.float32),
        "out.weight": rng.normal(0, 0.4, (3, 8)).astype(np.float32),
        "out.bias": rng.normal(0, 0.1, 3).astype(np.float32),
    }


def text_weights(vocab: int = 20, dim: int = 6, n_out: int = 3, seed: int = 0) -> Weights:
    """Embedding -> mean over tokens -> dense: the smallest token classifier."""
    rng = np.random.default_rng(seed)
    return {
        "embed.table": rng.normal(0, 1, (vocab, dim)).astype(np.float32),
        "fc.weight": rng.normal(0, 0.5, (n_out, dim)).astype(np.float32),
        "fc.bias": rng.normal(0, 0.1, n_out).astype(np.float32),
    }


def torch_two_input(weights: Weights) -> Any:
    import torch
    from torch import nn

    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 8)
            self.b = nn.Linear(3, 8, bias=False)
            self.out = nn.Linear(8, 3)

        def forward(self, a, b):
            return self.out(torch.relu(self.a(a) + self.b(b)))

    model = TwoInputs()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    return model.eval()


def keras_two_input(weights: Weights) -> Any:
    import keras

    a, b = keras.Input((4,), name="a_in"), keras.Input((3,), name="b_in")
    dense_a, dense_b = (
        keras.layers.Dense(8, name="a"),
        keras.layers.Dense(8, use_bias=False, name="b"),
    )
    hidden = keras.layers.ReLU(name="relu")(keras.layers.Add(name="add")([dense_a(a), dense_b(b)]))
    out = keras.layers.Dense(3, name="out")
    model = keras.Model([a, b], out(hidden))
    dense_a.set_weights([weights["a.weight"].T, weights["a.bias"]])
    dense_b.set_weights([weights["b.weight"].T])
    out.set_weights([weights["out.weight"].T, weights["out.bias"]])
    return model


def paddle_two_input(weights: Weights) -> Any:
    import paddle
    from paddle import nn

    class TwoInputs(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 8)
            self.b = nn.Linear(3, 8, bias_attr=False)
            self.out = nn.Linear(8, 3)

        def forward(self, a, b):
            return self.out(paddle.nn.functional.relu(self.a(a) + self.b(b)))

    model = TwoInputs()
    model.set_state_dict({k: paddle.to_tensor(_paddle_layout(k, v)) for k, v in weights.items()})
    model.eval()
    return model


def torch_text(weights: Weights) -> Any:
    import torch
    from torch import nn

    class Text(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(*weights["embed.table"].shape)
            self.fc = nn.Linear(weights["fc.weight"].shape[1], weights["fc.weight"].shape[0])

        def forward(self, ids):
            return self.fc(self.embed(ids).mean(1))

    model = Text()
    with torch.no_grad():
        model.embed.weight.copy_(torch.from_numpy(weights["embed.table"]))
        model.fc.weight.copy_(torch.from_numpy(weights["fc.weight"]))
        model.fc.bias.copy_(torch.from_numpy(weights["fc.bias"]))
    return model.eval()


def keras_text(weights: Weights, n_tokens: int = 7) -> Any:
    import keras

    vocab, dim = weights["embed.table"].shape
    embed = keras.layers.Embedding(vocab, dim, name="embed")
    fc = keras.layers.Dense(weights["fc.weight"].shape[0], name="fc")
    ids = keras.Input((n_tokens,), dtype="int64", name="ids")
    model = keras.Model(ids, fc(keras.layers.GlobalAveragePooling1D(name="pool")(embed(ids))))
    embed.set_weights([weights["embed.table"]])
    fc.set_weights([weights["fc.weight"].T, weights["fc.bias"]])
    return model


def paddle_text(weights: Weights) -> Any:
    from paddle import nn

    class Text(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(*weights["embed.table"].shape)
            self.fc = nn.Linear(weights["fc.weight"].shape[1], weights["fc.weight"].shape[0])

        def forward(self, ids):
            return self.fc(self.embed(ids).mean(axis=1))

    model = Text()
    model.embed.weight.set_value(weights["embed.table"])
    model.fc.weight.set_value(np.ascontiguousarray(weights["fc.weight"].T))
    model.fc.bias.set_value(weights["fc.bias"])
    model.eval()
    return model


def text_lm_weights(vocab: int = 31, dim: int = 8, hidden: int = 12, seed: int = 0) -> Weights:
    """A causal language model in three lines: embed, the mean of the tokens so far, a tanh
    layer and the vocabulary logits at every position."""
    rng = np.random.default_rng(seed)
    return {
        "embed.table": rng.normal(0, 1, (vocab, dim)).astype(np.float32),
        "h.weight": rng.normal(0, 0.7, (hidden, dim)).astype(np.float32),
        "h.bias": rng.normal(0, 0.1, hidden).astype(np.float32),
        "out.weight": rng.normal(0, 0.7, (vocab, hidden)).astype(np.float32),
        "out.bias": rng.normal(0, 0.1, vocab).astype(np.float32),
    }


def torch_text_lm(weights: Weights) -> Any:
    import torch
    from torch import nn

    class CausalMeanLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(*weights["embed.table"].shape)
            self.h = nn.Linear(weights["h.weight"].shape[1], weights["h.weight"].shape[0])
            self.out = nn.Linear(weights["out.weight"].shape[1], weights["out.weight"].shape[0])

        def forward(self, ids):
            e = self.embed(ids)
            steps = torch.arange(1, e.shape[1] + 1, dtype=e.dtype).reshape(1, -1, 1)
            return self.out(torch.tanh(self.h(torch.cumsum(e, 1) / steps)))

    model = CausalMeanLM()
    model.load_state_dict(
        {
            ("embed.weight" if k == "embed.table" else k): torch.from_numpy(v.copy())
            for k, v in weights.items()
        }
    )
    return model.eval()


def keras_text_lm(weights: Weights) -> Any:
    import keras

    class CausalMean(keras.layers.Layer):
        def call(self, e):
            steps = keras.ops.arange(1, keras.ops.shape(e)[1] + 1, dtype=e.dtype)
            return keras.ops.cumsum(e, axis=1) / keras.ops.reshape(steps, (1, -1, 1))

    vocab, dim = weights["embed.table"].shape
    embed = keras.layers.Embedding(vocab, dim, name="embed")
    h = keras.layers.Dense(weights["h.weight"].shape[0], activation="tanh", name="h")
    out = keras.layers.Dense(vocab, name="out")
    ids = keras.Input((None,), dtype="int64", name="ids")
    model = keras.Model(ids, out(h(CausalMean(name="causal_mean")(embed(ids)))))
    embed.set_weights([weights["embed.table"]])
    h.set_weights([weights["h.weight"].T, weights["h.bias"]])
    out.set_weights([weights["out.weight"].T, weights["out.bias"]])
    return model


def paddle_text_lm(weights: Weights) -> Any:
    import paddle
    from paddle import nn

    class CausalMeanLM(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(*weights["embed.table"].shape)
            self.h = nn.Linear(weights["h.weight"].shape[1], weights["h.weight"].shape[0])
            self.out = nn.Linear(weights["out.weight"].shape[1], weights["out.weight"].shape[0])

        def forward(self, ids):
            e = self.embed(ids)
            steps = paddle.arange(1, e.shape[1] + 1, dtype=e.dtype).reshape([1, -1, 1])
            return self.out(paddle.tanh(self.h(paddle.cumsum(e, axis=1) / steps)))

    model = CausalMeanLM()
    model.embed.weight.set_value(weights["embed.table"])
    for name in ("h", "out"):
        getattr(model, name).weight.set_value(
            _paddle_layout(f"{name}.weight", weights[f"{name}.weight"])
        )
        getattr(model, name).bias.set_value(weights[f"{name}.bias"])
    model.eval()
    return model


BUILDERS = {
    "torch": {
        "mlp": torch_mlp,
        "cnn": torch_cnn,
        "two_input": torch_two_input,
        "text": torch_text,
        "text_lm": torch_text_lm,
    },
    "tensorflow": {
        "mlp": keras_mlp,
        "cnn": keras_cnn,
        "two_input": keras_two_input,
        "text": keras_text,
        "text_lm": keras_text_lm,
    },
    "paddle": {
        "mlp": paddle_mlp,
        "cnn": paddle_cnn,
        "two_input": paddle_two_input,
        "text": paddle_text,
        "text_lm": paddle_text_lm,
    },
}
#: image layout each framework's convolutions expect
CHANNELS_LAST = {"torch": False, "tensorflow": True, "paddle": False}


def twin(framework: str, kind: str, weights: Weights) -> Any:
    """Build the `kind` ("mlp", "cnn", "two_input", "text" or "text_lm") twin in `framework`."""
    return BUILDERS[framework][kind](weights)


def to_layout(images: np.ndarray, framework: str) -> np.ndarray:
    """NCHW images in the layout `framework`'s twin expects."""
    if images.ndim == 4 and CHANNELS_LAST[framework]:
        return np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    return images


def from_layout(array: np.ndarray, framework: str) -> np.ndarray:
    """Undo `to_layout`: back to NCHW for comparison."""
    if array.ndim == 4 and CHANNELS_LAST[framework]:
        return np.ascontiguousarray(array.transpose(0, 3, 1, 2))
    return array
