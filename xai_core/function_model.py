"""A plain function as a model (Captum's `forward_func`): `FunctionModel(fn, framework)`.

A function carries no framework of its own, and guessing one from what it happens to
accept would run it on the wrong kind of array, so the framework is named:

- "numpy": `fn` maps NumPy arrays to a NumPy array (or anything `np.asarray` takes).
  Forward only: occlusion, feature_ablation, rise, kernel_shap, lime.
- "torch", "tensorflow", "paddle": `fn` maps that framework's tensors to a tensor; the
  backend wraps it in a module of its framework, so gradient methods work too (there
  are no layers to capture).

Several inputs and keyword arguments reach `fn` as they would a model's:
`fn(*inputs, **forward_kwargs)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import UnsupportedModelError

FRAMEWORKS = ("numpy", "torch", "tensorflow", "paddle")


class FunctionModel:
    """`fn` with the framework whose arrays it takes (see the module docstring)."""

    def __init__(self, fn: Callable[..., Any], framework: str = "numpy") -> None:
        if not callable(fn):
            raise UnsupportedModelError(f"FunctionModel takes a function, got {type(fn).__name__}.")
        if framework not in FRAMEWORKS:
            raise UnsupportedModelError(
                f"FunctionModel(framework={framework!r}): the framework is one of "
                f"{', '.join(FRAMEWORKS)} — the kind of arrays the function takes."
            )
        self.fn = fn
        self.framework = framework

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        name = getattr(self.fn, "__qualname__", type(self.fn).__name__)
        return f"FunctionModel({name}, framework={self.framework!r})"
