"""Entry point of the NumPy-function backend: `FunctionModel(fn, framework="numpy")`."""

from __future__ import annotations

from typing import Any

from xai_core import hookimpl
from xai_core.function_model import FunctionModel


@hookimpl
def xai_adapt(model: Any) -> Any:
    if not isinstance(model, FunctionModel) or model.framework != "numpy":
        return None
    from .adapter import NumpyFunctionAdapter

    return NumpyFunctionAdapter(model)
