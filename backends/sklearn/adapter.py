"""`ModelAdapter` for a fitted scikit-learn-style estimator: forward only.

What is explained is one of its prediction methods, chosen with `output=`: "predict_proba"
(the default where the estimator has it: one column per class, like shap's and LIME's
examples), "decision_function" (a margin: one column per class, or one for a binary
classifier), or "predict" (regressors; one column). The inputs reach it as the NumPy
array the core holds (batch first, one row per sample)."""

from __future__ import annotations

from typing import Any

import numpy as np

from xai_core import ModelAdapter
from xai_core.adapter import FORWARD_ONLY_METHODS
from xai_core.errors import InputError, ModelOutputError
from xai_core.fingerprint import array_digest
from xai_core.inputs import ModelInputs

METHODS = ("predict_proba", "decision_function", "predict")


class EstimatorAdapter(ModelAdapter):
    backend = "sklearn"

    def framework_version(self) -> str:
        import sklearn

        return f"scikit-learn {sklearn.__version__}"

    def _method(self) -> Any:
        chosen = self.output
        if chosen is None:
            chosen = next(m for m in METHODS if hasattr(self.model, m))
        if chosen not in METHODS:
            raise InputError(
                f"output={chosen!r}: an estimator's output is the name of one of its "
                f"prediction methods, {', '.join(METHODS)}."
            )
        if not hasattr(self.model, chosen):
            have = [m for m in METHODS if hasattr(self.model, m)]
            raise InputError(
                f"{type(self.model).__name__} has no {chosen}(); it has {', '.join(have)}."
            )
        return getattr(self.model, chosen)

    def select_output(self, raw: Any) -> Any:  # (output= picks the method, see _method)
        return raw

    def forward(self, inputs: Any) -> np.ndarray:
        if isinstance(inputs, ModelInputs):
            raise InputError(
                "a scikit-learn estimator takes one array of rows: pass the features as one "
                "(N, features) array, without forward_kwargs."
            )
        rows = np.asarray(inputs)
        flat = rows.reshape(len(rows), -1) if rows.ndim > 2 else rows
        try:
            out = np.asarray(self._method()(flat))
        except Exception as exc:  # noqa: BLE001 - the estimator's own refusal, said plainly
            raise InputError(
                f"{type(self.model).__name__} refused the inputs of shape {rows.shape}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if out.dtype.kind not in "fiub":
            raise ModelOutputError(
                f"{type(self.model).__name__}.{self._method().__name__} returned "
                f"{out.dtype} values (class labels?); explain predict_proba or "
                "decision_function with output=."
            )
        return out.reshape(len(out), -1).astype(np.float64, copy=False)

    def gradients(self, inputs: Any, target: np.ndarray) -> np.ndarray:
        raise self.missing(
            "gradients",
            f"an estimator is explained by {FORWARD_ONLY_METHODS} (and every metric that "
            "runs the model)",
        )

    def fingerprint(self) -> str | None:
        """The fitted state (the arrays among its attributes), for resumable datasets."""
        arrays = [v for _, v in sorted(vars(self.model).items()) if isinstance(v, np.ndarray)]
        return array_digest(arrays) if arrays else None
