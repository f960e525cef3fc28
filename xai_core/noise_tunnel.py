"""Captum's NoiseTunnel over any attribution method: `explain(..., noise_tunnel=...)`.

The method explains `nt_samples` noisy copies of each sample, x + N(0, stdevs^2) (absolute
noise, Captum's convention: `smoothgrad`'s own `stdevs` is relative to each sample's
range), and the copies' attributions are aggregated per sample: their mean
(`"smoothgrad"`), mean of squares (`"smoothgrad_sq"`) or variance (`"vargrad"`). The draws
are a documented contract: copy k of the batch is
`x + default_rng(seed).standard_normal((nt_samples, *x.shape), float32)[k] * stdevs`, so
one seed draws the same copies for the three variants and on every framework. The target
of every copy is its sample's (the predicted class of the sample itself when not given).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import OptionError
from .explainer import check_held, check_number, check_positive_int, resolve_seed

VARIANTS = ("smoothgrad", "smoothgrad_sq", "vargrad")
#: the options `explain` takes for the tunnel, with Captum's defaults
OPTIONS = {"noise_tunnel": None, "nt_samples": 5, "stdevs": 1.0, "seed": None}


def settle(options: dict[str, Any], method_defaults: dict[str, Any], method: str) -> dict:
    """The tunnel's options, taken out of `options` (what is left goes to the method)."""
    if "stdevs" in method_defaults or "seed" in method_defaults:
        raise OptionError(
            f"{method!r} draws noise of its own (its options stdevs/seed): give noise_tunnel "
            "to a method that does not, e.g. integrated_gradients, saliency, deeplift."
        )
    settled = {name: options.pop(name, default) for name, default in OPTIONS.items()}
    if settled["noise_tunnel"] not in VARIANTS:
        raise OptionError(
            f"noise_tunnel must be one of {', '.join(VARIANTS)}, got {settled['noise_tunnel']!r}."
        )
    check_positive_int("nt_samples", settled["nt_samples"])
    check_number("stdevs", settled["stdevs"])
    settled["seed"] = resolve_seed(settled["seed"])
    return settled


def noisy_copies(x: np.ndarray, settled: dict[str, Any]) -> np.ndarray:
    """(nt_samples * N, ...) rows: copy k of the whole batch, then copy k + 1."""
    n = settled["nt_samples"]
    check_held("nt_samples", n * x.size, x.itemsize, "noisy copies of the inputs")
    rng = np.random.default_rng(settled["seed"])
    noise = rng.standard_normal((n, *x.shape), dtype=np.float32) * np.float32(settled["stdevs"])
    return (x[None] + noise.astype(x.dtype)).reshape(n * len(x), *x.shape[1:])


def per_copy(value: Any, n_samples: int, copies: int) -> Any:
    """An option that holds one row per sample (baselines), repeated for every copy."""
    if isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == n_samples > 1:
        return np.tile(value, (copies, *([1] * (value.ndim - 1))))
    return value


def aggregate(attributions: np.ndarray, variant: str, copies: int) -> np.ndarray:
    """Per sample: the copies' mean, mean of squares, or variance (Captum's formulas)."""
    a = attributions.reshape(copies, -1, *attributions.shape[1:]).astype(np.float64)
    mean = a.mean(axis=0)
    if variant == "smoothgrad":
        return mean.astype(attributions.dtype)
    squares = (a * a).mean(axis=0)
    kept = squares if variant == "smoothgrad_sq" else squares - mean * mean
    return kept.astype(attributions.dtype)
