"""Layer-wise Relevance Propagation (Bach et al., 2015) on every framework, with Captum's
rules and zennit's composites.

LRP is a backward pass in which each layer hands its relevance down in proportion to
what each input contributed to its output: for a linear or convolutional layer
R_in = x * W'^T (R_out / z'), with z' the layer's output computed with modified weights
W' (the rule). Here that pass is the gradient with backward rules (`xai_core.rules`):
the rules are written once against the framework's own operations and the backends'
`LayerCall.refit`, so PyTorch, Keras and Paddle run the same arithmetic; relevance
starts at 1 on the target output and is scaled by the output's value at the end, as
Captum does, so that a conservative rule's relevances sum to f(x)[target].

`rule=` gives Captum's LRP: the rule on every Linear/Dense and convolution, Captum's
epsilon rule (with `epsilon`) on pooling and BatchNorm, activations passing relevance
on unchanged. `composite=` gives one of zennit's composites, with zennit's defaults,
choosing the rule by layer kind and position (the first linear or convolutional layer in
the model's layer order is "the first layer").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.errors import OptionError
from xai_core.explainer import check_choice, check_number
from xai_core.first_pass import resolved
from xai_core.rules import LayerCall, RuleOps

from .modified_backprop import warn_unruled

#: zennit's stabiliser and epsilon inside its composites
ZENNIT_EPSILON = 1e-6


def stabilised(z: Any, eps: float, ops: RuleOps) -> Any:
    """z + eps * sign(z), with sign(0) = 1: Captum's and zennit's stabiliser (the same)."""
    return ops.where(z >= 0, z + eps, z - eps)


def passed(ops: RuleOps, call: LayerCall) -> Any:
    """Relevance handed on unchanged (activations, and BatchNorm in zennit's composites)."""
    return call.grad_out


def epsilon_rule(eps: float) -> Any:
    """R_in = x * vjp(R_out / (y + eps sign y)): the layer's own backward. With a tiny
    eps (Captum's 1e-9) this is LRP-0, conservative for a layer without bias."""

    def rule(ops: RuleOps, call: LayerCall) -> Any:
        return call.x * call.vjp(call.grad_out / stabilised(call.y, eps, ops))

    return rule


def weight_rule(modify: Callable[[RuleOps, Any], Any], eps: float) -> Any:
    """Captum's rules that change the weights only (the bias is kept): the epsilon rule
    through z' and backward of the layer with weights `modify(W)`."""

    def rule(ops: RuleOps, call: LayerCall) -> Any:
        def new(param: Any, name: str) -> Any:
            return modify(ops, param) if name == "weight" else param

        z, vjp = call.refitted(call.x, new)
        return call.x * vjp(call.grad_out / stabilised(z, eps, ops))

    return rule


def alpha_beta_rule(alpha: float, beta: float, eps: float) -> Any:
    """zennit's AlphaBeta (z+ is alpha=1, beta=0): positive contributions (x+ W+ and
    x- W-, with the positive bias) and negative ones (x+ W- and x- W+, with the negative
    bias) are normalised separately and weighted alpha and -beta."""

    def positive(ops: RuleOps, p: Any, name: str) -> Any:
        return ops.relu(p)

    def negative(ops: RuleOps, p: Any, name: str) -> Any:
        return p - ops.relu(p)

    def unbiased(part: Callable) -> Callable:
        return lambda ops, p, name: part(ops, p, name) if name == "weight" else p * 0

    def share(ops: RuleOps, call: LayerCall, x_pos: Any, x_neg: Any, first: Any, second: Any):
        z1, vjp1 = call.refitted(x_pos, lambda p, name: first(ops, p, name))
        z2, vjp2 = call.refitted(x_neg, lambda p, name: second(ops, p, name))
        s = call.grad_out / stabilised(z1 + z2, eps, ops)
        return x_pos * vjp1(s) + x_neg * vjp2(s)

    def rule(ops: RuleOps, call: LayerCall) -> Any:
        x_pos = ops.relu(call.x)
        x_neg = call.x - x_pos
        kept = share(ops, call, x_pos, x_neg, positive, unbiased(negative))
        relevance = kept if alpha == 1 else kept * alpha
        if beta == 0:
            return relevance
        dropped = share(ops, call, x_pos, x_neg, negative, unbiased(positive))
        return relevance - dropped * beta

    return rule


def flat_rule(eps: float) -> Any:
    """zennit's Flat: relevance spread uniformly over each output's receptive field (all
    weights 1, no bias, inputs 1), used for the first layer in `epsilon_plus_flat`."""

    def rule(ops: RuleOps, call: LayerCall) -> Any:
        ones = call.x * 0 + 1
        z, vjp = call.refitted(ones, lambda p, name: p * 0 + 1 if name == "weight" else p * 0)
        return vjp(call.grad_out / stabilised(z, eps, ops))

    return rule


def by_name(first: str | None, first_rule: Any, other_rule: Any) -> Any:
    """`first_rule` on the layer named `first`, `other_rule` on every other one."""

    def rule(ops: RuleOps, call: LayerCall) -> Any:
        return (first_rule if call.name == first else other_rule)(ops, call)

    return rule


RULES = ("epsilon", "gamma", "alpha1-beta0", "z+")
COMPOSITES = ("epsilon_plus_flat", "epsilon_plus", "epsilon_alpha2_beta1_flat")


@functools.lru_cache(maxsize=32)
def lrp_rules(
    rule: str, eps: float, gamma: float, composite: str | None, first: str | None
) -> dict[str, Any]:
    """The rules by layer kind, built once per choice: a backend that traces its rule
    passes (Keras) keeps one trace per rule set, told apart by the functions' identity."""
    if composite is not None:
        return _composite(composite, first)
    on_weights = {
        "epsilon": epsilon_rule(eps),
        "gamma": weight_rule(lambda ops, w: w + gamma * ops.relu(w), eps),
        "alpha1-beta0": weight_rule(lambda ops, w: ops.relu(w), eps),
        "z+": alpha_beta_rule(1.0, 0.0, eps),
    }[rule]
    others = epsilon_rule(eps)
    return {
        "relu": passed,
        "nonlinear": passed,
        "linear": on_weights,
        "conv": on_weights,
        "maxpool": others,
        "avgpool": others,
        "batchnorm": others,
    }


def _composite(name: str, first: str | None) -> dict[str, Any]:
    """zennit's composites by its layer map: activations pass, average pooling is Norm
    (epsilon 1e-6), BatchNorm passes, Linear is Epsilon(1e-6), convolutions take the
    composite's rule, and the first linear/conv layer Flat where the name says so;
    max-pooling keeps its plain gradient (zennit maps no rule to it)."""
    eps = ZENNIT_EPSILON
    conv = alpha_beta_rule(2.0, 1.0, eps) if "alpha2_beta1" in name else alpha_beta_rule(1, 0, eps)
    linear = epsilon_rule(eps)
    if name.endswith("_flat"):
        conv, linear = by_name(first, flat_rule(eps), conv), by_name(first, flat_rule(eps), linear)
    return {
        "relu": passed,
        "nonlinear": passed,
        "avgpool": epsilon_rule(eps),
        "batchnorm": passed,
        "linear": linear,
        "conv": conv,
    }


class LRP(Explainer):
    """Captum's LRP (`rule=`, applied to Linear/Conv; pooling and BatchNorm take the
    epsilon rule, as Captum's defaults) or a zennit composite (`composite=`). The
    convergence delta is f(x)[target] - sum(relevance), Captum's."""

    name = "lrp"
    defaults = {"rule": "epsilon", "epsilon": 1e-9, "gamma": 0.25, "composite": None}
    requires = ("gradients",)
    target_from_first_pass = True

    def validate(self) -> None:
        check_choice("rule", self.options["rule"], RULES)
        check_number("epsilon", self.options["epsilon"])
        check_number("gamma", self.options["gamma"])
        composite = self.options["composite"]
        if composite is not None:
            check_choice("composite", composite, COMPOSITES)
            if self.options["rule"] != "epsilon":
                raise OptionError(
                    f"lrp takes rule= or composite=, not both (rule={self.options['rule']!r}, "
                    f"composite={composite!r}): a composite chooses the rule of every layer."
                )

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: Any) -> Attribution:
        model.check_differentiable(moves_inputs=False)
        kinds = model.layer_kinds()
        _check_layers(kinds)
        o = self.options
        first = next((name for name, k in kinds.items() if k in ("linear", "conv")), None)
        rules = lrp_rules(o["rule"], float(o["epsilon"]), float(o["gamma"]), o["composite"], first)
        relevance = model.rule_gradients(inputs, target, rules)
        target = resolved(target)
        outputs = model.last_outputs
        if outputs is None:  # a backend that gave no outputs with its pass
            outputs = model.forward(inputs)
        value = outputs[np.arange(len(inputs)), target]
        attributions = relevance * value.reshape((-1,) + (1,) * (relevance.ndim - 1))
        total = attributions.reshape(len(inputs), -1).sum(axis=1, dtype=np.float64)
        return Attribution(
            attributions=attributions.astype(inputs.dtype), convergence_delta=value - total
        )


def _check_layers(kinds: dict[str, str | None]) -> None:
    softmax = [name for name, kind in kinds.items() if kind == "softmax"]
    if softmax:
        raise OptionError(
            f"lrp explains scores, and layer {softmax[0]!r} is a softmax: relevance through "
            "a softmax is not defined by any LRP rule. Explain the logits: drop the softmax "
            "layer (or its activation) from the model you explain."
        )
    warn_unruled(kinds, "lrp", "conservation")


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [LRP]
