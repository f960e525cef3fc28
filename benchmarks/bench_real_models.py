"""Real models: IG on a ResNet-18 at 64x64, layer IG on a tiny BERT. PyTorch only.

Ours vs Captum (same steps, Captum's defaults otherwise) and, for the ResNet,
vs a hand-written loop that does what ours delivers (attributions, predictions,
convergence delta) with the same rows per call. Candidates interleaved in one
process, ratio of medians printed. Targets: ours / Captum <= 0.95 on both,
ours / hand-written <= 1.05.

    python benchmarks/bench_real_models.py
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
os.environ.setdefault("USE_TF", "0")
warnings.filterwarnings("ignore")

from timing import interleaved, report  # noqa: E402


def resnet_ig(repeats: int) -> None:
    import torch
    from captum.attr import IntegratedGradients

    import xai_core
    from xai_core.batching import BatchedModel
    from xai_core_explainers.integrated_gradients import quadrature

    from real_models import resnet18

    model = resnet18()
    x = np.random.default_rng(0).uniform(size=(4, 3, 64, 64)).astype("f4")
    steps, target = 25, np.full(4, 3)
    rows = BatchedModel(xai_core.adapt(model)).rows_per_call(x)  # ours without a batch size
    nodes, weights = quadrature("gausslegendre", steps)
    per_call = max(1, rows // len(x))

    def hand_written():
        xt = torch.from_numpy(x)
        tt = torch.from_numpy(target)
        with torch.no_grad():
            predictions = model(xt)
            f_b = model(torch.zeros_like(xt[:1]))[0, tt]
        total = torch.zeros_like(xt)
        for start in range(0, steps, per_call):
            a = torch.tensor(nodes[start : start + per_call], dtype=xt.dtype)
            scaled = (a.view(-1, 1, 1, 1, 1) * xt).reshape(-1, *x.shape[1:]).requires_grad_(True)
            out = model(scaled)
            seed = torch.zeros_like(out)
            seed[torch.arange(len(out)), tt.repeat(len(a))] = 1
            (g,) = torch.autograd.grad(out, scaled, grad_outputs=seed)
            w = torch.tensor(weights[start : start + per_call], dtype=g.dtype)
            total += (w.view(-1, 1, 1, 1, 1) * g.view(len(a), *x.shape)).sum(0)
        attr = total * xt
        delta = attr.flatten(1).sum(1) - (predictions[torch.arange(len(x)), tt] - f_b)
        return attr.numpy(), predictions.numpy(), delta.numpy()

    captum = IntegratedGradients(model)
    t = torch.from_numpy(x)
    medians = interleaved(
        {
            "xai_core integrated_gradients": lambda: xai_core.explain(
                model, x, "integrated_gradients", target=target, n_steps=steps, progress=False
            ),
            "captum IntegratedGradients": lambda: captum.attribute(
                t, target=3, n_steps=steps, return_convergence_delta=True
            ),
            "hand-written loop": hand_written,
        },
        repeats=repeats,
        warmup=1,
    )
    print(f"(ours: {rows} rows per call, {len(x) * steps} rows in all)")
    report("IG, ResNet-18 on 4 x 3 x 64 x 64, 25 steps", medians, "xai_core integrated_gradients")
    report("", medians, "captum IntegratedGradients")


def bert_layer_ig(repeats: int) -> None:
    import torch
    from captum.attr import LayerIntegratedGradients

    import xai_core

    from real_models import tiny_bert

    bert = tiny_bert(vocab=1000, hidden=64, heads=4, max_len=64, labels=2)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 1000, (8, 32))
    mask = np.ones_like(ids)

    def forward(input_ids, attention_mask):
        return bert(input_ids, attention_mask=attention_mask).logits

    lig = LayerIntegratedGradients(forward, bert.bert.embeddings)
    tids, tmask = torch.from_numpy(ids), torch.from_numpy(mask)
    medians = interleaved(
        {
            "xai_core integrated_gradients layer=": lambda: xai_core.explain(
                bert,
                ids,
                "integrated_gradients",
                layer="bert.embeddings",
                target=1,
                forward_kwargs={"attention_mask": mask},
                progress=False,
            ),
            "captum LayerIntegratedGradients": lambda: lig.attribute(
                tids,
                baselines=torch.zeros_like(tids),
                additional_forward_args=(tmask,),
                target=1,
                return_convergence_delta=True,
            ),
        },
        repeats=repeats,
    )
    report(
        "Layer IG, tiny BERT on 8 x 32 tokens, 50 steps", medians, "captum LayerIntegratedGradients"
    )


if __name__ == "__main__":
    resnet_ig(repeats=int(os.environ.get("REPEATS", 7)))
    bert_layer_ig(repeats=int(os.environ.get("REPEATS", 15)))
