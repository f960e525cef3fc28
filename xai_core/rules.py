"""Backward rules: the one mechanism behind modified backpropagation (DeepLift, Guided
Backprop, Deconvolution, and LRP-style rules), on every framework.

Each of those methods is the gradient with the backward pass of some layers replaced. A
rule is written once, here or in an explainer plugin, against `RuleOps` (a handful of
elementwise operations on the framework's own tensors) and a `LayerCall` (what one call
of a layer saw: its input, its output, the gradient arriving at its output, and its own
backward). A backend that has the `backward_rules` capability
(`ModelAdapter.rule_gradients`) finds the layers of each kind, runs the pass, and hands
every call of such a layer to its rule; the rule's answer is the gradient that flows on
to the layer's input. So a method never touches a framework, and the same rule gives the
same numbers on PyTorch, Keras and Paddle (the twins prove it in the tests).

Layer kinds a backend maps its layer classes to (`ModelAdapter.layer_kinds`; any other
layer backpropagates as usual, and a method can say where its rules did not apply):

- ``relu``: ReLU (Guided Backprop and Deconvolution replace only these, as Captum does);
- ``nonlinear``: the other elementwise activations DeepLift rescales (ELU, LeakyReLU,
  Sigmoid, Tanh, Softplus: Captum's set);
- ``softmax``, ``maxpool``, ``avgpool``, ``linear``, ``conv``, ``batchnorm``;
- ``reshape``: layers that only move values (Flatten, Identity, Dropout at inference):
  known, never ruled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import CapabilityError

LAYER_KINDS = frozenset(
    {"relu", "nonlinear", "softmax", "maxpool", "avgpool", "linear", "conv", "batchnorm", "reshape"}
)
#: the kinds whose calls carry `LayerCall.refit`
WEIGHTED_KINDS = frozenset({"linear", "conv", "batchnorm"})


class RuleOps(Protocol):
    """The framework operations a rule may use, on the framework's own tensors."""

    def where(self, condition: Any, a: Any, b: Any) -> Any: ...

    def abs(self, a: Any) -> Any: ...

    def relu(self, a: Any) -> Any: ...

    def maximum(self, a: Any, b: Any) -> Any: ...

    def halves(self, a: Any) -> tuple[Any, Any]:
        """The first and second half of the batch (DeepLift's inputs and references)."""

    def stack(self, first: Any, second: Any) -> Any:
        """[first; second] along the batch."""

    def total(self, a: Any) -> Any:
        """The sum of every value, as a 0-d tensor."""

    def size(self, a: Any) -> int: ...


@dataclass(frozen=True)
class FrameworkOps:
    """`RuleOps` from a framework's own functions: what a backend builds once."""

    where: Callable[[Any, Any, Any], Any]
    abs: Callable[[Any], Any]
    relu: Callable[[Any], Any]
    maximum: Callable[[Any, Any], Any]
    halves: Callable[[Any], tuple[Any, Any]]
    stack: Callable[[Any, Any], Any]
    total: Callable[[Any], Any]
    size: Callable[[Any], int]


#: what `LayerCall.refit` takes: (a parameter, its name "weight" or "bias") -> the value
#: to use instead (a BatchNorm's scale is its "weight", its shift its "bias")
ParamModifier = Callable[[Any, str], Any]


@dataclass
class LayerCall:
    """One call of a layer in the backward pass, as a rule sees it.

    `x` and `y` are the layer's input and output on that call (for a layer called twice,
    each call has its own), `grad_out` the gradient arriving at `y`, and `vjp(v)` the
    layer's own backward applied to any gradient `v` at its output (its plain input
    gradient is `vjp(grad_out)`, also `grad_in`).

    For the weighted kinds (``linear``, ``conv``, ``batchnorm``) a backend also gives
    `refit(x_new, modify) -> (z, vjp_z)`: the layer's affine computation (without a
    built-in activation) on another input with each parameter replaced by
    `modify(param, name)`, and the backward of that computation. It is what the LRP
    rules need (gamma adds the positive weights, z+ splits positive and negative parts,
    flat sets every weight to one); None where the backend or the kind has none."""

    kind: str
    name: str
    x: Any
    y: Any
    grad_out: Any
    vjp: Callable[[Any], Any]
    refit: Callable[[Any, ParamModifier], tuple[Any, Callable[[Any], Any]]] | None = None

    @property
    def grad_in(self) -> Any:
        return self.vjp(self.grad_out)

    def refitted(self, x_new: Any, modify: ParamModifier) -> tuple[Any, Callable[[Any], Any]]:
        """`refit`, or a clear error naming the layer where the backend gives none."""
        if self.refit is None:
            raise CapabilityError(
                f"layer {self.name!r} (kind {self.kind!r}): this backend cannot run it with "
                "modified parameters, which this rule needs (LRP's gamma, alpha-beta, z+ "
                "and flat rules); the epsilon rule needs none."
            )
        return self.refit(x_new, modify)


#: a rule: (the framework's operations, one layer call) -> the gradient at the layer's input
Rule = Callable[[RuleOps, LayerCall], Any]
#: what a method asks of a backend: a rule per layer kind
Rules = Mapping[str, Rule]


def unknown_kinds(rules: Rules) -> list[str]:
    """Kinds in `rules` that no backend maps layers to (a typo in a plugin's rules)."""
    return sorted(set(rules) - LAYER_KINDS)
