"""IG, SmoothGrad and GradientSHAP: ours vs Captum, shap.GradientExplainer and a hand-written loop.

Same model, same rows, same number of steps/samples, candidates interleaved in
one process, ratio of medians printed. Targets: ours / hand-written <= 1.05,
ours / Captum <= 0.95, ours / shap.GradientExplainer <= 0.3.

    python benchmarks/bench_gradient_methods.py [torch|tensorflow|paddle ...]

Each framework runs in its own process (tensorflow then paddle segfaults).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
warnings.filterwarnings("ignore")

BATCH, STEPS, SAMPLES = 16, 50, 50


def torch_cases():
    import torch

    from xai_core.testing.twins import cnn_weights, mlp_weights, twin

    cnn = twin("torch", "cnn", cnn_weights()).eval()
    mlp = twin("torch", "mlp", mlp_weights(n_in=30, hidden=64, n_out=2)).eval()
    rng = np.random.default_rng(0)
    return [
        ("CNN 16x1x28x28", cnn, rng.uniform(size=(BATCH, 1, 28, 28)).astype("f4"), torch),
        ("MLP 16x30", mlp, rng.normal(size=(BATCH, 30)).astype("f4"), torch),
    ]


def hand_ig_torch(model, x, t, nodes, weights):
    """The same deliverable as ours: attributions, predictions and the convergence delta."""
    import torch

    def run():
        xt = torch.from_numpy(x)
        tt = torch.from_numpy(t)
        scaled = torch.cat([a * xt for a in nodes]).requires_grad_(True)
        out = model(scaled)
        sel = out[torch.arange(len(scaled)), tt.repeat(len(nodes))].sum()
        (g,) = torch.autograd.grad(sel, scaled)
        g = g.view(len(nodes), *x.shape)
        w = torch.tensor(weights, dtype=g.dtype).view(-1, *([1] * x.ndim))
        attr = (w * g).sum(0) * xt
        with torch.no_grad():
            predictions = model(xt)
            f_b = model(torch.zeros_like(xt[:1]))[0, tt]
        delta = attr.flatten(1).sum(1) - (predictions[torch.arange(len(x)), tt] - f_b)
        return attr.numpy(), predictions.numpy(), delta.numpy()

    return run


def hand_smoothgrad_torch(model, x, t, sigma):
    """Noise drawn with NumPy inside the call, as any NumPy-in, NumPy-out loop must."""
    import torch

    def run():
        rng = np.random.default_rng(0)
        noisy = x + rng.standard_normal((SAMPLES, *x.shape)).astype("f4") * sigma
        stacked = torch.from_numpy(noisy.reshape(-1, *x.shape[1:])).requires_grad_(True)
        out = model(stacked)
        sel = out[torch.arange(len(stacked)), torch.from_numpy(np.tile(t, SAMPLES))]
        (g,) = torch.autograd.grad(sel.sum(), stacked)
        with torch.no_grad():
            predictions = model(torch.from_numpy(x)).numpy()  # every explanation reports them
        return np.abs(g.view(SAMPLES, *x.shape).numpy()).mean(0), predictions

    return run


def hand_gradient_shap_torch(model, x, t, background):
    import torch

    def run():
        rng = np.random.default_rng(0)
        rows = rng.integers(0, len(background), (SAMPLES, len(x)))
        alpha = rng.uniform(0, 1, (SAMPLES, len(x))).astype("f4")
        alpha = alpha.reshape(SAMPLES, len(x), *([1] * (x.ndim - 1)))
        base = background[rows]
        points = (base + alpha * (x - base)).reshape(-1, *x.shape[1:])
        stacked = torch.from_numpy(points).requires_grad_(True)
        out = model(stacked)
        sel = out[torch.arange(len(stacked)), torch.from_numpy(np.tile(t, SAMPLES))]
        (g,) = torch.autograd.grad(sel.sum(), stacked)
        attr = (g.view(SAMPLES, *x.shape).numpy() * (x - base)).mean(0)
        with torch.no_grad():  # predictions and the convergence delta, as ours reports
            predictions = model(torch.from_numpy(x)).numpy()
            f_bg = model(torch.from_numpy(background)).numpy()
        rows_t = np.arange(len(x))
        delta = attr.reshape(len(x), -1).sum(1) - (
            predictions[rows_t, t] - f_bg[rows, t[None, :]].mean(0)
        )
        return attr, predictions, delta

    return run


def bench_torch() -> None:
    import shap
    import torch
    from captum.attr import GradientShap, IntegratedGradients, NoiseTunnel, Saliency

    import xai_core

    from integrated import quadrature_nodes
    from timing import interleaved, report

    rows = []
    for label, model, x, _ in torch_cases():
        t = np.random.default_rng(1).integers(0, model(torch.from_numpy(x[:1])).shape[1], BATCH)
        tt = torch.from_numpy(t)
        xt = torch.from_numpy(x)
        nodes, weights = quadrature_nodes(STEPS)
        background = np.random.default_rng(2).uniform(size=(32, *x.shape[1:])).astype("f4")
        sigma = 0.15 * (x.max() - x.min())
        ig = IntegratedGradients(model)
        nt = NoiseTunnel(Saliency(model))
        gs = GradientShap(model)
        explainer = shap.GradientExplainer(model, torch.from_numpy(background))

        def shap_run():
            # shap explains every output unless told; rank 1 = the top class, as ours targets
            return explainer.shap_values(xt, nsamples=SAMPLES, ranked_outputs=1, rseed=0)

        candidates = {
            "IG": {
                "xai_core": lambda: xai_core.explain(model, x, "integrated_gradients", target=t),
                "captum": lambda: ig.attribute(
                    xt, target=tt, n_steps=STEPS, return_convergence_delta=True
                ),
                "hand-written": hand_ig_torch(model, x, t, nodes, weights),
            },
            "SmoothGrad": {
                "xai_core": lambda: xai_core.explain(
                    model, x, "smoothgrad", target=t, n_samples=SAMPLES, seed=0
                ),
                "captum": lambda: nt.attribute(
                    xt, target=tt, nt_type="smoothgrad", nt_samples=SAMPLES, stdevs=float(sigma)
                ),
                "hand-written": hand_smoothgrad_torch(model, x, t, sigma),
            },
            "GradientSHAP": {
                "xai_core": lambda: xai_core.explain(
                    model,
                    x,
                    "gradient_shap",
                    target=t,
                    background=background,
                    n_samples=SAMPLES,
                    seed=0,
                ),
                "captum": lambda: gs.attribute(
                    xt,
                    baselines=torch.from_numpy(background),
                    target=tt,
                    n_samples=SAMPLES,
                    return_convergence_delta=True,
                ),
                "shap.GradientExplainer": shap_run,
                "hand-written": hand_gradient_shap_torch(model, x, t, background),
            },
        }
        for method, cands in candidates.items():
            repeats = 7 if "shap.GradientExplainer" in cands else 15
            medians = interleaved(cands, repeats=repeats, warmup=1)
            for name, ratio in report(f"torch {method}, {label}", medians, "xai_core"):
                rows.append((method, label, name, ratio))
    print("\nRESULTS (xai_core / candidate):")
    for method, label, name, ratio in rows:
        if name != "xai_core":
            print(f"  torch | {method:<13} | {label:<15} | vs {name:<24} | {1 / ratio:5.2f}")


def bench_other(framework: str) -> None:
    """TensorFlow / Paddle: ours vs a hand-written batched IG in the same framework."""
    if framework == "paddle":
        import paddle
    else:
        import tensorflow as tf
    import xai_core
    from xai_core.testing.twins import cnn_weights, mlp_weights, to_layout, twin

    from integrated import quadrature_nodes
    from timing import interleaved, report

    rng = np.random.default_rng(0)
    cases = [
        (
            "CNN 16x1x28x28",
            twin(framework, "cnn", cnn_weights()),
            to_layout(rng.uniform(size=(BATCH, 1, 28, 28)).astype("f4"), framework),
        ),
        (
            "MLP 16x30",
            twin(framework, "mlp", mlp_weights(n_in=30, hidden=64, n_out=2)),
            rng.normal(size=(BATCH, 30)).astype("f4"),
        ),
    ]
    nodes, weights = quadrature_nodes(STEPS)
    for label, model, x in cases:
        t = np.zeros(BATCH, dtype=np.int64)
        if framework == "paddle":
            model.eval()

            def hand(model=model, x=x):
                xt = paddle.to_tensor(x)
                scaled = paddle.concat([float(a) * xt for a in nodes])
                scaled.stop_gradient = False
                out = model(scaled)
                (g,) = paddle.grad(out[:, 0].sum(), scaled)
                g = g.numpy().reshape(len(nodes), *x.shape)
                attr = (weights.reshape(-1, *([1] * x.ndim)) * g).sum(0) * x
                with paddle.no_grad():  # predictions and delta, as ours reports
                    predictions = model(xt).numpy()
                    f_b = model(paddle.zeros([1, *x.shape[1:]])).numpy()[0, 0]
                delta = attr.reshape(len(x), -1).sum(1) - (predictions[:, 0] - f_b)
                return attr, predictions, delta
        else:
            spec = tf.TensorSpec((None, *x.shape[1:]), tf.float32)

            @tf.function(input_signature=[spec])
            def grads(scaled, model=model):
                with tf.GradientTape(watch_accessed_variables=False) as tape:
                    tape.watch(scaled)
                    out = model(scaled, training=False)[:, 0]
                return tape.gradient(out, scaled)

            @tf.function(input_signature=[spec])
            def forward(inputs, model=model):
                return model(inputs, training=False)

            def hand(x=x, grads=grads, forward=forward):
                scaled = np.concatenate([a * x for a in nodes]).astype("f4")
                g = grads(tf.constant(scaled)).numpy().reshape(len(nodes), *x.shape)
                attr = (weights.reshape(-1, *([1] * x.ndim)) * g).sum(0) * x
                predictions = forward(tf.constant(x)).numpy()  # predictions and delta, as ours
                f_b = forward(tf.zeros((1, *x.shape[1:]))).numpy()[0, 0]
                delta = attr.reshape(len(x), -1).sum(1) - (predictions[:, 0] - f_b)
                return attr, predictions, delta

        medians = interleaved(
            {
                "xai_core": lambda model=model, x=x, t=t: xai_core.explain(
                    model, x, "integrated_gradients", target=t
                ),
                "hand-written": hand,
            },
            repeats=15,
        )
        rows = report(f"{framework} IG, {label}", medians, "xai_core")
        print(f"RESULT {framework} IG {label}: xai_core / hand-written = {1 / rows[1][1]:.3f}")


def bench(framework: str) -> None:
    bench_torch() if framework == "torch" else bench_other(framework)


if __name__ == "__main__":
    from timing import per_framework

    per_framework(bench, __file__, sys.argv[1:])
