"""Backward rules on Keras layers (the `backward_rules` capability, `xai_core.rules`).

For the pass, each ruled layer's `call` (or, for a Dense or Conv layer with a built-in
activation, its `activation`) is shadowed by one instance attribute that runs the
original under `tf.custom_gradient`, whose gradient function asks the rule; the attribute
is deleted afterwards, whatever happens (the adapter's capture does the same). A layer
called twice is ruled on each call, each with its own input and output.

Keras users write `Dense(16, activation="relu")` as often as a separate ReLU layer: the
built-in activation is a ruled point of its own, named `<layer>.activation`, so Guided
Backprop and DeepLift see every ReLU the model has, as on PyTorch where it is a module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import keras
import tensorflow as tf

from xai_core.rules import FrameworkOps, LayerCall, Rule

L = keras.layers

#: Keras layer classes by kind (exact types); `ReLU` and `Activation` are decided by
#: their settings (`_activation_kind`)
KINDS: dict[type, str] = {
    L.ELU: "nonlinear",
    L.LeakyReLU: "nonlinear",
    L.Softmax: "softmax",
    L.MaxPooling1D: "maxpool",
    L.MaxPooling2D: "maxpool",
    L.MaxPooling3D: "maxpool",
    L.AveragePooling1D: "avgpool",
    L.AveragePooling2D: "avgpool",
    L.AveragePooling3D: "avgpool",
    L.GlobalAveragePooling1D: "avgpool",
    L.GlobalAveragePooling2D: "avgpool",
    L.GlobalAveragePooling3D: "avgpool",
    L.Dense: "linear",
    L.Conv1D: "conv",
    L.Conv2D: "conv",
    L.Conv3D: "conv",
    L.BatchNormalization: "batchnorm",
    L.Flatten: "reshape",
    L.Reshape: "reshape",
    L.Dropout: "reshape",
    L.Identity: "reshape",
}

_ACTIVATIONS = {
    "relu": "relu",
    "elu": "nonlinear",
    "leaky_relu": "nonlinear",
    "sigmoid": "nonlinear",
    "tanh": "nonlinear",
    "softplus": "nonlinear",
    "softmax": "softmax",
    "linear": "reshape",
}


def _activation_kind(fn: Any) -> str | None:
    return _ACTIVATIONS.get(getattr(fn, "__name__", ""))


def kind_of(layer: Any) -> str | None:
    """The kind of a layer's whole call (a Dense with an activation is "linear"; the
    activation is a ruled point of its own)."""
    cls = type(layer)
    if cls is L.ReLU:  # only the plain ReLU is one (ReLU6 and thresholds are not)
        plain = layer.max_value is None and not layer.negative_slope and not layer.threshold
        return "relu" if plain else None
    if cls is L.Activation:
        return _activation_kind(layer.activation)
    return KINDS.get(cls)


#: `xai_core.rules.RuleOps` on TensorFlow tensors
OPS = FrameworkOps(
    where=tf.where,
    abs=tf.abs,
    relu=tf.nn.relu,
    maximum=tf.maximum,
    halves=lambda a: tuple(tf.split(a, 2, axis=0)),
    stack=lambda first, second: tf.concat([first, second], axis=0),
    total=tf.reduce_sum,
    size=lambda a: int(tf.size(a)),
)


def _ruled(fn: Callable, kind: str, name: str, rule: Rule) -> Callable:
    """`fn(x, ...)` whose gradient with respect to `x` is the rule's."""

    def call(x: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(x, tf.Tensor):  # not a tensor (a list of inputs): as it is
            return fn(x, *args, **kwargs)

        @tf.custom_gradient
        def ruled(x: tf.Tensor) -> Any:
            y = fn(x, *args, **kwargs)

            def gradient(grad_out: tf.Tensor, variables: Any = None) -> Any:
                def vjp(v: tf.Tensor) -> tf.Tensor:
                    with tf.GradientTape(watch_accessed_variables=False) as tape:
                        tape.watch(x)
                        again = fn(x, *args, **kwargs)
                    return tape.gradient(again, x, output_gradients=v)

                try:
                    grad_in = rule(OPS, LayerCall(kind, name, x, y, grad_out, vjp))
                except Exception as exc:  # tracing wraps it: kept to be raised as itself
                    RULE_ERRORS.append(exc)
                    raise
                if variables:  # the rule is the input gradient; weights get none here
                    return grad_in, [None] * len(variables)
                return grad_in

            return y, gradient

        return ruled(x)

    return call


@contextlib.contextmanager
def rules_applied(layers: Mapping[str, Any], rules: Mapping[str, Rule]) -> Iterator[None]:
    """Every layer (and built-in activation) of a kind in `rules` backpropagates by its
    rule inside the block; the shadowing attributes are deleted afterwards."""
    shadowed: list[tuple[Any, str, Any]] = []  # (layer, attribute, its own value or _ABSENT)

    def shadow(layer: Any, attribute: str, value: Any) -> None:
        shadowed.append((layer, attribute, vars(layer).get(attribute, _ABSENT)))
        object.__setattr__(layer, attribute, value)  # past Keras's attribute tracking

    try:
        for name, layer in layers.items():
            kind = kind_of(layer)
            if kind is not None and kind in rules:
                shadow(layer, "call", _ruled(layer.call, kind, name, rules[kind]))
            activation = getattr(layer, "activation", None) if kind in ("linear", "conv") else None
            act_kind = _activation_kind(activation) if activation is not None else None
            if act_kind in rules and act_kind != "reshape":
                ruled = _ruled(activation, act_kind, f"{name}.activation", rules[act_kind])
                shadow(layer, "activation", ruled)
        yield
    finally:
        for layer, attribute, own in reversed(shadowed):
            if own is _ABSENT:
                object.__delattr__(layer, attribute)
            else:
                object.__setattr__(layer, attribute, own)


_ABSENT = object()
#: the error a rule raised while a rule pass was traced (`KerasAdapter.rule_gradients`)
RULE_ERRORS: list[Exception] = []


def activation_kinds(layers: Mapping[str, Any]) -> dict[str, str | None]:
    """The built-in activations of Dense and Conv layers, as ruled points of their own."""
    kinds = {}
    for name, layer in layers.items():
        if kind_of(layer) in ("linear", "conv"):
            activation = getattr(layer, "activation", None)
            kind = _activation_kind(activation) if activation is not None else None
            if kind != "reshape":
                kinds[f"{name}.activation"] = kind
    return kinds
