"""Modified backpropagation: Guided Backprop, Deconvolution, Guided Grad-CAM, DeepLift
(rescale) and DeepLiftShap, and Input x Gradient under its own name.

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

import functools
import warnings
from typing import Any

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.errors import OptionError
from xai_core.explainer import check_bool, check_held, check_number
from xai_core.first_pass import resolved
from xai_core.rules import LayerCall, RuleOps
from xai_core.validation import broadcast_baselines

from .grad_cam import GradCAM


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
    """DeepLift's rescale rule: g * Δout/Δin, the plain input gradient where |Δin| < eps."""

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
        # Captum takes `grad_input[0]` here, the first row's plain gradient, broadcast to
        # every row where Δin is 0 (README, DeepLift): copied, to give Captum's numbers
        return ops.where(ops.abs(delta_in) < eps, call.grad_in[:1], routed / delta_in)

    return rule


#: the rule sets, built once (see `deeplift_rules`)
GUIDED = {"relu": guided_relu}
DECONVOLUTION = {"relu": deconvolution_relu}


class _RuledGradient(Explainer):
    """The gradient with `rules` (built by `rules()` from the options)."""

    neuron_option = True

    requires = ("gradients",)
    defaults: dict[str, Any] = {}
    target_from_first_pass = True

    def rules(self) -> dict[str, Any]:
        raise NotImplementedError

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: Any) -> Attribution:
        model.check_differentiable(moves_inputs=False)
        grads = model.rule_gradients(inputs, target, self.rules())
        return Attribution(attributions=grads)


class GuidedBackprop(_RuledGradient):
    """Captum's GuidedBackprop (Springenberg et al., 2015): ReLU modules pass back only the
    positive part of their input gradient; every other layer as usual."""

    name = "guided_backprop"

    def rules(self) -> dict[str, Any]:
        return GUIDED


class Deconvolution(_RuledGradient):
    """Captum's Deconvolution (Zeiler and Fergus, 2014): ReLU modules pass back the positive
    part of the gradient arriving at them, whatever their input was."""

    name = "deconvolution"

    def rules(self) -> dict[str, Any]:
        return DECONVOLUTION


class InputXGradient(Explainer):
    """Captum's InputXGradient: the signed gradient times the input (saliency with
    `abs=False, multiply_by_inputs=True`, under the name Captum users look for)."""

    neuron_option = True

    name = "input_x_gradient"
    requires = ("gradients",)
    target_from_first_pass = True
    defaults: dict[str, Any] = {}

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: Any) -> Attribution:
        return Attribution(attributions=model.gradients(inputs, target) * inputs)


class GuidedGradCam(Explainer):
    """Captum's GuidedGradCam (Selvaraju et al., 2017): Guided Backprop times the layer's
    Grad-CAM map (ReLU'd, as Captum's) upsampled to the input by nearest neighbours
    (Captum's `interpolate_mode="nearest"`), over every channel."""

    name = "guided_grad_cam"
    defaults = {"layer": None, "attribute_to_layer_input": False}
    requires = ("gradients",)
    target_from_first_pass = True  # the Grad-CAM pass settles it

    def validate(self) -> None:
        if not isinstance(self.options["layer"], str):
            raise OptionError(
                "guided_grad_cam needs layer=<name of a convolutional layer>, e.g. the last "
                "one; xai_core.adapt(model).layers() lists the names."
            )

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: Any) -> Attribution:
        if inputs.ndim < 3 or (model.layout is not None and model.layout.packed):
            raise OptionError(
                f"guided_grad_cam maps a layer onto images or sequences (one array with "
                f"spatial axes), not inputs of shape {inputs.shape}."
            )
        cam = GradCAM(
            layer=self.options["layer"],
            attribute_to_layer_input=self.options["attribute_to_layer_input"],
            relu_attributions=True,
        ).explain(model, inputs, target)
        target = resolved(target)
        layer_map = cam.extras["layer_attributions"]  # (N, h, w) or (N, t)
        guided = model.rule_gradients(inputs, target, GUIDED)
        spatial = inputs.shape[1:-1] if model.channels_last else inputs.shape[2:]
        if layer_map.ndim - 1 != len(spatial):
            raise OptionError(
                f"layer {self.options['layer']!r} gives a map of shape {layer_map.shape[1:]}, "
                f"which does not follow the inputs' spatial axes {spatial}."
            )
        upsampled = np.expand_dims(nearest(layer_map, spatial), -1 if model.channels_last else 1)
        return Attribution(
            attributions=(guided * upsampled).astype(inputs.dtype),
            extras={"layer_attributions": layer_map},
        )


def nearest(maps: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """(N, *in) maps resized to (N, *size) as `torch.nn.functional.interpolate(mode=
    "nearest")` does: source index floor(i * (in / out)), in float32 as torch computes it."""
    out = maps
    for axis, n_out in enumerate(size, start=1):
        n_in = maps.shape[axis]
        scale = np.float32(n_in) / np.float32(n_out)
        index = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
        out = np.take(out, np.minimum(index, n_in - 1), axis=axis)
    return out


#: the DeepLift rules by layer kind; linear layers (Linear, Conv, BatchNorm at inference,
#: average pooling) need none: their gradient is already Δout/Δin
DEEPLIFT_KINDS = ("relu", "nonlinear", "maxpool", "softmax")


class DeepLift(Explainer):
    """Captum's DeepLift (Shrikumar et al., 2017) with the rescale rule: attributions
    (x - baseline) * multipliers, whose sum is f(x) - f(baseline) for a model built of the
    layers the rules cover (the convergence delta says how far it is)."""

    neuron_option = True

    name = "deeplift"
    defaults = {"baselines": 0.0, "multiply_by_inputs": True, "eps": 1e-10}
    requires = ("gradients",)
    reference_options = ("baselines",)
    target_from_first_pass = True  # the paired pass [x; baselines] settles it

    def validate(self) -> None:
        check_bool("multiply_by_inputs", self.options["multiply_by_inputs"])
        check_number("eps", self.options["eps"])

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: Any) -> Attribution:
        baselines = broadcast_baselines(self.options["baselines"], inputs)
        multipliers, delta = deeplift_pass(model, inputs, baselines, target, self.options["eps"])
        contributions = (inputs - baselines) * multipliers
        attributions = contributions if self.options["multiply_by_inputs"] else multipliers
        return Attribution(attributions=attributions.astype(inputs.dtype), convergence_delta=delta)


