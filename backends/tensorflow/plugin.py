"""Entry point of the TensorFlow/Keras backend. Importing this module never imports TF."""

from __future__ import annotations

import sys
from typing import Any

from xai_core import hookimpl
from xai_core.backend_utils import class_from, loaded_module
from xai_core.errors import UnsupportedModelError
from xai_core.function_model import FunctionModel


# tryfirst: a Keras 3 model on the torch backend is also an nn.Module; Keras owns it.
@hookimpl(tryfirst=True)
def xai_adapt(model: Any) -> Any:
    if isinstance(model, FunctionModel):
        if model.framework != "tensorflow":
            return None
        from .adapter import KerasAdapter, function_model

        return KerasAdapter(function_model(model.fn))
    if not class_from(model, "keras", "Model"):
        return None
    keras = sys.modules["keras"]
    if keras.config.backend() != "tensorflow":
        raise UnsupportedModelError(
            f"this Keras model runs on Keras's {keras.config.backend()!r} backend; xai_core "
            "explains Keras models on TensorFlow. Set KERAS_BACKEND=tensorflow before "
            "importing keras (or explain the underlying framework's model directly)."
        )
    return loaded_module(f"{__package__}.adapter").KerasAdapter(model)
