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
Linear layers, convolutions (the transposed convolution), inference-mode BatchNorm and
average pooling are written out too, and so is their computation with the parameters
an LRP rule chooses (`LayerCall.refit`): plain operations, nothing differentiated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F
from paddle import nn
from paddle.autograd import PyLayer

from xai_core.errors import CapabilityError
from xai_core.rules import WEIGHTED_KINDS, FrameworkOps, LayerCall, Rule

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
        kind, name, rule, vjp, refit, errors = ctx.call
        try:
            return rule(OPS, LayerCall(kind, name, x, y, grad_out, vjp, refit))
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

    if kind == "avgpool":
        return _avgpool_backward(layer, name, x)
    if kind in WEIGHTED_KINDS:
        return _weighted_backward(layer, kind, x, layer.weight.detach())
    raise AssertionError(f"no backward written out for kind {kind!r}")  # refused earlier


def _weighted_backward(layer: nn.Layer, kind: str, x: paddle.Tensor, weight: Any) -> Any:
    """v -> v . dy/dx of a Linear, Conv or inference BatchNorm layer whose weight is
    `weight` (its own, or the one a rule chose: `LayerCall.refit`)."""
    if kind == "linear":  # y = x W + b, W stored (in, out)
        return lambda v: paddle.matmul(v, weight, transpose_y=True)
    if kind == "conv":  # the transposed convolution with the same weights
        transpose = getattr(F, f"conv{len(x.shape) - 2}d_transpose")
        size = list(x.shape[2:]) if layer._data_format.startswith("NC") else list(x.shape[1:-1])
        options = {
            "stride": layer._stride,
            "padding": layer._updated_padding,
            "dilation": layer._dilation,
            "groups": layer._groups,
            "data_format": layer._data_format,
        }
        return lambda v: transpose(v, weight, output_size=size, **options)
    # batchnorm at inference: a scale per channel
    scale = weight / paddle.sqrt(layer._variance.detach() + layer._epsilon)
    shape = _channel_shape(layer, x)
    return lambda v: v * scale.reshape(shape)


