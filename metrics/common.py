"""Small helpers the built-in metrics share: seeds, correlations, option checks."""

from __future__ import annotations

from typing import Any

import numpy as np

from xai_core.errors import OptionError


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of `a` with the same row of `b` (NaN where a row
    is constant, as scipy)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=1) / denominator, np.nan)


def average_ranks(rows: np.ndarray) -> np.ndarray:
    """Ranks 1..d of each row, ties sharing their average rank (scipy's rankdata)."""
    ranks = np.empty(rows.shape, np.float64)
    for i, row in enumerate(rows):
        _, inverse, counts = np.unique(row, return_inverse=True, return_counts=True)
        starts = np.cumsum(counts) - counts
        ranks[i] = (starts + (counts + 1) / 2.0)[inverse]
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation row by row."""
    return pearson(average_ranks(a), average_ranks(b))


def kendall(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall's tau-b row by row (scipy's `kendalltau`, as Quantus's similarity)."""
    try:
        from scipy.stats import kendalltau  # scipy comes with scikit-learn, shap and lime
    except ImportError:
        raise OptionError(
            "similarity='kendall' needs scipy: pip install scipy (or use 'pearson' or 'spearman')."
        ) from None
    return np.array([kendalltau(x, y)[0] for x, y in zip(a, b)], np.float64)


#: the rank and linear correlations a metric may compare with (Quantus's similarity_func)
CORRELATIONS = {"pearson": pearson, "spearman": spearman, "kendall": kendall}


def check_perturbations(value: Any, inputs: np.ndarray, name: str = "perturbations") -> np.ndarray:
    """User-given perturbations: (n_perturb_samples, samples, *sample shape)."""
    p = np.asarray(value, dtype=inputs.dtype)
    if p.ndim != inputs.ndim + 1 or p.shape[1:] != inputs.shape or len(p) == 0:
        raise OptionError(
            f"{name} must be shaped (n_perturb_samples, {', '.join(map(str, inputs.shape))}): "
            f"one perturbation of every sample per draw, got shape {p.shape}."
        )
    if not np.isfinite(p.sum(dtype=np.float64)) and not np.isfinite(p).all():
        raise OptionError(f"{name} contain NaN or inf.")
    return p


def flat(a: np.ndarray) -> np.ndarray:
    """One row of float64 values per sample."""
    return np.asarray(a, np.float64).reshape(len(a), -1)
