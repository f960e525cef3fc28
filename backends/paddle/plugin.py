"""Entry point of the PaddlePaddle backend. Importing this module never imports paddle."""

from __future__ import annotations

from typing import Any

from xai_core import hookimpl
from xai_core.backend_utils import class_from


@hookimpl
def xai_adapt(model: Any) -> Any:
    if not class_from(model, "paddle.nn", "Layer"):
        return None
    from .adapter import PaddleAdapter

    return PaddleAdapter(model)
