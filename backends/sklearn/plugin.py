"""Entry point of the scikit-learn backend. Importing this module never imports sklearn."""

from __future__ import annotations

from typing import Any

from xai_core import hookimpl
from xai_core.backend_utils import module_roots

#: libraries whose estimators follow scikit-learn's API (fit / predict / predict_proba)
ROOTS = frozenset({"sklearn", "xgboost", "lightgbm", "catboost"})


@hookimpl
def xai_adapt(model: Any) -> Any:
    if isinstance(model, type) or not ROOTS & module_roots(model):
        return None
    if not any(hasattr(model, m) for m in ("predict_proba", "decision_function", "predict")):
        return None
    from .adapter import EstimatorAdapter

    return EstimatorAdapter(model)
