"""Backward rules on Paddle layers (the `backward_rules` capability, `xai_core.rules`).

The PyTorch backend's mechanism with Paddle's parts: a forward pre-hook keeps each ruled
layer's input, a forward post-hook hands its output on through `_Ruled` (a `PyLayer`)
whose backward asks the rule for the input gradient. One saved input per call, so a
layer called twice is ruled twice.

Paddle cannot run autograd inside a `PyLayer`'s backward (`paddle.grad` there is a
segmentation fault in 3.3), so a layer's own backward (`LayerCall.vjp`) is prepared in
the forward hook instead: an elementwise layer's derivative is taken there, on a copy of
its input; max-pooling routes a gradient by the argmax mask of the same call
(`put_along_axis`: `max_unpool` misplaces padded pools), softmax by its closed form.
Linear layers, convolutions (the transposed convolution) and inference-mode BatchNorm
are written out too; average pooling is not yet, and refuses a rule with a
`CapabilityError` before the pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import paddle
import paddle.nn.functional as F
from paddle import nn
from paddle.autograd import PyLayer

from xai_core.errors import CapabilityError
from xai_core.rules import FrameworkOps, LayerCall, Rule

#: Paddle classes by the kind rules know them as (exact types, as on PyTorch)
KINDS: dict[type, str] = {
    nn.ReLU: "relu",
    nn.ELU: "nonlinear",
    nn.LeakyReLU: "nonlinear",
    nn.Sigmoid: "nonlinear",
    nn.Tanh: "nonlinear",
    nn.Softplus: "nonlinear",
    nn.Softmax: "softmax",
    nn.MaxPool1D: "maxpool",
    nn.MaxPool2D: "maxpool",
    nn.MaxPool3D: "maxpool",
    nn.AvgPool1D: "avgpool",
    nn.AvgPool2D: "avgpool",
    nn.AvgPool3D: "avgpool",
    nn.AdaptiveAvgPool1D: "avgpool",
    nn.AdaptiveAvgPool2D: "avgpool",
    nn.AdaptiveAvgPool3D: "avgpool",
    nn.Linear: "linear",
    nn.Conv1D: "conv",
    nn.Conv2D: "conv",
    nn.Conv3D: "conv",
    nn.BatchNorm: "batchnorm",
    nn.BatchNorm1D: "batchnorm",
    nn.BatchNorm2D: "batchnorm",
    nn.BatchNorm3D: "batchnorm",
    nn.Flatten: "reshape",
    nn.Identity: "reshape",
    nn.Dropout: "reshape",
    nn.Dropout2D: "reshape",
    nn.Dropout3D: "reshape",
}


#: `xai_core.rules.RuleOps` on Paddle tensors
OPS = FrameworkOps(
    where=paddle.where,
    abs=paddle.abs,
    relu=F.relu,
    maximum=paddle.maximum,
    halves=lambda a: tuple(paddle.chunk(a, 2)),
    stack=lambda first, second: paddle.concat([first, second]),
    total=paddle.sum,
    size=lambda a: int(a.size),
)


class _Ruled(PyLayer):
    """Passes a layer's output on; its backward is the layer's rule."""

    @staticmethod
    def forward(ctx: Any, x: paddle.Tensor, y: paddle.Tensor, call: tuple) -> paddle.Tensor:
        ctx.save_for_backward(x, y)
        ctx.call = call
        return y.clone()

    @staticmethod
    def backward(ctx: Any, grad_out: paddle.Tensor) -> paddle.Tensor:
        x, y = ctx.saved_tensor()
        kind, name, rule, vjp, errors = ctx.call
        try:
            return rule(OPS, LayerCall(kind, name, x, y, grad_out, vjp))
        except Exception as exc:  # Paddle re-raises it as an OSError: kept to raise as itself
            errors.append(exc)
            raise


def _backward_of(layer: nn.Layer, kind: str, name: str, x: paddle.Tensor, y: paddle.Tensor) -> Any:
    """The layer's own backward on this call, v -> v . dy/dx, without autograd at the
    time it is asked (see the module's docstring)."""
    closed_form = _CLOSED_FORMS.get(type(layer))
    if closed_form is not None:  # written out: nothing run again
        return lambda v: closed_form(v, y)
    if kind == "conv" and getattr(layer, "_padding_mode", "zeros") != "zeros":
        raise CapabilityError(
            f"layer {name!r} pads with {layer._padding_mode!r}: its backward is not written "
            "out for rules on Paddle (zero padding is)."
        )
    if kind in ("relu", "nonlinear"):  # elementwise: the derivative, taken now
        with paddle.set_grad_enabled(True):
            leaf = x.detach()
            leaf.stop_gradient = False
            out = layer.forward(leaf.clone())
            (slope,) = paddle.grad([out], [leaf], grad_outputs=[paddle.ones_like(out)])
        slope = slope.detach()
        return lambda v: v * slope
    if kind == "softmax":
        axis = getattr(layer, "_axis", -1)
        return lambda v: y * (v - paddle.sum(v * y, axis=axis, keepdim=True))
    if kind == "maxpool":  # each output's gradient to its argmax (summed where they meet)
        pool = getattr(F, f"max_pool{len(x.shape) - 2}d")
        _, mask = pool(
            x.detach(),
            layer.ksize,
            stride=layer.stride,
            padding=layer.padding,
            ceil_mode=layer.ceil_mode,
            return_mask=True,
        )
        n, c = x.shape[:2]
        where = mask.reshape([n, c, -1]).astype("int64")  # flat positions in each plane

        def route(v: paddle.Tensor) -> paddle.Tensor:
            plane = paddle.zeros([n, c, int(x.size) // (n * c)], v.dtype)
            routed = paddle.put_along_axis(plane, where, v.reshape([n, c, -1]), 2, "add")
            return routed.reshape(x.shape)

        return route

    if kind == "linear":  # y = x W + b, W stored (in, out)
        weight = layer.weight.detach()
        return lambda v: paddle.matmul(v, weight, transpose_y=True)
    if kind == "conv":  # the transposed convolution with the same weights
        transpose = getattr(F, f"conv{len(x.shape) - 2}d_transpose")
        weight, size = layer.weight.detach(), list(x.shape[2:])
        options = {
            "stride": layer._stride,
            "padding": layer._updated_padding,
            "dilation": layer._dilation,
            "groups": layer._groups,
            "data_format": layer._data_format,
        }
        return lambda v: transpose(v, weight, output_size=size, **options)
    if kind == "batchnorm":  # at inference, a scale per channel
        scale = layer.weight.detach() / paddle.sqrt(layer._variance.detach() + layer._epsilon)
        axis = 1 if layer._data_format.startswith("NC") else len(x.shape) - 1
        shape = [1] * len(x.shape)
        shape[axis] = -1
        return lambda v: v * scale.reshape(shape)
    raise AssertionError(f"no backward written out for kind {kind!r}")  # refused earlier


#: layers whose own backward is written out, as Paddle computes it (the others of their
#: kind have their derivative taken in the forward hook, one more small pass each)
_CLOSED_FORMS: dict[type, Any] = {
    nn.ReLU: lambda v, y: v * (y > 0).astype(v.dtype),
    nn.Sigmoid: lambda v, y: v * y * (1 - y),
    nn.Tanh: lambda v, y: v * (1 - y * y),
}

#: the kinds whose own backward `_backward_of` writes out (average pooling is not yet;
#: the rules of DeepLift, Guided Backprop and Deconvolution need none of the last three)
RULED_KINDS = frozenset({"relu", "nonlinear", "softmax", "maxpool", "linear", "conv", "batchnorm"})


@contextlib.contextmanager
def rules_applied(layers: Mapping[str, nn.Layer], rules: Mapping[str, Rule]) -> Iterator[None]:
    """Every layer of a kind in `rules` backpropagates by its rule inside the block; the
    hooks are removed afterwards, whatever happens."""
    present = {KINDS.get(type(layer)) for layer in layers.values()}
    refused = sorted((set(rules) & present) - RULED_KINDS - {"reshape"})
    if refused:
        raise CapabilityError(
            f"the paddle backend cannot apply backward rules to layers of kind {refused}: "
            "Paddle cannot run autograd inside a rule, and their backward is not written "
            f"out here (it is for {sorted(RULED_KINDS)}); use PyTorch or Keras for those."
        )
    handles: list[Any] = []
    errors: list[Exception] = []
    try:
        for name, layer in layers.items():
            kind = KINDS.get(type(layer))
            rule = rules.get(kind) if kind is not None else None
            if rule is None:
                continue
            inputs: list[paddle.Tensor] = []
            handles.append(layer.register_forward_pre_hook(_keep_input(inputs)))
            hook = _ruled_output(inputs, kind, name, rule, errors)
            handles.append(layer.register_forward_post_hook(hook))
        try:
            yield
        except OSError:
            if errors:  # a rule's own error, which Paddle wrapped: raised as itself
                raise errors[0] from None
            raise
    finally:
        for handle in handles:
            handle.remove()


def _keep_input(inputs: list[paddle.Tensor]) -> Any:
    def hook(layer: nn.Layer, args: tuple) -> Any:
        inputs.append(args[0])
        return None

    return hook


def _ruled_output(
    inputs: list[paddle.Tensor], kind: str, name: str, rule: Rule, errors: list
) -> Any:
    def hook(layer: nn.Layer, args: tuple, output: Any) -> Any:
        x = inputs.pop()
        if not isinstance(output, paddle.Tensor) or x.stop_gradient:
            return None
        y = output.detach()
        vjp = _backward_of(layer, kind, name, x, y)
        return _Ruled.apply(x, y, (kind, name, rule, vjp, errors))

    return hook


def kind_of(layer: nn.Layer) -> str | None:
    return KINDS.get(type(layer))
