"""Captum's layer attribution methods under their names: Layer Gradient x Activation,
Internal Influence and Layer Conductance (Dhamdhere et al., 2018).

All three attribute to a layer's output (one row per sample, the layer's shape) and need
only gradients at a layer, so every backend with that capability runs them. The path
methods use the quadrature of `integrated_gradients` (nodes equal Captum's for every
rule); Layer Conductance takes `n_steps + 1` nodes, as Captum does, and sums each step's
gradient times the layer's change to the next node.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.errors import OptionError
from xai_core.explainer import (
    check_bool,
    check_choice,
    check_float_layer,
    check_held,
    check_positive_int,
    chosen_layer,
)
from xai_core.first_pass import resolved
from xai_core.validation import broadcast_baselines

from .integrated_gradients import RULES, quadrature


def _layer_of(options: dict[str, Any], method: str) -> str:
    layer = chosen_layer(options)
    if not isinstance(layer, str):
        raise OptionError(
            f"{method} needs layer=<one layer name>; xai_core.adapt(model).layers() lists them."
        )
    return layer


class LayerGradientXActivation(Explainer):
    """Captum's LayerGradientXActivation: the layer's activation times the gradient of
    the target there (`multiply_by_inputs=False`: the gradient alone)."""

    name = "layer_gradient_x_activation"
    defaults = {"layer": None, "attribute_to_layer_input": False, "multiply_by_inputs": True}
    requires = ("gradients at a layer",)
    target_from_first_pass = True

    def validate(self) -> None:
        check_bool("multiply_by_inputs", self.options["multiply_by_inputs"])
        _layer_of(self.options, self.name)

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: Any) -> Attribution:
        layer = _layer_of(self.options, self.name)
        model.check_layers([layer])
        activation, grads = model.layer_gradients(inputs, target, layer)
        check_float_layer(layer, activation)
        kept = grads * activation if self.options["multiply_by_inputs"] else grads
        return Attribution(attributions=kept, layer=layer)


class _LayerPath(Explainer):
    """The layer's activations and gradients at points b + a (x - b) of the input path."""

    defaults = {
        "layer": None,
        "attribute_to_layer_input": False,
        "baselines": 0.0,
        "n_steps": 50,
        "integration": "gausslegendre",
    }
    requires = ("gradients at a layer",)
    reference_options = ("baselines",)
    #: points of the path: n_steps, or n_steps + 1 (Layer Conductance)
    extra_node = 0

    def validate(self) -> None:
        check_choice("integration", self.options["integration"], RULES)
        minimum = 2 if self.options["integration"] == "riemann_trapezoid" else 1
        check_positive_int("n_steps", self.options["n_steps"], minimum)
        _layer_of(self.options, self.name)

    def path(
        self, model: BatchedModel, inputs: np.ndarray, target: Any
    ) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
        """(layer, target, activations, gradients); the last two (points, N, *layer)."""
        layer = _layer_of(self.options, self.name)
        model.check_layers([layer])
        model.check_differentiable(moves_inputs=True)
        n = self.options["n_steps"] + self.extra_node
        check_held("n_steps x samples", n * len(inputs), inputs[0].nbytes, "path points")
        nodes, _ = quadrature(self.options["integration"], n)
        baselines = broadcast_baselines(self.options["baselines"], inputs)
        steps = nodes.astype(inputs.dtype).reshape(-1, 1, *([1] * (inputs.ndim - 1)))
        points = (baselines + steps * (inputs - baselines)).reshape(-1, *inputs.shape[1:])
        target = resolved(target)
        activations, grads = model.layer_gradients(points, np.tile(target, n), layer)
        check_float_layer(layer, activations)
        shape = (n, len(inputs), *activations.shape[1:])
        return layer, target, activations.reshape(shape), grads.reshape(shape)


class InternalInfluence(_LayerPath):
    """Captum's InternalInfluence (Leino et al., 2018): the layer's gradients integrated
    along the input path, sum_k w_k grad_layer f(b + a_k (x - b))."""

    name = "internal_influence"

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: Any) -> Attribution:
        layer, _, _, grads = self.path(model, inputs, target)
        _, weights = quadrature(self.options["integration"], self.options["n_steps"])
        total = np.einsum("k,k...->...", weights.astype(grads.dtype), grads)
        return Attribution(attributions=total, layer=layer)


class LayerConductance(_LayerPath):
    """Captum's LayerConductance: sum_k grad_layer f(p_k) * (layer(p_{k+1}) - layer(p_k))
    over `n_steps + 1` path points; its sum over the layer approximates f(x) - f(b)
    (reported as the convergence delta)."""

    name = "layer_conductance"
    extra_node = 1

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: Any) -> Attribution:
        layer, target, activations, grads = self.path(model, inputs, target)
        conductance = (grads[:-1] * (activations[1:] - activations[:-1])).sum(axis=0)
        baselines = broadcast_baselines(self.options["baselines"], inputs)
        rows = np.arange(len(inputs))
        gap = model.forward(inputs)[rows, target] - model.forward(baselines)[rows, target]
        totals = conductance.reshape(len(inputs), -1).sum(axis=1, dtype=np.float64)
        return Attribution(attributions=conductance, layer=layer, convergence_delta=totals - gap)


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [LayerGradientXActivation, InternalInfluence, LayerConductance]
