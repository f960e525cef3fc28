"""Per-call cost of one small explanation: what a user pays who explains in a loop, a web
service or a training callback (issue 21).

Two calls, each timed as a median of interleaved runs in one process:
- saliency of one row through a 10-16-3 MLP (target given);
- integrated gradients (32 steps, Riemann trapezoid, zero baseline) of one 1 x 10 x 10
  image through the twin CNN.
On PyTorch: xai_core vs Captum vs a hand-written autograd call; on Keras and Paddle:
xai_core vs a hand-written call. Targets (issue 21): <= 1.0x Captum and <= 1.5x the
hand-written call on PyTorch; <= 1.5x the hand-written call on Keras and Paddle.

    python benchmarks/bench_per_call.py [torch|tensorflow|paddle ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import xai_core  # noqa: E402
from xai_core.testing.twins import cnn_weights, mlp_weights, to_layout, twin  # noqa: E402

from timing import interleaved, per_framework, report  # noqa: E402

STEPS = 32
ROW = np.random.default_rng(0).normal(size=(1, 6)).astype(np.float32)
IMAGE = np.random.default_rng(1).normal(size=(1, 1, 10, 10)).astype(np.float32)


def hand_written(framework: str, model, x: np.ndarray, steps: int | None):
    """d out[0, 1] / d x (saliency), or trapezoid IG from 0 with `steps` points."""
    alphas = None if steps is None else np.linspace(0, 1, steps, dtype=np.float32)
    weights = None
    if steps is not None:
        weights = np.full(steps, 1 / (steps - 1), np.float32)
        weights[[0, -1]] /= 2
    rows = x if steps is None else alphas.reshape(-1, *([1] * (x.ndim - 1))) * x
    if framework == "torch":
        import torch

        model.eval()

        def run():
            xt = torch.from_numpy(rows).requires_grad_(True)
            (g,) = torch.autograd.grad(model(xt)[:, 1].sum(), xt)
            g = g.numpy()
            return g if steps is None else x * np.tensordot(weights, g, 1)

        return run
    if framework == "tensorflow":
        import tensorflow as tf

        @tf.function
        def grad(t):
            with tf.GradientTape() as tape:
                tape.watch(t)
                out = model(t, training=False)[:, 1]
            return tape.gradient(out, t)

        def run():
            g = grad(tf.constant(rows)).numpy()
            return g if steps is None else x * np.tensordot(weights, g, 1)

        return run
    import paddle

    model.eval()

    def run():
        t = paddle.to_tensor(rows, stop_gradient=False)
        (g,) = paddle.grad(model(t)[:, 1].sum(), t)
        g = g.numpy()
        return g if steps is None else x * np.tensordot(weights, g, 1)

    return run


def bench(framework: str) -> None:
    mlp = twin(framework, "mlp", mlp_weights())
    cnn = twin(framework, "cnn", cnn_weights())
    image = to_layout(IMAGE, framework)
    cases = {
        "saliency, 1-row MLP": (
            mlp,
            ROW,
            None,
            lambda: xai_core.explain(mlp, ROW, "saliency", abs=False, target=1, progress=False),
        ),
        f"integrated_gradients, 1 image CNN, {STEPS} steps": (
            cnn,
            image,
            STEPS,
            lambda: xai_core.explain(
                cnn,
                image,
                "integrated_gradients",
                n_steps=STEPS,
                integration="riemann_trapezoid",
                target=1,
                progress=False,
            ),
        ),
    }
    for title, (model, x, steps, ours) in cases.items():
        candidates = {"xai_core": ours, "hand-written": hand_written(framework, model, x, steps)}
        if framework == "torch":
            import torch
            from captum.attr import IntegratedGradients, Saliency

            xt = torch.from_numpy(x)
            if steps is None:
                candidates["captum"] = lambda: Saliency(model).attribute(xt, target=1, abs=False)
            else:
                candidates["captum"] = lambda: IntegratedGradients(model).attribute(
                    xt, target=1, n_steps=STEPS, method="riemann_trapezoid"
                )
        medians = interleaved(candidates, repeats=60, warmup=10)
        report(f"[{framework}] {title}", medians, "hand-written")
        if "captum" in medians:
            print(f"  xai_core / captum: {medians['xai_core'] / medians['captum']:.3f}")


if __name__ == "__main__":
    per_framework(bench, __file__, sys.argv[1:])
