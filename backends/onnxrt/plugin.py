"""Entry point of the ONNX backend. Importing this module never imports onnx or onnxruntime."""

from __future__ import annotations

from typing import Any

from xai_core import hookimpl
from xai_core.backend_utils import class_from


@hookimpl
def xai_adapt(model: Any) -> Any:
    if not (
        class_from(model, "onnxruntime", "InferenceSession")
        or class_from(model, "onnx", "ModelProto")
    ):
        return None
    from .adapter import OnnxAdapter

    return OnnxAdapter(model)
