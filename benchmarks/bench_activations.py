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


def plain_forward(framework: str, model):
    if framework == "torch":
        import torch

        model.eval()

        def run(x):
            with torch.no_grad():
                return model(torch.from_numpy(x)).numpy()

        return run
    if framework == "tensorflow":
        import tensorflow as tf

        fn = tf.function(
            lambda x: model(x, training=False),
            input_signature=[tf.TensorSpec((None, 28, 28, 1), tf.float32)],
        )
        return lambda x: fn(tf.constant(x)).numpy()
    import paddle

    model.eval()

    def run(x):
        with paddle.no_grad():
            return model(paddle.to_tensor(x)).numpy()

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
    medians = interleaved(
        {
            "xai_core activations [conv2]": lambda: xai_core.explain(
                model, x, "activations", layers=["conv2"]
            ),
            "plain forward": lambda: forward(x),
        },
        repeats=40,
    )
    rows = report(f"{framework}: capture conv2, CNN batch {BATCH}x28x28", medians, "plain forward")
    print(f"RESULT {framework} activations / plain forward = {rows[0][1]:.3f}")


if __name__ == "__main__":
    from timing import per_framework

    per_framework(bench, __file__, sys.argv[1:])
