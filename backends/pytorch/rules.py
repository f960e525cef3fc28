"""Backward rules on PyTorch modules (the `backward_rules` capability, `xai_core.rules`).

Every module of a ruled kind gets, for the pass, a forward pre-hook that keeps its input
and a forward hook that hands its output on through `_Ruled`, an autograd function whose
backward asks the rule for the input gradient. This is not Captum's mechanism (backward
hooks plus attributes on the module), so that a module called twice (a ResNet block's
`self.relu`) has one saved input per call, and an in-place module (`ReLU(inplace=True)`)
works on a copy while the graph keeps the input it was given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from xai_core.rules import WEIGHTED_KINDS, FrameworkOps, LayerCall, Rule

#: PyTorch classes by the kind rules know them as (`xai_core.rules`); exact types, as in
#: Captum (a subclass may compute something else)
KINDS: dict[type, str] = {
    nn.ReLU: "relu",
    nn.ELU: "nonlinear",
    nn.LeakyReLU: "nonlinear",
    nn.Sigmoid: "nonlinear",
    nn.Tanh: "nonlinear",
    nn.Softplus: "nonlinear",
    nn.Softmax: "softmax",
    nn.MaxPool1d: "maxpool",
    nn.MaxPool2d: "maxpool",
    nn.MaxPool3d: "maxpool",
    nn.AvgPool1d: "avgpool",
    nn.AvgPool2d: "avgpool",
    nn.AvgPool3d: "avgpool",
    nn.AdaptiveAvgPool1d: "avgpool",
    nn.AdaptiveAvgPool2d: "avgpool",
    nn.AdaptiveAvgPool3d: "avgpool",
    nn.Linear: "linear",
    nn.Conv1d: "conv",
    nn.Conv2d: "conv",
    nn.Conv3d: "conv",
    nn.BatchNorm1d: "batchnorm",
    nn.BatchNorm2d: "batchnorm",
    nn.BatchNorm3d: "batchnorm",
    nn.Flatten: "reshape",
    nn.Unflatten: "reshape",
    nn.Identity: "reshape",
    nn.Dropout: "reshape",
    nn.Dropout1d: "reshape",
    nn.Dropout2d: "reshape",
    nn.Dropout3d: "reshape",
}


#: `xai_core.rules.RuleOps` on torch tensors
OPS = FrameworkOps(
    where=torch.where,
    abs=torch.abs,
    relu=torch.relu,
    maximum=torch.maximum,
    halves=lambda a: tuple(a.chunk(2)),
    stack=lambda first, second: torch.cat([first, second]),
    total=torch.sum,
    size=lambda a: a.numel(),
)


class _Ruled(torch.autograd.Function):
    """Passes a layer's output on; its backward is the layer's rule."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor, call: tuple) -> torch.Tensor:
        ctx.save_for_backward(x, y)
        ctx.call = call
        return y.clone()

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, None, None]:
        x, y = ctx.saved_tensors
        module, kind, name, rule = ctx.call
        closed_form = _CLOSED_FORMS.get(type(module)) or _weighted_backward(module, x)
        graph: list[torch.Tensor] = []  # (leaf, output) of the module run again, once

        def vjp(v: torch.Tensor) -> torch.Tensor:
            if closed_form is not None:
                return closed_form(v, y, module)
            with torch.enable_grad():
                if not graph:
                    leaf = x.detach().requires_grad_(True)
                    # the module's own computation, without its hooks; on a copy, which an
                    # in-place module may overwrite
                    graph.extend((leaf, module.forward(leaf.clone())))
                (g,) = torch.autograd.grad(graph[1], graph[0], v, retain_graph=True)
            return g

        refit = _refit_of(module) if kind in WEIGHTED_KINDS else None
        return rule(OPS, LayerCall(kind, name, x, y, grad_out, vjp, refit)), None, None


def _weighted_backward(module: nn.Module, x: torch.Tensor, weight: Any = None) -> Any:
    """(v, y, module) -> v . dy/dx of a Linear, zero-padded Conv or inference BatchNorm
    module with `weight` (default its own), written out as torch computes it, so that a
    rule (LRP's, on every such layer) does not run the layer again; None for others."""
    if not isinstance(
        module, (nn.Linear, nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm)
    ):
        return None
    own = module.weight if weight is None else weight
    w = None if own is None else own.detach()  # None: a BatchNorm with affine=False
    if isinstance(module, nn.Linear):
        return lambda v, y, _: v @ w
    if isinstance(module, nn.modules.conv._ConvNd):
        if module.padding_mode != "zeros" or isinstance(module.padding, str) or module.transposed:
            return None
        grad_input = getattr(torch.nn.grad, f"conv{x.dim() - 2}d_input")
        options = (module.stride, module.padding, module.dilation, module.groups)
        return lambda v, y, _: grad_input(x.shape, w, v, *options)
    if module.running_var is None:
        return None
    scale = 1 / torch.sqrt(module.running_var + module.eps)
    scale = scale if w is None else w * scale
    shape = [1, -1] + [1] * (x.dim() - 2)
    return lambda v, y, _: v * scale.reshape(shape)


