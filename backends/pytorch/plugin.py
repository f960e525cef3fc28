"""Entry point of the PyTorch backend. Importing this module never imports torch."""

from __future__ import annotations

import importlib
import sys
from typing import Any

from xai_core import hookimpl
from xai_core.backend_utils import class_from, module_roots
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
    adapter_module = sys.modules.get(_ADAPTER) or importlib.import_module(_ADAPTER)
    return adapter_module.TorchAdapter(model)


#: imported on the first torch model (the statement `from .adapter import ...` costs an
#: import-machinery call on every explanation; a dict lookup does not)
_ADAPTER = f"{__package__}.adapter"
