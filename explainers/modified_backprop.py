"""Modified backpropagation: Guided Backprop, Deconvolution, DeepLift (rescale), and
Input x Gradient under its own name.

Each method is the gradient with some layers' backward pass replaced by a rule
(`xai_core.rules`); the rules are written here once, against the framework's own
operations that the backend hands them, so the three frameworks run the same rule. They
follow Captum 0.9 exactly (the tests compare): Guided Backprop keeps the positive part of
a ReLU's input gradient, Deconvolution passes the positive part of the gradient arriving
at it; DeepLift's rescale rule replaces an activation's derivative by Δout/Δin between the
input and the baseline (the plain derivative where |Δin| < eps), with Captum's max-pool
and softmax rules.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.explainer import check_bool, check_number
from xai_core.first_pass import resolved
from xai_core.rules import LayerCall, RuleOps
from xai_core.validation import broadcast_baselines


class NotRuledWarning(UserWarning):
    """A layer a DeepLift rule would apply to, of a kind the backend cannot name."""


def guided_relu(ops: RuleOps, call: LayerCall) -> Any:
    """Guided Backprop: the ReLU's own input gradient, negative values set to 0."""
    return ops.relu(call.grad_in)


def deconvolution_relu(ops: RuleOps, call: LayerCall) -> Any:
    """Deconvolution: the gradient arriving at the ReLU, negative values set to 0, passed
    on whatever the ReLU's input was."""
    return ops.relu(call.grad_out)


def _deltas(ops: RuleOps, call: LayerCall) -> tuple[Any, Any]:
    """(Δin, Δout) between each input row and its baseline row, for both halves."""
    x, x_ref = ops.halves(call.x)
    y, y_ref = ops.halves(call.y)
    return ops.stack(x - x_ref, x - x_ref), ops.stack(y - y_ref, y - y_ref)


def rescale(eps: float) -> Any:
    def rule(ops: RuleOps, call: LayerCall) -> Any:
        delta_in, delta_out = _deltas(ops, call)
        return ops.where(
            ops.abs(delta_in) < eps, call.grad_in, call.grad_out * delta_out / delta_in
        )

    return rule


def softmax_rescale(eps: float) -> Any:
    """Captum's softmax rule: rescale, then minus the mean over the whole tensor."""

    def rule(ops: RuleOps, call: LayerCall) -> Any:
        unnormalised = rescale(eps)(ops, call)
        return unnormalised - ops.total(unnormalised) / ops.size(unnormalised)

    return rule


def maxpool_rescale(eps: float) -> Any:
    """Captum's max-pool rule: the output differences against the larger of the two
    maxima, routed back by the pool's own argmax (its backward), over Δin."""

    def rule(ops: RuleOps, call: LayerCall) -> Any:
        x, x_ref = ops.halves(call.x)
        y, y_ref = ops.halves(call.y)
        delta_in = ops.stack(x - x_ref, x - x_ref)
        top = ops.maximum(y, y_ref)
        delta_out = ops.stack(top - y_ref, y - top)
        routed = call.vjp(call.grad_out * delta_out)
        first, second = ops.halves(routed)
        routed = ops.stack(first + second, first + second)
        return ops.where(ops.abs(delta_in) < eps, call.grad_in[:1], routed / delta_in)

    return rule


class _RuledGradient(Explainer):
    """The gradient with `rules` (built by `rules()` from the options)."""

    requires = ("gradients",)
    defaults: dict[str, Any] = {}

    def rules(self) -> dict[str, Any]:
        raise NotImplementedError

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: Any) -> Attribution:
        model.check_differentiable(moves_inputs=False)
        grads = model.rule_gradients(inputs, resolved(target), self.rules())
        return Attribution(attributions=grads)


class GuidedBackprop(_RuledGradient):
    """Captum's GuidedBackprop (Springenberg et al., 2015): ReLU modules pass back only the
    positive part of their input gradient; every other layer as usual."""

    name = "guided_backprop"

    def rules(self) -> dict[str, Any]:
        return {"relu": guided_relu}


class Deconvolution(_RuledGradient):
    """Captum's Deconvolution (Zeiler and Fergus, 2014): ReLU modules pass back the positive
    part of the gradient arriving at them, whatever their input was."""

    name = "deconvolution"

    def rules(self) -> dict[str, Any]:
        return {"relu": deconvolution_relu}


class InputXGradient(Explainer):
    """Captum's InputXGradient: the signed gradient times the input (saliency with
    `abs=False, multiply_by_inputs=True`, under the name Captum users look for)."""

    name = "input_x_gradient"
    requires = ("gradients",)
    target_from_first_pass = True
    defaults: dict[str, Any] = {}

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: Any) -> Attribution:
        return Attribution(attributions=model.gradients(inputs, target) * inputs)


#: the DeepLift rules by layer kind; linear layers (Linear, Conv, BatchNorm at inference,
#: average pooling) need none: their gradient is already Δout/Δin
DEEPLIFT_KINDS = ("relu", "nonlinear", "maxpool", "softmax")


class DeepLift(Explainer):
    """Captum's DeepLift (Shrikumar et al., 2017) with the rescale rule: attributions
    (x - baseline) * multipliers, whose sum is f(x) - f(baseline) for a model built of the
    layers the rules cover (the convergence delta says how far it is)."""

    name = "deeplift"
    defaults = {"baselines": 0.0, "multiply_by_inputs": True, "eps": 1e-10}
    requires = ("gradients",)
    reference_options = ("baselines",)

    def validate(self) -> None:
        check_bool("multiply_by_inputs", self.options["multiply_by_inputs"])
        check_number("eps", self.options["eps"])

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: Any) -> Attribution:
        model.check_differentiable(moves_inputs=False)
        baselines = broadcast_baselines(self.options["baselines"], inputs)
        eps = float(self.options["eps"])
        rules = {
            "relu": rescale(eps),
            "nonlinear": rescale(eps),
            "maxpool": maxpool_rescale(eps),
            "softmax": softmax_rescale(eps),
        }
        _warn_unknown_layers(model)
        target = resolved(target)
        grads = model.rule_gradients(inputs, target, rules, references=baselines)
        contributions = (inputs - baselines) * grads
        attributions = contributions if self.options["multiply_by_inputs"] else grads
        outputs = model.forward(inputs)
        rows = np.arange(len(inputs))
        f_refs = model.reference_outputs
        if f_refs is None:
            f_refs = model.forward(baselines)
        gap = outputs[rows, target].astype(np.float64) - f_refs[rows, target]
        delta = contributions.reshape(len(inputs), -1).sum(axis=1, dtype=np.float64) - gap
        return Attribution(attributions=attributions.astype(inputs.dtype), convergence_delta=delta)


def _warn_unknown_layers(model: BatchedModel) -> None:
    try:
        kinds = model.layer_kinds()
    except Exception:  # noqa: BLE001 - the pass itself says what the backend lacks
        return
    unknown = [name for name, kind in kinds.items() if kind is None]
    if unknown:
        warnings.warn(
            f"deeplift: no rule for layers {unknown[:8]}{'...' if len(unknown) > 8 else ''} "
            "(a layer class the backend has no kind for); they backpropagate their plain "
            "gradient, as in Captum, so completeness may not hold there: see the "
            "explanation's convergence_delta.",
            NotRuledWarning,
            stacklevel=3,
        )


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [GuidedBackprop, Deconvolution, InputXGradient, DeepLift]
