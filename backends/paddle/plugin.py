"""Entry point of the PaddlePaddle backend. Importing this module never imports paddle."""

from __future__ import annotations

from typing import Any

from xai_core import hookimpl
from xai_core.backend_utils import class_from, loaded_module
from xai_core.function_model import FunctionModel


@hookimpl
def xai_adapt(model: Any) -> Any:
    if isinstance(model, FunctionModel):
        if model.framework != "paddle":
            return None
        from .adapter import PaddleAdapter, function_layer

        return PaddleAdapter(function_layer(model.fn))
    if not class_from(model, "paddle.nn", "Layer"):
        return None
    return loaded_module(f"{__package__}.adapter").PaddleAdapter(model)
