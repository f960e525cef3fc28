"""Activation capture vs a plain forward pass, per framework (target: ratio <= 1.05).

`xai_core.explain(model, x, "activations", layers=[...])` returns the captured
layers and the predictions from one pass; the baseline is a hand-written
NumPy-in, NumPy-out forward in the same framework. Each framework runs in its
own process (tensorflow then paddle segfaults).

    python benchmarks/bench_activations.py [torch|tensorflow|paddle ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

BATCH = 64


def plain_forward(framework: str, model, capture: str | None = None):
    """NumPy in, NumPy out, written by hand; with `capture`, also the named layer's output
    (a forward hook in PyTorch/Paddle, a functional sub-model in Keras): the floor for
    capture, since keeping a layer's output alive costs the framework something."""
    if framework == "torch":
        import torch

        layers = dict(model.named_modules())
        return eager_forward(
            model, capture, layers, "register_forward_hook", torch.no_grad, torch.from_numpy
        )
    if framework == "tensorflow":
        import keras
        import tensorflow as tf

        net = model
        if capture is not None:
            net = keras.Model(model.inputs, [model.outputs[0], model.get_layer(capture).output])
        fn = tf.function(
            lambda x: net(x, training=False),
            input_signature=[tf.TensorSpec((None, 28, 28, 1), tf.float32)],
        )
        if capture is None:
            return lambda x: fn(tf.constant(x)).numpy()
        return lambda x: [t.numpy() for t in fn(tf.constant(x))]
    import paddle

    layers = dict(model.named_sublayers())
    return eager_forward(
        model, capture, layers, "register_forward_post_hook", paddle.no_grad, paddle.to_tensor
    )


def eager_forward(model, capture, layers, register, no_grad, to_tensor):
    """PyTorch and Paddle alike: eval mode, one persistent hook if capturing, NumPy out."""
    model.eval()
    store = {}
    if capture is not None:
        getattr(layers[capture], register)(lambda m, i, o: store.__setitem__(capture, o))

    def run(x):
        with no_grad():
            out = model(to_tensor(x)).numpy()
        return (out, {k: v.numpy() for k, v in store.items()}) if capture else out

    return run


def bench(framework: str) -> None:
    if framework == "paddle":
        import paddle  # noqa: F401
    import xai_core
    from xai_core.testing.twins import cnn_weights, to_layout, twin

    from timing import interleaved, report

    model = twin(framework, "cnn", cnn_weights())
    x = to_layout(np.random.default_rng(0).uniform(size=(BATCH, 1, 28, 28)).astype("f4"), framework)
    forward = plain_forward(framework, model)
    # a twin of the same weights for the hand-written hook, so ours runs on a hook-free model
    hand_capture = plain_forward(framework, twin(framework, "cnn", cnn_weights()), "conv2")
    medians = interleaved(
        {
            "xai_core activations [conv2]": lambda: xai_core.explain(
                model, x, "activations", layers=["conv2"]
            ),
            "hand-written capture [conv2]": lambda: hand_capture(x),
            "plain forward": lambda: forward(x),
        },
        repeats=40,
    )
    rows = report(f"{framework}: capture conv2, CNN batch {BATCH}x28x28", medians, "plain forward")
    ours, hand = rows[0][1], rows[1][1]
    print(
        f"RESULT {framework} activations / plain forward = {ours:.3f}; "
        f"hand-written capture / plain forward = {hand:.3f}; "
        f"ours / hand-written = {ours / hand:.3f}"
    )


if __name__ == "__main__":
    from timing import per_framework

    per_framework(bench, __file__, sys.argv[1:])
