"""What the shap- and lime-based explainers share: background checks, seeding, flattening."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from xai_core import BatchedModel
from xai_core.errors import XaiError
from xai_core.explainer import legacy_seed


def require(module: str, extra: str) -> Any:
    """Import an optional library or say how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise XaiError(f"this method needs {module}: pip install 'xai-core[{extra}]'") from exc


@contextlib.contextmanager
def seeded_global_numpy(seed: int) -> Iterator[None]:
    """shap's Kernel explainer draws from NumPy's global RNG: seed it for the call and
    put the user's global state back afterwards. Its INFO logs (hundreds of lines per
    sample wherever another library configured the root logger, as Paddle does) are
    silenced meanwhile."""
    state = np.random.get_state()
    np.random.seed(legacy_seed(seed))
    shap_logger = logging.getLogger("shap")
    level = shap_logger.level
    if shap_logger.getEffectiveLevel() < logging.WARNING:
        shap_logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        np.random.set_state(state)
        shap_logger.setLevel(level)


@contextlib.contextmanager
def transformers_probe_safe() -> Iterator[None]:
    """shap asks whether the model is a `transformers.TFPreTrainedModel`; with Keras 3 and
    no tf-keras installed, transformers raises on that lookup (its TF classes fail to
    import), so every model, PyTorch ones included, was refused. For the block, a lookup
    that cannot import stands for a class no model is an instance of."""
    import sys

    transformers = sys.modules.get("transformers")
    placed = []
    if transformers is not None:
        for name in ("TFPreTrainedModel",):
            try:
                getattr(transformers, name)
            except Exception:  # noqa: BLE001 - whatever the lazy import raises
                setattr(transformers, name, type(name, (), {}))
                placed.append(name)
    try:
        yield
    finally:
        for name in placed:
            delattr(transformers, name)


def flat_predict(model: BatchedModel, sample_shape: tuple[int, ...], dtype: Any) -> Callable:
    """A predict function on flattened rows, as shap and lime call it; the core chunks it."""

    def predict(rows: np.ndarray) -> np.ndarray:
        x = np.asarray(rows, dtype=dtype).reshape(-1, *sample_shape)
        return model.forward(x).astype(np.float64)

    return predict


def additivity_gap(
    attributions: np.ndarray, base_values: np.ndarray, outputs: np.ndarray
) -> np.ndarray:
    """sum(attributions) + base value - f(x), per sample (0 for exact SHAP values)."""
    return attributions.reshape(len(attributions), -1).sum(axis=1) + base_values - outputs
