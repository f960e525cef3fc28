"""Vanilla gradient saliency (Simonyan et al., 2013) and gradient x input.

Same numbers as Captum's `Saliency` (abs=True) and `InputXGradient`
(abs=False, multiply_by_inputs=True); with `layer=`, the gradient at that
layer's output, times the output with multiply_by_inputs (Captum's
`LayerGradientXActivation`).
"""

from __future__ import annotations

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.explainer import check_bool, check_float_layer, check_layer_option, chosen_layer


class Saliency(Explainer):
    """|d f_target / d x|, or the signed gradient, optionally times the input."""

    neuron_option = True

    name = "saliency"
    defaults = {
        "abs": True,
        "multiply_by_inputs": False,
        "layer": None,
        "attribute_to_layer_input": False,
    }
    requires = ("gradients",)
    target_from_first_pass = True

    def validate(self) -> None:
        check_bool("abs", self.options["abs"])
        check_bool("multiply_by_inputs", self.options["multiply_by_inputs"])
        check_layer_option(self.options["layer"])

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        layer = chosen_layer(self.options)
        if layer is None:
            grads, values = model.gradients(inputs, target), inputs
        else:  # Captum's LayerGradientXActivation (multiply_by_inputs) / the layer's gradient
            model.check_layers([layer])
            values, grads = model.layer_gradients(inputs, target, layer)
            check_float_layer(layer, values)
        if self.options["multiply_by_inputs"]:
            grads = grads * values
        return Attribution(
            attributions=np.abs(grads) if self.options["abs"] else grads, layer=layer
        )


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [Saliency]
