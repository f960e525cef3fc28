"""Entry point of the NumPy-function backend: `FunctionModel(fn, framework="numpy")`, and
a plain Python function, taken as a function of NumPy arrays (as shap and LIME take one;
a function of another framework's tensors names it with `FunctionModel`)."""

from __future__ import annotations

import functools
import types
from typing import Any

from xai_core import hookimpl
from xai_core.function_model import FunctionModel


@hookimpl
def xai_adapt(model: Any) -> Any:
    plain = isinstance(model, PLAIN_FUNCTIONS)
    if not plain and (not isinstance(model, FunctionModel) or model.framework != "numpy"):
        return None
    from .adapter import NumpyFunctionAdapter

    return NumpyFunctionAdapter(FunctionModel(model, "numpy") if plain else model)


#: what counts as a plain function (never a framework's module: those are callable too)
PLAIN_FUNCTIONS = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    functools.partial,
)
