"""Occlusion, feature ablation and RISE (PyTorch): ours vs Captum and hand-written loops.

Occlusion on the digits-size CNN (16 x 1 x 28 x 28, window 1x4x4, stride 2): ours vs
Captum's `Occlusion` at its default `perturbations_per_eval=1` (target <= 0.3) and
at equal batching, as many windows per call as ours (target <= 1.05).
Feature ablation (7 x 7 patches as groups) and RISE (500 masks, cell 7): ours vs a
hand-written batched loop that builds the same perturbed copies and calls the model
once per group (target <= 1.05). Candidates interleaved, ratios of medians.

    python benchmarks/bench_perturbation.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
warnings.filterwarnings("ignore")

from timing import interleaved, report  # noqa: E402


def main() -> None:
    import torch
    from captum.attr import Occlusion

    import xai_core
    from xai_core.batching import BatchedModel
    from xai_core.testing.twins import cnn_weights, twin
    from xai_core_explainers.grad_cam import resize_bilinear

    model = twin("torch", "cnn", cnn_weights()).eval()
    x = np.random.default_rng(0).uniform(size=(16, 1, 28, 28)).astype("f4")
    t = torch.from_numpy(x)
    target = 3
    window, strides = (1, 4, 4), (1, 2, 2)
    occlusion = Occlusion(model)

    per_eval = BatchedModel(xai_core.adapt(model)).rows_per_call(x) // len(x)  # ours, in windows
    medians = interleaved(
        {
            "xai_core occlusion": lambda: xai_core.explain(
                model,
                x,
                "occlusion",
                window=window,
                strides=strides,
                target=target,
                progress=False,
            ),
            "captum Occlusion, 1 per eval": lambda: occlusion.attribute(
                t, sliding_window_shapes=window, strides=strides, target=target
            ),
            "captum Occlusion, ours per eval": lambda: occlusion.attribute(
                t,
                sliding_window_shapes=window,
                strides=strides,
                target=target,
                perturbations_per_eval=per_eval,
            ),
        },
        repeats=7,
        warmup=1,
    )
    print(f"\n(ours: {per_eval} windows x {len(x)} samples per call; 169 windows)")
    report("Occlusion, CNN 16x1x28x28, window 4x4, stride 2", medians, "xai_core occlusion")
    report("", medians, "captum Occlusion, 1 per eval")
    report("", medians, "captum Occlusion, ours per eval")

    groups = (np.arange(28)[:, None] // 7) * 4 + np.arange(28)[None] // 7  # 16 patches

    def hand_ablation():
        with torch.no_grad():
            initial = model(t)[:, target]
            masks = groups[None] == np.arange(16)[:, None, None]  # (16, 28, 28)
            rows = np.where(masks[:, None, None], 0.0, x[None]).astype("f4")
            out = model(torch.from_numpy(rows.reshape(-1, 1, 28, 28)))[:, target]
            drops = (initial[None] - out.view(16, -1)).numpy().astype(np.float64)
        return np.einsum("kn,khw->nhw", drops, masks.astype(np.float64))[:, None]

    n_masks, cell, p = 500, 7, 0.5

    def hand_rise():
        rng = np.random.default_rng(0)
        grids = (rng.random((n_masks, cell, cell)) < p).astype(np.float32)
        shifts = rng.integers(0, 4, (n_masks, 2))
        big = resize_bilinear(grids, (32, 32))
        masks = np.stack([b[dy : dy + 28, dx : dx + 28] for b, (dy, dx) in zip(big, shifts)])
        saliency = np.zeros((16, 28, 28))
        with torch.no_grad():
            for start in range(0, n_masks, 50):
                m = masks[start : start + 50]
                rows = torch.from_numpy(
                    (x[None] * m[:, None, None]).astype("f4").reshape(-1, 1, 28, 28)
                )
                scores = model(rows)[:, target].view(len(m), 16).numpy().astype(np.float64)
                saliency += np.einsum("kn,khw->nhw", scores, m.astype(np.float64))
        return saliency / (n_masks * p)

    # separate rounds: a 5 ms call interleaved with a 400 ms one inherits its cold caches
    medians = interleaved(
        {
            "xai_core feature_ablation": lambda: xai_core.explain(
                model,
                x,
                "feature_ablation",
                feature_mask=groups[None],
                target=target,
                progress=False,
            ),
            "hand-written ablation": hand_ablation,
        },
        repeats=25,
    )
    report("Feature ablation (16 groups), CNN 16x1x28x28", medians, "hand-written ablation")
    medians = interleaved(
        {
            "xai_core rise": lambda: xai_core.explain(
                model,
                x,
                "rise",
                n_masks=n_masks,
                cell=cell,
                p=p,
                seed=0,
                target=target,
                internal_batch_size=800,
                progress=False,
            ),
            "hand-written rise": hand_rise,
        },
        repeats=9,
    )
    report("RISE (500 masks, cell 7), CNN 16x1x28x28", medians, "hand-written rise")


if __name__ == "__main__":
    main()
