"""Vanilla gradient saliency (Simonyan et al., 2013) and gradient x input.

Same numbers as Captum's `Saliency` (abs=True) and `InputXGradient`
(abs=False, multiply_by_inputs=True).
"""

from __future__ import annotations

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.errors import OptionError


class Saliency(Explainer):
    """|d f_target / d x|, or the signed gradient, optionally times the input."""

    name = "saliency"
    defaults = {"abs": True, "multiply_by_inputs": False}
    requires = ("gradients",)

    def validate(self) -> None:
        for option in ("abs", "multiply_by_inputs"):
            if not isinstance(self.options[option], (bool, np.bool_)):
                raise OptionError(f"{option} must be True or False, got {self.options[option]!r}.")

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        grads = model.gradients(inputs, target)
        if self.options["multiply_by_inputs"]:
            grads = grads * inputs
        return Attribution(attributions=np.abs(grads) if self.options["abs"] else grads)


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [Saliency]
