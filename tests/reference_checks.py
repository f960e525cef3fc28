"""Checks that test files comparing with a reference (Captum, zennit, closed forms) share."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def assert_close(actual: Any, expected: Any, rtol: float = 1e-5) -> None:
    """Equal shapes, and the largest difference within `rtol` of the reference's largest
    magnitude (elementwise relative errors blow up at the zeros every ReLU model has)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    err = float(np.abs(actual - expected).max()) / max(float(np.abs(expected).max()), 1e-12)
    assert err <= rtol, f"relative error {err:.2e} > {rtol:.0e}"


def captum_attribute(method: Any, x: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
    """`method.attribute(tensor(x), *args, **kwargs)` as NumPy, Captum's hook warnings
    silenced."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Captum warns that it sets hooks
        return method.attribute(torch.from_numpy(x), *args, **kwargs).detach().numpy()