class DeepLiftShap(Explainer):
    """Captum's DeepLiftShap: DeepLift from every row of `background`, averaged, which
    approximates SHAP values with the background as the reference distribution. The
    convergence delta per sample is sum(attributions) - (f(x) - mean f(background)), the
    mean of Captum's per-(sample, background row) deltas."""

    neuron_option = True

    name = "deeplift_shap"
    defaults = {"background": None, "multiply_by_inputs": True, "eps": 1e-10}
    requires = ("gradients",)
    reference_options = ("background",)

    def validate(self) -> None:
        if self.options["background"] is None:
            raise OptionError(
                "deeplift_shap needs background=<reference samples> (e.g. 50-100 rows of the "
                "training data), like gradient_shap and kernel_shap."
            )
        check_bool("multiply_by_inputs", self.options["multiply_by_inputs"])
        check_number("eps", self.options["eps"])

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: Any) -> Attribution:
        background = np.asarray(self.options["background"], dtype=inputs.dtype)
        if background.ndim != inputs.ndim or background.shape[1:] != inputs.shape[1:]:
            raise OptionError(
                f"background of shape {background.shape} does not match one row of the "
                f"inputs {inputs.shape[1:]}: give reference rows shaped like the samples."
            )
        check_held("background x samples", len(background) * len(inputs), inputs[0].nbytes, "rows")
        n, b = len(inputs), len(background)
        target = resolved(target)
        rows = np.repeat(inputs, b, axis=0)  # Captum's order: each sample with every row
        references = np.tile(background, (n, *([1] * (inputs.ndim - 1))))
        multipliers, pair_deltas = deeplift_pass(
            model, rows, references, np.repeat(target, b), self.options["eps"]
        )
        contributions = (rows - references) * multipliers
        kept = contributions if self.options["multiply_by_inputs"] else multipliers
        attributions = kept.reshape(n, b, *inputs.shape[1:]).mean(axis=1)
        return Attribution(
            attributions=attributions.astype(inputs.dtype),
            convergence_delta=pair_deltas.reshape(n, b).mean(axis=1),
        )


@functools.lru_cache(maxsize=16)
def deeplift_rules(eps: float) -> dict[str, Any]:
    """DeepLift's rules for one eps, built once: a backend that traces its rule passes
    (Keras) keeps one trace per rule set, told apart by the functions' identity."""
    return {
        "relu": rescale(eps),
        "nonlinear": rescale(eps),
        "maxpool": maxpool_rescale(eps),
        "softmax": softmax_rescale(eps),
    }


def deeplift_pass(
    model: BatchedModel, inputs: np.ndarray, baselines: np.ndarray, target: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """(DeepLift's multipliers of each row against its baseline row, the convergence delta
    of each pair: sum((x - b) * m) - (f(x) - f(b)))."""
    model.check_differentiable(moves_inputs=False)
    rules = deeplift_rules(float(eps))
    _warn_unknown_layers(model)
    multipliers = model.rule_gradients(inputs, target, rules, references=baselines)
    target = resolved(target)  # settled by that pass, if it was pending
    f_inputs, f_refs = model.sample_outputs, model.reference_outputs
    if f_inputs is None or f_refs is None:  # a backend that gave no outputs with its pass
        f_inputs, f_refs = model.forward(inputs), model.forward(baselines)
    rows = np.arange(len(inputs))
    gap = f_inputs[rows, target].astype(np.float64) - f_refs[rows, target]
    contributions = ((inputs - baselines) * multipliers).reshape(len(inputs), -1)
    return multipliers, contributions.sum(axis=1, dtype=np.float64) - gap


def _warn_unknown_layers(model: BatchedModel) -> None:
    try:
        kinds = model.layer_kinds()
    except Exception:  # noqa: BLE001 - the pass itself says what the backend lacks
        return
    warn_unruled(kinds, "deeplift", "completeness")


def warn_unruled(kinds: dict[str, str | None], method: str, promise: str) -> None:
    """A `NotRuledWarning` naming the layers of no known kind: they backpropagate their
    plain gradient (as in Captum), so the method's `promise` may not hold there."""
    unknown = [name for name, kind in kinds.items() if kind is None]
    if unknown:
        warnings.warn(
            f"{method}: no rule for layers {unknown[:8]}{'...' if len(unknown) > 8 else ''} "
            "(a layer class the backend has no kind for); they backpropagate their plain "
            f"gradient, as in Captum, so {promise} may not hold there: see the "
            "explanation's convergence_delta.",
            NotRuledWarning,
            stacklevel=4,
        )


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [GuidedBackprop, Deconvolution, InputXGradient, GuidedGradCam, DeepLift, DeepLiftShap]
