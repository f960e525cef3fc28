"""Vanilla gradient saliency (Simonyan et al., 2013) and gradient x input.

Same numbers as Captum's `Saliency` (abs=True) and `InputXGradient`
(abs=False, multiply_by_inputs=True).
"""

from __future__ import annotations

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.explainer import check_bool


class Saliency(Explainer):
    """|d f_target / d x|, or the signed gradient, optionally times the input."""

    name = "saliency"
    defaults = {"abs": True, "multiply_by_inputs": False}
    requires = ("gradients",)

    def validate(self) -> None:
        check_bool("abs", self.options["abs"])
        check_bool("multiply_by_inputs", self.options["multiply_by_inputs"])

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        grads = model.gradients(inputs, target)
        if self.options["multiply_by_inputs"]:
            grads = grads * inputs
        return Attribution(attributions=np.abs(grads) if self.options["abs"] else grads)


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [Saliency]
