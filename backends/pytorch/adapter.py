"""`ModelAdapter` for `torch.nn.Module`.

During an explanation the model is in eval mode; afterwards its own mode is
back, every hook we added is gone (removed in `finally`), no parameter has a
`.grad`, and `requires_grad` flags are untouched: gradients are taken with
`torch.autograd.grad` with respect to the inputs only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from xai_core import LayerInfo, ModelAdapter
from xai_core.backend_utils import call_leaving_input, eval_mode, forward_hooks, one_hot
from xai_core.errors import InputError


class TorchAdapter(ModelAdapter):
    backend = "torch"

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__(model)
        ref = next(model.parameters(), None)
        if ref is None:
            ref = next(model.buffers(), None)
        self.device = ref.device if ref is not None else torch.device("cpu")
        self.dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
        self._named: dict[str, torch.nn.Module] | None = None

    # -- lifecycle -----------------------------------------------------------
    def session(self) -> contextlib.AbstractContextManager[None]:
        return eval_mode(self.model, self._modules().values())

    def to_numpy(self, inputs: Any) -> np.ndarray:
        if isinstance(inputs, torch.Tensor):
            return inputs.detach().cpu().numpy()
        return np.asarray(inputs)

    def to_framework(self, inputs: np.ndarray) -> torch.Tensor:
        return self._tensor(inputs)

    def framework_version(self) -> str:
        return torch.__version__

    # -- computation -----------------------------------------------------------
    def _tensor(self, inputs: np.ndarray, requires_grad: bool = False) -> torch.Tensor:
        flags = inputs.flags
        if not (flags.c_contiguous and flags.writeable and inputs.dtype.isnative):
            # torch warns on read-only buffers and rejects non-native byte order
            inputs = np.ascontiguousarray(inputs, dtype=inputs.dtype.newbyteorder("="))
            inputs = inputs if inputs.flags.writeable else inputs.copy()
        x = torch.from_numpy(inputs)  # shares memory: no copy on the CPU
        if x.dtype != self.dtype or x.device != self.device:
            x = x.to(device=self.device, dtype=self.dtype)
        return x.requires_grad_(True) if requires_grad else x

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        out = call_leaving_input(
            self.model,
            x,
            lambda t: t._version,  # bumped by every in-place write
            lambda exc: x.requires_grad and "in-place" in str(exc),  # autograd refusing one
        )
        if not isinstance(out, torch.Tensor):
            raise InputError(
                f"the model returned a {type(out).__name__}, not a tensor; wrap it so that "
                "forward returns one (batch, n_outputs) tensor."
            )
        return out.reshape(len(out), -1) if out.ndim == 1 else out

    @staticmethod
    def _seed(out: torch.Tensor, target: np.ndarray) -> torch.Tensor:
        """The output gradient that makes `grad` return d out[i, target[i]] / d ..."""
        seed = torch.from_numpy(one_hot(tuple(out.shape), target))
        return seed if seed.dtype == out.dtype and seed.device == out.device else seed.to(out)

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._call(self._tensor(inputs)).cpu().numpy()

    def gradients(self, inputs: np.ndarray, target: np.ndarray) -> np.ndarray:
        x = self._tensor(inputs, requires_grad=True)
        with torch.enable_grad():
            out = self._call(x)
            (grad,) = torch.autograd.grad(out, x, grad_outputs=self._seed(out, target))
        return grad.cpu().numpy()

    # -- layers ------------------------------------------------------------------
    def _leaves(self) -> dict[str, torch.nn.Module]:
        return {
            name: module
            for name, module in self._modules().items()
            if name and next(module.children(), None) is None
        }

    def _modules(self) -> dict[str, torch.nn.Module]:
        """Every module by name ("" is the model itself); walked once per adapter."""
        if self._named is None:
            self._named = dict(self.model.named_modules())
        return self._named

    def layers(self) -> list[LayerInfo]:
        return [
            LayerInfo(
                name,
                type(m).__name__ if not isinstance(m, torch.jit.ScriptModule) else m.original_name,
                sum(p.numel() for p in m.parameters()),
                (None, int(m.out_features)) if hasattr(m, "out_features") else None,
            )
            for name, m in self._leaves().items()
        ]

    def check_layers(self, names: Sequence[str]) -> None:
        # any named module may be captured, not only leaves
        known = self._modules()
        if any(not n or n not in known for n in names):
            super().check_layers([n for n in names if not n or n not in known])

    @contextlib.contextmanager
    def _hooked(self, names: Sequence[str], keep_graph: bool) -> Iterator[dict[str, torch.Tensor]]:
        self.check_layers(names)
        if isinstance(self.model, torch.jit.ScriptModule):
            raise self.missing(
                "layer hooks on a TorchScript module", "explain the Python nn.Module instead"
            )

        def keep(name: str, output: Any) -> torch.Tensor:
            if not isinstance(output, torch.Tensor):
                raise InputError(f"layer {name!r} returns a {type(output).__name__}")
            return output if keep_graph else output.detach()

        with forward_hooks(
            self._modules(), names, lambda m, hook: m.register_forward_hook(hook), keep
        ) as store:
            yield store

    def capture(self, inputs: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        return self.forward_and_capture(inputs, layers)[1]

    def forward_and_capture(
        self, inputs: np.ndarray, layers: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        with self._hooked(layers, keep_graph=False) as store, torch.no_grad():
            out = self._call(self._tensor(inputs))
            return out.cpu().numpy(), {name: store[name].cpu().numpy() for name in layers}

    def layer_gradients(
        self, inputs: np.ndarray, target: np.ndarray, layer: str
    ) -> tuple[np.ndarray, np.ndarray]:
        with self._hooked([layer], keep_graph=True) as store, torch.enable_grad():
            out = self._call(self._tensor(inputs, requires_grad=True))
            activation = store[layer]
            (grad,) = torch.autograd.grad(out, activation, grad_outputs=self._seed(out, target))
            return activation.detach().cpu().numpy(), grad.cpu().numpy()
