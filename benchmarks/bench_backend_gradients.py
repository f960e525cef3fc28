"""The backend's batched input-gradient call vs a hand-written batched loop, per framework.

Both do one forward and one input gradient over the same rows, NumPy in and
NumPy out. Target: ours / hand-written <= 1.10 in each framework. Each
framework runs in its own process (tensorflow then paddle in one process
segfaults); within a process, the two candidates are interleaved.

    python benchmarks/bench_backend_gradients.py [torch|tensorflow|paddle ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

BATCH, SIZE = 64, 28


def hand_written(framework: str, model):
    if framework == "torch":
        import torch

        def run(x, t):
            xt = torch.from_numpy(x).requires_grad_(True)
            out = model(xt)
            (g,) = torch.autograd.grad(out[torch.arange(len(x)), torch.from_numpy(t)].sum(), xt)
            return g.numpy()

        model.eval()
        return run
    if framework == "tensorflow":
        import tensorflow as tf

        @tf.function(
            input_signature=[
                tf.TensorSpec((None, SIZE, SIZE, 1), tf.float32),
                tf.TensorSpec((None,), tf.int32),
            ]
        )
        def grad(x, t):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                out = model(x, training=False)
                sel = tf.gather(out, t, axis=1, batch_dims=1)
            return tape.gradient(sel, x)

        return lambda x, t: grad(tf.constant(x), tf.constant(t, tf.int32)).numpy()
    import paddle

    model.eval()

    def run(x, t):
        xt = paddle.to_tensor(x, stop_gradient=False)
        out = model(xt)
        one_hot = paddle.nn.functional.one_hot(paddle.to_tensor(t), out.shape[1])
        (g,) = paddle.grad((out * one_hot).sum(), xt)
        return g.numpy()

    return run


def bench(framework: str) -> None:
    if framework == "paddle":
        import paddle  # noqa: F401
    import xai_core
    from xai_core.testing.twins import cnn_weights, from_layout, to_layout, twin

    from timing import interleaved, report

    model = twin(framework, "cnn", cnn_weights())
    x = to_layout(
        np.random.default_rng(0).uniform(size=(BATCH, 1, SIZE, SIZE)).astype("f4"), framework
    )
    t = np.random.default_rng(1).integers(0, 10, BATCH)
    adapter = xai_core.adapt(model)
    mine, theirs = adapter.gradients, hand_written(framework, model)
    np.testing.assert_allclose(
        from_layout(mine(x, t), framework),
        from_layout(theirs(x, t), framework),
        rtol=1e-4,
        atol=1e-6,
    )
    with adapter.session():
        medians = interleaved(
            {
                "xai_core adapter.gradients": lambda: mine(x, t),
                "hand-written batched loop": lambda: theirs(x, t),
            },
            repeats=30,
        )
    rows = report(
        f"{framework}: input gradients, CNN, batch {BATCH}x{SIZE}x{SIZE}",
        medians,
        "hand-written batched loop",
    )
    print(f"RESULT {framework} {rows[0][1]:.3f}")


if __name__ == "__main__":
    from timing import per_framework

    per_framework(bench, __file__, sys.argv[1:])