def _refit_of(module: nn.Module) -> Any:
    """`LayerCall.refit` for a Linear, Conv or (inference) BatchNorm module: its own
    functional form with the parameters a rule chose and its backward, written out
    where `_weighted_backward` has it, else by autograd (None for a BatchNorm without
    running statistics: it normalises by the batch's)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is None:
        return None

    def refit(x_new: torch.Tensor, modify: Any) -> tuple[torch.Tensor, Any]:
        weight, bias = module.weight, module.bias
        w = None if weight is None else modify(weight.detach(), "weight")
        b = None if bias is None else modify(bias.detach(), "bias")
        backward = _weighted_backward(module, x_new, w)
        if backward is not None:  # the forward without a graph, the backward written out
            z = _affine(module, x_new.detach(), w, b)
            return z, lambda v: backward(v, z, module)
        with torch.enable_grad():
            leaf = x_new.detach().requires_grad_(True)
            z = _affine(module, leaf, w, b)

        def vjp(v: torch.Tensor) -> torch.Tensor:
            (g,) = torch.autograd.grad(z, leaf, v, retain_graph=True)
            return g

        return z.detach(), vjp

    return refit


def _softmax_backward(v: torch.Tensor, y: torch.Tensor, module: nn.Softmax) -> Any:
    dim = module.dim if module.dim is not None else -1
    return y * (v - (v * y).sum(dim=dim, keepdim=True))


def _affine(module: nn.Module, x: torch.Tensor, w: Any, b: Any) -> torch.Tensor:
    """A Linear, Conv or BatchNorm module's computation with parameters `w` and `b`."""
    if isinstance(module, nn.Linear):
        return F.linear(x, w, b)
    if isinstance(module, nn.modules.conv._ConvNd):
        return module._conv_forward(x, w, b)
    # BatchNorm at inference (the adapter explains in eval mode)
    return F.batch_norm(x, module.running_mean, module.running_var, w, b, False, 0.0, module.eps)


#: layers whose own backward is written out (as torch computes it), so that a rule does
#: not run the layer again: measured ~30% of Guided Backprop on a ResNet-18
_CLOSED_FORMS: dict[type, Any] = {
    nn.ReLU: lambda v, y, _: v * (y > 0),  # torch's threshold_backward on the output
    nn.Sigmoid: lambda v, y, _: v * y * (1 - y),
    nn.Tanh: lambda v, y, _: v * (1 - y * y),
    nn.Softmax: _softmax_backward,
}


@contextlib.contextmanager
def rules_applied(modules: Mapping[str, nn.Module], rules: Mapping[str, Rule]) -> Iterator[None]:
    """Every module of a kind in `rules` backpropagates by its rule inside the block;
    the hooks are removed afterwards, whatever happens."""
    handles = []
    try:
        for name, module in modules.items():
            kind = KINDS.get(type(module))
            rule = rules.get(kind) if kind is not None else None
            if rule is None or not name:
                continue
            inputs: list[torch.Tensor] = []  # one per call not yet finished (reuse, recursion)
            handles.append(module.register_forward_pre_hook(_keep_input(inputs)))
            handles.append(module.register_forward_hook(_ruled_output(inputs, kind, name, rule)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _keep_input(inputs: list[torch.Tensor]) -> Any:
    def hook(module: nn.Module, args: tuple) -> Any:
        x = args[0]
        inputs.append(x)
        if getattr(module, "inplace", False) is True:  # it may overwrite x: give it a copy
            return (x.clone(), *args[1:])
        return None

    return hook


def _ruled_output(inputs: list[torch.Tensor], kind: str, name: str, rule: Rule) -> Any:
    def hook(module: nn.Module, args: tuple, output: Any) -> Any:
        x = inputs.pop()
        if not isinstance(output, torch.Tensor) or not torch.is_grad_enabled():
            return None
        return _Ruled.apply(x, output.detach(), (module, kind, name, rule))

    return hook


def kind_of(module: nn.Module) -> str | None:
    return KINDS.get(type(module))
