"""SmoothGrad (Smilkov et al., 2017), SmoothGrad-squared and VarGrad.

Averages saliency (or gradient x input) over noisy copies of each sample.
Noise level: `stdevs` is a fraction of each sample's input range
(sigma_i = stdevs * (max(x_i) - min(x_i))), as in the paper, so one default
suits images in [0, 1] and in [0, 255] alike.

Reproducible by contract: with `rng = numpy.random.default_rng(seed)`, draw s
(s = 0..n_samples-1, in order) is `x + rng.standard_normal(x.shape, dtype=float32) * sigma`,
whatever `internal_batch_size` is, so any library can reproduce the noisy inputs.
"""

from __future__ import annotations

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.explainer import (
    check_bool,
    check_choice,
    check_layer_option,
    check_number,
    check_positive_int,
    chosen_layer,
    resolve_seed,
)

VARIANTS = ("smoothgrad", "smoothgrad_sq", "vargrad")


def noise_scale(inputs: np.ndarray, stdevs: float) -> np.ndarray:
    """sigma per sample, broadcastable against the inputs."""
    axes = tuple(range(1, inputs.ndim))
    spread = inputs.max(axis=axes, keepdims=True) - inputs.min(axis=axes, keepdims=True)
    return (stdevs * spread).astype(inputs.dtype)


class SmoothGrad(Explainer):
    name = "smoothgrad"
    defaults = {
        "n_samples": 50,
        "stdevs": 0.15,
        "variant": "smoothgrad",
        "abs": True,
        "multiply_by_inputs": False,
        "seed": None,
        "layer": None,
        "attribute_to_layer_input": False,
    }
    requires = ("gradients",)
    target_from_first_pass = True

    def validate(self) -> None:
        check_positive_int("n_samples", self.options["n_samples"])
        check_number("stdevs", self.options["stdevs"])
        check_choice("variant", self.options["variant"], VARIANTS)
        check_bool("abs", self.options["abs"])
        check_bool("multiply_by_inputs", self.options["multiply_by_inputs"])
        if self.options["seed"] is not None:
            resolve_seed(self.options["seed"])
        check_layer_option(self.options["layer"])

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        model.check_differentiable(moves_inputs=True)  # ids and bools: say so first
        seed = resolve_seed(self.options["seed"])
        n = self.options["n_samples"]
        sigma = noise_scale(inputs, self.options["stdevs"])
        rng = np.random.default_rng(seed)
        noisy: dict[str, np.ndarray] = {}

        def noisy_copies(start: int, stop: int) -> np.ndarray:
            # one call per group draws exactly what one call per draw would (sequential stream)
            noise = rng.standard_normal((stop - start, *inputs.shape), dtype=np.float32)
            noise *= sigma
            noise += inputs
            noisy["group"] = noise.astype(inputs.dtype, copy=False)
            return noisy["group"]

        variant, layer = self.options["variant"], chosen_layer(self.options)
        if layer is None:
            groups = (
                (grads, noisy["group"])
                for _, _, grads in model.gradient_groups(n, noisy_copies, target, like=inputs)
            )
        else:  # noise on the inputs, gradients at the layer (Captum's NoiseTunnel on a layer)
            model.check_layers([layer])
            groups = (
                (grads, acts)
                for _, _, acts, grads in model.layer_gradient_groups(
                    layer, n, noisy_copies, target, like=inputs
                )
            )
        total = total_sq = None
        for grads, values in groups:
            if total is None:
                total = np.zeros(grads.shape[1:], np.float64)
                total_sq = np.zeros(grads.shape[1:], np.float64)
            attr = grads * values if self.options["multiply_by_inputs"] else grads
            if self.options["abs"]:
                attr = np.abs(attr, out=attr if attr is not grads else None)
            if variant != "smoothgrad_sq":
                total += attr.sum(axis=0)
            if variant != "smoothgrad":
                total_sq += np.einsum("k...,k...->...", attr, attr)
        mean, mean_sq = total / n, total_sq / n
        result = {"smoothgrad": mean, "smoothgrad_sq": mean_sq, "vargrad": mean_sq - mean**2}
        return Attribution(
            attributions=result[variant].astype(inputs.dtype), options={"seed": seed}, layer=layer
        )


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [SmoothGrad]
