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

from xai_core.rules import WEIGHTED_KINDS, FrameworkOps, LayerCall, Rule

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


def _ruled(fn: Callable, kind: str, name: str, rule: Rule, refit: Any = None) -> Callable:
    """`fn(x, ...)` whose gradient with respect to `x` is the rule's (`refit`: the
    layer's `LayerCall.refit`, for the weighted kinds)."""

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
                    grad_in = rule(OPS, LayerCall(kind, name, x, y, grad_out, vjp, refit))
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
            affine = _affine_of(layer) if kind in WEIGHTED_KINDS and kind in rules else None
            if affine is not None:  # ruled without its built-in activation (LRP's z)
                shadow(layer, "call", _ruled_affine(layer, affine, kind, name, rules[kind]))
            elif kind is not None and kind in rules:
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


def _ruled_affine(layer: Any, affine: Callable, kind: str, name: str, rule: Rule) -> Callable:
    """A Dense, Conv or BatchNorm layer's call as its affine part under the rule, then its
    built-in activation (itself ruled where its kind is): the rule sees the layer's
    pre-activation output, as a PyTorch rule sees a Linear module's."""

    def own(x: Any) -> Any:
        return affine(x, lambda param, _: param)

    def refit(x_new: Any, modify: Any) -> tuple[Any, Callable]:
        with tf.GradientTape(watch_accessed_variables=False, persistent=True) as tape:
            tape.watch(x_new)
            z = affine(x_new, modify)
        return z, lambda v: tape.gradient(z, x_new, output_gradients=v)

    ruled = _ruled(own, kind, name, rule, refit)

    def call(x: Any, *args: Any, **kwargs: Any) -> Any:
        z = ruled(x)
        activation = getattr(layer, "activation", None) if kind != "batchnorm" else None
        return z if activation is None else activation(z)

    return call


def _affine_of(layer: Any) -> Callable | None:
    """(x, modify) -> the layer's affine computation on x with each parameter p as
    `modify(p, "weight" | "bias")`, written with Keras's own ops as the layer computes it;
    None for a layer computed some other way (a quantised or LoRA Dense, a causal Conv1D):
    it is ruled whole, without `refit`."""
    ops = keras.ops
    if type(layer) is L.Dense:
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            return None

        def dense(x: Any, modify: Any) -> Any:
            z = ops.matmul(x, modify(ops.convert_to_tensor(layer.kernel), "weight"))
            if layer.bias is None:
                return z
            return z + modify(ops.convert_to_tensor(layer.bias), "bias")

        return dense
    if type(layer) in (L.Conv1D, L.Conv2D, L.Conv3D):
        if layer.padding == "causal":
            return None

        def conv(x: Any, modify: Any) -> Any:
            z = layer.convolution_op(x, modify(ops.convert_to_tensor(layer.kernel), "weight"))
            if not layer.use_bias:
                return z
            bias = modify(ops.convert_to_tensor(layer.bias), "bias")
            if layer.data_format == "channels_last":
                shape = (1,) * (layer.rank + 1) + (layer.filters,)
            else:
                shape = (1, layer.filters) + (1,) * layer.rank
            return z + ops.reshape(bias, shape)

        return conv
    if type(layer) is L.BatchNormalization:

        def batchnorm(x: Any, modify: Any) -> Any:
            gamma = layer.gamma if layer.scale else None
            beta = layer.beta if layer.center else None
            return ops.batch_normalization(
                x,
                mean=ops.convert_to_tensor(layer.moving_mean),
                variance=ops.convert_to_tensor(layer.moving_variance),
                axis=layer.axis,
                offset=None if beta is None else modify(ops.convert_to_tensor(beta), "bias"),
                scale=None if gamma is None else modify(ops.convert_to_tensor(gamma), "weight"),
                epsilon=layer.epsilon,
            )

        return batchnorm
    return None


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
