"""`ModelAdapter` for a function of NumPy arrays: forward only (no gradients, no layers)."""

from __future__ import annotations

from typing import Any

import numpy as np

from xai_core import ModelAdapter
from xai_core.adapter import FORWARD_ONLY_METHODS
from xai_core.errors import ModelOutputError
from xai_core.inputs import ModelInputs


class NumpyFunctionAdapter(ModelAdapter):
    backend = "numpy"

    def framework_version(self) -> str:
        return f"numpy {np.__version__}"

    def forward(self, inputs: Any) -> np.ndarray:
        fn = self.model.fn
        try:
            if isinstance(inputs, ModelInputs):
                raw = fn(*inputs.args, **inputs.kwargs)
            else:
                raw = fn(inputs)
        except TypeError as exc:  # e.g. a function of torch tensors given NumPy arrays
            raise ModelOutputError(
                f"the function failed on NumPy arrays ({exc}). A plain function is taken as "
                "a function of NumPy arrays; one of a framework's tensors names it: "
                "xai_core.FunctionModel(fn, 'torch' | 'tensorflow' | 'paddle')."
            ) from exc
        try:
            return np.asarray(self.select_output(raw))
        except (TypeError, ValueError) as exc:
            raise ModelOutputError(
                f"the function returned a {type(raw).__name__}, not an array: {exc}. A "
                "FunctionModel(framework='numpy') returns NumPy arrays (batch first)."
            ) from exc

    def gradients(self, inputs: Any, target: np.ndarray) -> np.ndarray:
        raise self.missing(
            "gradients",
            f"a NumPy function is explained by {FORWARD_ONLY_METHODS}; for gradients give a "
            "function of torch, TensorFlow or Paddle tensors with that framework named",
        )