def _avgpool_backward(layer: nn.Layer, name: str, x: paddle.Tensor) -> Any:
    """Average pooling's backward, written out: an adaptive pool whose output size
    divides its input is a block average (each block's gradient spread over it); a plain
    pool is the transposed depthwise convolution with a kernel of ones over each window's
    divisor (the count of non-padding values where the pool is `exclusive`, Paddle's
    default). Channels-first only, without `ceil_mode`: other pools are refused."""
    n = len(x.shape) - 2
    spatial = [int(d) for d in x.shape[2:]]
    data_format = getattr(layer, "data_format", None) or getattr(layer, "_data_format", "NC")
    refused = CapabilityError(
        f"layer {name!r}: its average pooling ({type(layer).__name__}, {data_format}) has no "
        "written-out backward for rules on Paddle (channels-first pools without ceil_mode "
        "have, and adaptive ones whose output size divides the input)."
    )
    if not str(data_format).startswith("NC"):
        raise refused
    if type(layer).__name__.startswith("Adaptive"):
        size = getattr(layer, "_output_size", getattr(layer, "output_size", None))
        sizes = [size] * n if isinstance(size, int) else list(size)
        out = [s if o is None else int(o) for s, o in zip(spatial, sizes)]
        if any(s % o for s, o in zip(spatial, out)):
            raise refused
        blocks = [s // o for s, o in zip(spatial, out)]
        interleaved = [d for o in out for d in (o, 1)]
        spread = [d for o, b in zip(out, blocks) for d in (o, b)]
        area = float(np.prod(blocks))

        def block_mean(v: paddle.Tensor) -> paddle.Tensor:
            head = list(v.shape[:2])
            tiled = v.reshape(head + interleaved).expand(head + spread)
            return tiled.reshape(head + spatial) / area

        return block_mean
    kernel = getattr(layer, "ksize", None) or layer.kernel_size
    kernel = [kernel] * n if isinstance(kernel, int) else list(kernel)
    stride = layer.stride if layer.stride is not None else kernel
    padding = layer.padding
    if layer.ceil_mode or not isinstance(padding, (int, list, tuple)):
        raise refused
    ones = paddle.ones([1, *x.shape[1:]], x.dtype)
    pool = getattr(F, f"avg_pool{n}d")
    divisor = getattr(layer, "divisor", None)
    if divisor:
        count: Any = float(divisor)
    elif layer.exclusive:
        count = pool(ones, kernel, stride, padding, exclusive=False) * float(np.prod(kernel))
    else:
        count = float(np.prod(kernel))
    channels = int(x.shape[1])
    weight = paddle.ones([channels, 1, *kernel], x.dtype)
    transpose = getattr(F, f"conv{n}d_transpose")
    return lambda v: transpose(
        v / count, weight, stride=stride, padding=padding, groups=channels, output_size=spatial
    )


def _channel_shape(layer: nn.Layer, x: paddle.Tensor) -> list[int]:
    axis = 1 if layer._data_format.startswith("NC") else len(x.shape) - 1
    shape = [1] * len(x.shape)
    shape[axis] = -1
    return shape


def _refit_of(layer: nn.Layer, kind: str) -> Any:
    """`LayerCall.refit` of a Linear, Conv or BatchNorm layer: its functional forward with
    the parameters a rule chose and the written-out backward with that weight, both plain
    operations (nothing differentiated: see the module's docstring). None for a layer
    this cannot write (a legacy `nn.BatchNorm`, padding modes other than zeros)."""
    if kind == "batchnorm" and not isinstance(layer, nn.layer.norm._BatchNormBase):
        return None
    if kind == "conv" and getattr(layer, "_padding_mode", "zeros") != "zeros":
        return None

    def refit(x_new: paddle.Tensor, modify: Any) -> tuple[paddle.Tensor, Any]:
        weight = modify(layer.weight.detach(), "weight")
        bias = None if layer.bias is None else modify(layer.bias.detach(), "bias")
        if kind == "linear":
            z = F.linear(x_new, weight, bias)
        elif kind == "conv":
            conv = getattr(F, f"conv{len(x_new.shape) - 2}d")
            z = conv(
                x_new,
                weight,
                bias,
                stride=layer._stride,
                padding=layer._padding,
                dilation=layer._dilation,
                groups=layer._groups,
                data_format=layer._data_format,
            )
        else:
            z = F.batch_norm(
                x_new,
                layer._mean.detach(),
                layer._variance.detach(),
                weight,
                bias,
                training=False,
                epsilon=layer._epsilon,
                data_format=layer._data_format,
            )
        return z, _weighted_backward(layer, kind, x_new, weight)

    return refit


#: layers whose own backward is written out, as Paddle computes it (the others of their
#: kind have their derivative taken in the forward hook, one more small pass each)
_CLOSED_FORMS: dict[type, Any] = {
    nn.ReLU: lambda v, y: v * (y > 0).astype(v.dtype),
    nn.Sigmoid: lambda v, y: v * y * (1 - y),
    nn.Tanh: lambda v, y: v * (1 - y * y),
}


@contextlib.contextmanager
def rules_applied(layers: Mapping[str, nn.Layer], rules: Mapping[str, Rule]) -> Iterator[None]:
    """Every layer of a kind in `rules` backpropagates by its rule inside the block; the
    hooks are removed afterwards, whatever happens. A layer whose backward cannot be
    written out (`_backward_of`) refuses with a `CapabilityError` naming it."""
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
        refit = _refit_of(layer, kind) if kind in WEIGHTED_KINDS else None
        return _Ruled.apply(x, y, (kind, name, rule, vjp, refit, errors))

    return hook


def kind_of(layer: nn.Layer) -> str | None:
    return KINDS.get(type(layer))
