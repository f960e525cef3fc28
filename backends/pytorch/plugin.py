"""Entry point of the PyTorch backend. Importing this module never imports torch."""

from __future__ import annotations

import sys
from typing import Any

from xai_core import hookimpl
from xai_core.backend_utils import class_from, loaded_module, module_roots
from xai_core.function_model import FunctionModel


@hookimpl
def xai_adapt(model: Any) -> Any:
    if isinstance(model, FunctionModel):
        if model.framework != "torch":
            return None
        from .adapter import TorchAdapter, function_module

        return TorchAdapter(function_module(model.fn))
    # A Keras 3 model on the torch backend is also an nn.Module; Keras owns it.
    keras_owned = "keras" in sys.modules and "keras" in module_roots(model)
    if keras_owned or not class_from(model, "torch.nn", "Module"):
        return None
    return loaded_module(f"{__package__}.adapter").TorchAdapter(model)
