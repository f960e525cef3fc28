"""`ModelAdapter` for `paddle.nn.Layer`.

Eval mode during an explanation and each sublayer's own mode restored after;
`register_forward_post_hook` handles removed in `finally`; gradients with
`paddle.grad` with respect to the inputs only (no parameter gets a `.grad`);
`stop_gradient` flags are never touched.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import paddle

from xai_core import LayerInfo, ModelAdapter
from xai_core.backend_utils import call_leaving_input, eval_mode, forward_hooks, one_hot
from xai_core.errors import InputError


class PaddleAdapter(ModelAdapter):
    backend = "paddle"

    def __init__(self, model: paddle.nn.Layer) -> None:
        super().__init__(model)
        first = next(model.named_parameters(), None)  # not parameters(): it lists them all
        self.dtype = first[1].dtype if first is not None else paddle.float32

    def session(self) -> contextlib.AbstractContextManager[None]:
        return eval_mode(self.model, self.model.sublayers(include_self=True))

    def to_numpy(self, inputs: Any) -> np.ndarray:
        if isinstance(inputs, paddle.Tensor):
            return inputs.detach().numpy()
        return np.asarray(inputs)

    def to_framework(self, inputs: np.ndarray) -> paddle.Tensor:
        return self._tensor(inputs)

    def framework_version(self) -> str:
        return paddle.__version__

    # -- computation ----------------------------------------------------------------
    def _tensor(self, inputs: np.ndarray, requires_grad: bool = False) -> paddle.Tensor:
        x = paddle.to_tensor(np.ascontiguousarray(inputs))  # with dtype= it is ~30 us slower
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        x.stop_gradient = not requires_grad
        return x

    def _call(self, x: paddle.Tensor) -> paddle.Tensor:
        out = call_leaving_input(
            self.model,
            x,
            lambda t: t.inplace_version,  # bumped by every in-place write
            lambda exc: not x.stop_gradient and "inplace" in str(exc),  # paddle refusing one
        )
        if not isinstance(out, paddle.Tensor):
            raise InputError(
                f"the model returned a {type(out).__name__}, not a tensor; wrap it so that "
                "forward returns one (batch, n_outputs) tensor."
            )
        return out.reshape([-1, 1]) if out.ndim == 1 else out

    @staticmethod
    def _seed(out: paddle.Tensor, target: np.ndarray) -> paddle.Tensor:
        """The output gradient that makes `grad` return d out[i, target[i]] / d ..."""
        seed = paddle.to_tensor(one_hot(tuple(out.shape), target))
        return seed if seed.dtype == out.dtype else seed.astype(out.dtype)

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            return self._call(self._tensor(inputs)).numpy()

    def gradients(self, inputs: np.ndarray, target: np.ndarray) -> np.ndarray:
        x = self._tensor(inputs, requires_grad=True)
        out = self._call(x)
        (grad,) = paddle.grad(out, x, grad_outputs=self._seed(out, target))
        return grad.numpy()

    # -- layers ------------------------------------------------------------------
    def _sublayers(self) -> dict[str, paddle.nn.Layer]:
        return dict(self.model.named_sublayers())

    def layers(self) -> list[LayerInfo]:
        return [
            LayerInfo(
                name,
                type(layer).__name__,
                sum(int(p.size) for p in layer.parameters()),
                (None, int(layer.weight.shape[1])) if isinstance(layer, paddle.nn.Linear) else None,
            )
            for name, layer in self._sublayers().items()
            if not layer.sublayers()
        ]

    def check_layers(self, names: Sequence[str]) -> None:
        known = self._sublayers()
        if any(n not in known for n in names):
            super().check_layers([n for n in names if n not in known])

    @contextlib.contextmanager
    def _hooked(self, names: Sequence[str]) -> Iterator[dict[str, paddle.Tensor]]:
        self.check_layers(names)
        with forward_hooks(
            self._sublayers(), names, lambda layer, hook: layer.register_forward_post_hook(hook)
        ) as store:
            yield store

    def capture(self, inputs: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        return self.forward_and_capture(inputs, layers)[1]

    def forward_and_capture(
        self, inputs: np.ndarray, layers: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        with self._hooked(layers) as store, paddle.no_grad():
            out = self._call(self._tensor(inputs))
            return out.numpy(), {name: store[name].numpy() for name in layers}

    def layer_gradients(
        self, inputs: np.ndarray, target: np.ndarray, layer: str
    ) -> tuple[np.ndarray, np.ndarray]:
        with self._hooked([layer]) as store:
            out = self._call(self._tensor(inputs, requires_grad=True))
            activation = store[layer]
            (grad,) = paddle.grad(out, activation, grad_outputs=self._seed(out, target))
            return activation.numpy(), grad.numpy()
