"""GradientSHAP / expected gradients (Lundberg & Lee, 2017; Erion et al., 2021).

For each sample and each of `n_samples` draws: a reference row b from
`background`, Gaussian noise on the input (absolute `stdevs`, as in Captum's
`GradientShap` and shap's `local_smoothing`), a point a ~ U(0, 1) on the path;
the attribution is the mean of grad f(b + a (x~ - b)) * (x~ - b). On a linear
model it converges to w * (x - mean(background)).

Reproducible by contract: with `rng = numpy.random.default_rng(seed)`, the
reference rows are `rng.integers(0, len(background), (n_samples, n))`, the path
points `rng.uniform(0, 1, (n_samples, n))`, then, only if `stdevs > 0`, draw s
(in order) adds `rng.standard_normal(x.shape, dtype=float32) * stdevs` to x.
"""

from __future__ import annotations

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.errors import OptionError
from xai_core.explainer import (
    check_held,
    check_layer_option,
    check_number,
    check_positive_int,
    chosen_layer,
    resolve_seed,
)
from xai_core.outputs import at_target
from xai_core.validation import check_background


class GradientShap(Explainer):
    neuron_option = True
    name = "gradient_shap"
    defaults = {
        "background": None,
        "n_samples": 50,
        "stdevs": 0.0,
        "seed": None,
        "layer": None,
        "attribute_to_layer_input": False,
        "multiply_by_inputs": True,
    }
    requires = ("gradients",)

    def validate(self) -> None:
        if not isinstance(self.options["multiply_by_inputs"], bool):
            raise OptionError("multiply_by_inputs must be True or False.")
        check_positive_int("n_samples", self.options["n_samples"])
        check_number("stdevs", self.options["stdevs"])
        if self.options["background"] is None:
            check_background(None, np.zeros((1, 1)), self.name)  # raises, saying what to pass
        if self.options["seed"] is not None:
            resolve_seed(self.options["seed"])
        check_layer_option(self.options["layer"])

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        background = check_background(self.options["background"], inputs, self.name)
        seed = resolve_seed(self.options["seed"])
        n_samples, n, stdevs = self.options["n_samples"], len(inputs), self.options["stdevs"]
        check_held("n_samples", n_samples, 16 * n, "the reference and path draws")
        rng = np.random.default_rng(seed)
        rows = rng.integers(0, len(background), (n_samples, n))
        alphas = rng.uniform(0.0, 1.0, (n_samples, n)).astype(inputs.dtype)
        alphas = alphas.reshape(n_samples, n, *([1] * (inputs.ndim - 1)))
        paths: dict[str, np.ndarray] = {}

        def path_points(start: int, stop: int) -> np.ndarray:
            base = background[rows[start:stop]]
            ends = inputs[None]
            if stdevs > 0:
                noise = [
                    rng.standard_normal(inputs.shape, dtype=np.float32) for _ in range(start, stop)
                ]
                ends = (inputs + np.stack(noise) * np.float32(stdevs)).astype(inputs.dtype)
            paths["group"] = ends - base
            return base + alphas[start:stop] * paths["group"]

        layer = chosen_layer(self.options)
        gradient_sum = None  # the mean gradient is the attribution without the inputs' factor
        if layer is None:
            model.check_differentiable(moves_inputs=True)  # ids and bools: say so first
            total = np.zeros(inputs.shape, np.float64)
            gradient_sum = np.zeros(inputs.shape, np.float64)
            for _, _, grads in model.gradient_groups(n_samples, path_points, target, like=inputs):
                total += np.einsum("k...,k...->...", grads, paths["group"])
                gradient_sum += grads.sum(axis=0)
        else:  # Captum's LayerGradientShap: gradients at the layer on the input-space path,
            # times the layer's output on the (noisy) input minus on the reference row
            model.check_layers([layer])
            x_layer = None if stdevs > 0 else model.capture(inputs, [layer])[layer]
            total = None
            groups = model.layer_gradient_groups(layer, n_samples, path_points, target, inputs)
            for start, stop, _, grads in groups:
                if stdevs > 0:  # the layer's output on this group's noisy inputs
                    ends = (paths["group"] + background[rows[start:stop]]).reshape(
                        -1, *inputs.shape[1:]
                    )
                    end_layer = model.capture(ends, [layer])[layer].reshape(grads.shape)
                else:
                    end_layer = x_layer[None]
                # the reference rows as blocks of the batch: each takes its sample's kwargs
                refs = background[rows[start:stop]].reshape(-1, *inputs.shape[1:])
                diff = end_layer - model.capture(refs, [layer])[layer].reshape(grads.shape)
                term = np.einsum("k...,k...->...", grads, diff)
                total = term if total is None else total + term
                summed = grads.sum(axis=0).astype(np.float64)
                gradient_sum = summed if gradient_sum is None else gradient_sum + summed
        attributions = total / n_samples
        # Captum's multiply_by_inputs=False: the expected gradient alone (the delta below
        # still checks completeness of the multiplied attributions, as Captum's does)
        returned = attributions if self.options["multiply_by_inputs"] else gradient_sum / n_samples
        # f at each draw's reference row, with its sample's forward_kwargs (an attention
        # mask belongs to the sample, not to the background row)
        reference_output = np.zeros(n, np.float64)
        references = model.forward_groups(
            n_samples, lambda start, stop: background[rows[start:stop]], like=inputs
        )
        for _, _, outputs in references:
            reference_output += at_target(outputs, target).sum(axis=0)
        reference_output /= n_samples
        f_x = model.forward(inputs)[np.arange(n), target].astype(np.float64)
        delta = attributions.reshape(n, -1).sum(axis=1) - (f_x - reference_output)
        return Attribution(
            attributions=returned.astype(inputs.dtype if layer is None else grads.dtype),
            convergence_delta=delta,
            options={"seed": seed},
            layer=layer,
        )


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [GradientShap]
