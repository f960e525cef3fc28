"""Rule-based methods (issue 22): each vs the plain gradient on the same model, and vs
Captum's same method, side by side in one process (medians of interleaved runs).

LRP is compared with Captum's LRP (epsilon) on the captum-ready ResNet-18 too; its z+
rule and zennit's composites have no Captum counterpart, so only the plain gradient.

Targets: each rule-based method <= 1.1x our plain gradient (saliency, abs=False) on the
same model and batch, and <= 1.0x Captum's same method on a ResNet-18 batch. DeepLift
runs inputs and baselines as one batch (as Captum does), so its plain reference is the
gradient of that doubled batch. Captum's DeepLift refuses a ResNet (its ReLU modules are
called twice per block), so on the ResNet-18 it is compared with a ResNet-18 whose
blocks own one ReLU per call ("captum-ready"), same weights.

    python benchmarks/bench_modified_backprop.py [torch|tensorflow|paddle ...]
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
warnings.filterwarnings("ignore")

import xai_core  # noqa: E402

from timing import interleaved, per_framework, report  # noqa: E402

BATCH, SIDE = 8, 32


def ours(model, x, method, **options):
    return lambda: xai_core.explain(model, x, method, target=1, progress=False, **options)


def bench_torch() -> None:
    import copy

    import torch
    from captum.attr import (
        LRP,
        Deconvolution,
        DeepLift,
        GuidedBackprop,
        GuidedGradCam,
        Saliency,
    )

    from real_models import resnet18

    model = resnet18()
    x = np.random.default_rng(0).normal(size=(BATCH, 3, SIDE, SIDE)).astype(np.float32)
    doubled = np.concatenate([x, np.zeros_like(x)])
    ready = captum_ready(copy.deepcopy(model))
    xt = torch.from_numpy(x)
    cases = {
        "guided_backprop": (GuidedBackprop(model), {}, x, {}),
        "deconvolution": (Deconvolution(model), {}, x, {}),
        "guided_grad_cam": (GuidedGradCam(model, model.layer4), {}, x, {"layer": "layer4"}),
        "deeplift": (DeepLift(ready), {"baselines": torch.zeros_like(xt)}, doubled, {}),
        "lrp": (LRP(ready), {}, x, {}),
        "lrp z+": (None, {}, x, {"rule": "z+"}),
        "lrp epsilon_plus_flat": (None, {}, x, {"composite": "epsilon_plus_flat"}),
    }
    for case, (captum, kwargs, plain_rows, options) in cases.items():
        method = case.split()[0]
        candidates = {
            "xai_core": ours(model, x, method, **options),
            "xai_core saliency": ours(model, plain_rows, "saliency", abs=False),
        }
        if captum is not None:  # Captum has no z+ rule and no composites
            candidates["captum"] = lambda c=captum, k=kwargs: c.attribute(xt, target=1, **k)
        if method == "guided_grad_cam":  # its plain counterpart: Grad-CAM plus a gradient
            candidates["xai_core saliency"] = ours(model, x, "saliency", abs=False)
        medians = interleaved(candidates, repeats=9, warmup=2)
        report(f"[torch] {case}, ResNet-18, {BATCH}x3x{SIDE}x{SIDE}", medians, "xai_core saliency")
        if captum is not None:
            print(f"  xai_core / captum: {medians['xai_core'] / medians['captum']:.3f}")
    # Captum's own gradient, for scale
    saliency = {
        "xai_core saliency": ours(model, x, "saliency", abs=False),
        "captum saliency": lambda: Saliency(model).attribute(xt, target=1, abs=False),
    }
    report(
        "[torch] saliency, ResNet-18", interleaved(saliency, repeats=9, warmup=2), "captum saliency"
    )


def captum_ready(model):
    """The same ResNet with one ReLU module per call (Captum's DeepLift needs it)."""
    import torch

    from real_models import BasicBlock

    def forward(block, x):
        identity = x if block.downsample is None else block.downsample(x)
        out = block.relu_a(block.bn1(block.conv1(x)))
        return block.relu_b(block.bn2(block.conv2(out)) + identity)

    for block in model.modules():
        if isinstance(block, BasicBlock):
            block.relu_a, block.relu_b = torch.nn.ReLU(), torch.nn.ReLU()
            block.forward = forward.__get__(block)
    model.relu = torch.nn.ReLU()
    return model


def bench_other(framework: str) -> None:
    from xai_core.testing.twins import cnn_weights, to_layout, twin

    model = twin(framework, "cnn", cnn_weights())
    x = to_layout(
        np.random.default_rng(0).normal(size=(BATCH, 1, 28, 28)).astype(np.float32), framework
    )
    doubled = np.concatenate([x, np.zeros_like(x)])
    for method, rows, options in [
        ("guided_backprop", x, {}),
        ("deconvolution", x, {}),
        ("deeplift", doubled, {}),
        ("lrp", x, {}),
        ("lrp", x, {"composite": "epsilon_plus_flat"}),
    ]:
        candidates = {
            "xai_core": ours(model, x, method, **options),
            "xai_core saliency": ours(model, rows, "saliency", abs=False),
        }
        medians = interleaved(candidates, repeats=9, warmup=2)
        name = " ".join([method, *map(str, options.values())])
        report(f"[{framework}] {name}, twin CNN {BATCH}x28x28", medians, "xai_core saliency")


def bench(framework: str) -> None:
    bench_torch() if framework == "torch" else bench_other(framework)


if __name__ == "__main__":
    per_framework(bench, __file__, sys.argv[1:])
