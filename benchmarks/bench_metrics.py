"""Metrics vs their references on the same PyTorch model, inputs and perturbations.

- infidelity and sensitivity_max vs Captum's (`captum.metrics`, every sample and draw
  in one batch: Captum's fastest setting); target <= 0.8x.
- deletion vs Quantus `PixelFlipping` (features_in_step=1 on 28 x 28 inputs, its
  default, and 16 features per step); target <= 0.5x.

Run: .venv/bin/python benchmarks/bench_metrics.py
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import paddle  # noqa: F401, E402 - quantus imports tensorflow; paddle must come first
import torch  # noqa: E402

import xai_core  # noqa: E402
from xai_core.testing.twins import cnn_weights, torch_cnn  # noqa: E402

from timing import interleaved, report  # noqa: E402


def resnet_rows() -> None:
    """The same metrics on a ResNet-18 at 64 x 64 (tests/real_models.py), 8 images, 10 draws:
    the size people evaluate at. Captum runs every perturbed row in one call (its default),
    xai_core in its 1 MiB chunks."""
    from captum.attr import IntegratedGradients, Saliency
    from captum.metrics import infidelity, sensitivity_max

    from real_models import resnet18

    model = resnet18().eval()
    x = np.random.default_rng(0).uniform(size=(8, 3, 64, 64)).astype(np.float32)
    k = 10
    e_ig = xai_core.explain(model, x, "integrated_gradients", n_steps=16)
    noise = np.random.default_rng(1).normal(0, 0.05, (k, *x.shape)).astype(np.float32)
    uniform = np.random.default_rng(2).uniform(-0.02, 0.02, (k, *x.shape)).astype(np.float32)
    tx, target = torch.from_numpy(x), torch.from_numpy(e_ig.target)

    def sample_major(a):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(1, 0, 2, 3, 4))).reshape(
            -1, *x.shape[1:]
        )

    noise_t, uniform_t = sample_major(noise), sample_major(uniform)
    report(
        "infidelity, ResNet-18 64x64, 8 images, 10 draws",
        interleaved(
            {
                "xai_core": lambda: xai_core.evaluate(
                    model, e_ig, "infidelity", perturbations=noise
                ),
                "captum": lambda: infidelity(
                    model,
                    lambda inputs: (noise_t, inputs - noise_t),
                    tx,
                    torch.from_numpy(e_ig.attributions),
                    target=target,
                    n_perturb_samples=k,
                ),
            },
            repeats=7,
            warmup=1,
        ),
        "captum",
    )
    for method, explain_func, options in (
        ("saliency", Saliency(model).attribute, {}),
        ("integrated_gradients", IntegratedGradients(model).attribute, {"n_steps": 16}),
    ):
        e = xai_core.explain(model, x, method, **options)
        report(
            f"sensitivity_max of {method}, ResNet-18 64x64, 8 images, 10 draws",
            interleaved(
                {
                    "xai_core": lambda e=e: xai_core.evaluate(
                        model, e, "sensitivity_max", perturbations=uniform
                    ),
                    "captum": lambda f=explain_func, o=options: sensitivity_max(
                        f,
                        tx,
                        perturb_func=lambda inputs, perturb_radius=0.0: inputs + uniform_t,
                        n_perturb_samples=k,
                        target=torch.from_numpy(e.target),
                        **o,
                    ),
                },
                repeats=5,
                warmup=1,
            ),
            "captum",
        )


def main() -> None:
    torch.manual_seed(0)
    model = torch_cnn(cnn_weights(seed=0)).eval()
    x = np.random.default_rng(0).normal(size=(16, 1, 28, 28)).astype(np.float32)
    e_ig = xai_core.explain(model, x, "integrated_gradients", n_steps=20)
    e_sal = xai_core.explain(model, x, "saliency")
    k = 10
    noise = np.random.default_rng(1).normal(0, 0.1, (k, *x.shape)).astype(np.float32)
    uniform = np.random.default_rng(2).uniform(-0.02, 0.02, (k, *x.shape)).astype(np.float32)
    tx, target = torch.from_numpy(x), torch.from_numpy(e_ig.target)

    from captum.attr import Saliency
    from captum.metrics import infidelity, sensitivity_max

    sample_major = torch.from_numpy(np.ascontiguousarray(noise.transpose(1, 0, 2, 3, 4)))
    sample_major = sample_major.reshape(-1, *x.shape[1:])
    moved = torch.from_numpy(np.ascontiguousarray(uniform.transpose(1, 0, 2, 3, 4)))
    moved = moved.reshape(-1, *x.shape[1:])

    def captum_infidelity():
        return infidelity(
            model,
            lambda inputs: (sample_major, inputs - sample_major),
            tx,
            torch.from_numpy(e_ig.attributions),
            target=target,
            n_perturb_samples=k,
        )

    def captum_sensitivity():
        return sensitivity_max(
            Saliency(model).attribute,
            tx,
            perturb_func=lambda inputs, perturb_radius=0.0: inputs + moved,
            n_perturb_samples=k,
            target=torch.from_numpy(e_sal.target),
        )

    report(
        "infidelity, 16 x 28x28 digits CNN, 10 draws (IG attributions)",
        interleaved(
            {
                "xai_core": lambda: xai_core.evaluate(
                    model, e_ig, "infidelity", perturbations=noise
                ),
                "captum": captum_infidelity,
            }
        ),
        "captum",
    )
    report(
        "sensitivity_max of saliency, 16 x 28x28, 10 draws",
        interleaved(
            {
                "xai_core": lambda: xai_core.evaluate(
                    model, e_sal, "sensitivity_max", perturbations=uniform
                ),
                "captum": captum_sensitivity,
            }
        ),
        "captum",
    )

    import quantus

    for per_step, repeats in ((1, 3), (16, 7)):
        pixel_flipping = quantus.PixelFlipping(
            features_in_step=per_step, perturb_baseline=0.0, disable_warnings=True
        )
        steps = 784 // per_step
        report(
            f"deletion vs Quantus PixelFlipping, 16 x 28x28, {steps} steps",
            interleaved(
                {
                    "xai_core": lambda s=steps: xai_core.evaluate(
                        model, e_ig, "deletion", steps=s, baseline=0.0
                    ),
                    "quantus": lambda q=pixel_flipping: q(
                        model=model,
                        x_batch=x,
                        y_batch=e_ig.target,
                        a_batch=e_ig.attributions,
                        device="cpu",
                        softmax=False,
                    ),
                },
                repeats=repeats,
                warmup=1,
            ),
            "quantus",
        )


if __name__ == "__main__":
    main()
    resnet_rows()
