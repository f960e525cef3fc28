"""GradientSHAP / expected gradients (Lundberg & Lee, 2017; Erion et al., 2021).

For each sample and each of `n_samples` draws: a reference row b from
`background`, Gaussian noise on the input (absolute `stdevs`, as in Captum's
`GradientShap` and shap's `local_smoothing`), a point a ~ U(0, 1) on the path;
the attribution is the mean of grad f(b + a (x~ - b)) * (x~ - b). On a linear
model it converges to w * (x - mean(background)).

Reproducible by contract: with `rng = numpy.random.default_rng(seed)`, draw s
takes, in this order, `rng.integers(0, len(background), n)` (reference rows),
`rng.standard_normal(x.shape) * stdevs` (noise) and `rng.uniform(0, 1, n)` (a).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.batching import Remembered
from xai_core.errors import OptionError
from xai_core.explainer import check_number, check_positive_int, resolve_seed


def check_background(background: Any, inputs: np.ndarray) -> np.ndarray:
    """Reference rows with the inputs' per-sample shape (one sample is accepted too)."""
    if background is None:
        raise OptionError(
            "gradient_shap needs background=<reference samples>, e.g. a few hundred "
            "training rows, with the same per-sample shape as the inputs."
        )
    bg = np.asarray(background, dtype=inputs.dtype)
    if bg.shape == inputs.shape[1:]:
        bg = bg[None]
    if bg.ndim != inputs.ndim or bg.shape[1:] != inputs.shape[1:] or len(bg) == 0:
        raise OptionError(
            f"background has shape {bg.shape}, but each input sample has shape "
            f"{inputs.shape[1:]}: give (n_reference, {', '.join(map(str, inputs.shape[1:]))})."
        )
    if not np.isfinite(bg).all():
        raise OptionError("background contains NaN or inf.")
    return bg


class Draw:
    """One draw for the whole batch: reference rows, noisy inputs, path point."""

    __slots__ = ("rows", "noisy", "baseline", "point")

    def __init__(self, rows, noisy, baseline, point) -> None:
        self.rows, self.noisy, self.baseline, self.point = rows, noisy, baseline, point


def draws(
    inputs: np.ndarray, background: np.ndarray, n_samples: int, stdevs: float, seed: int
) -> Iterator[Draw]:
    rng = np.random.default_rng(seed)
    n = len(inputs)
    shape = (n,) + (1,) * (inputs.ndim - 1)
    for _ in range(n_samples):
        rows = rng.integers(0, len(background), n)
        noisy = (inputs + rng.standard_normal(inputs.shape) * stdevs).astype(inputs.dtype)
        alpha = rng.uniform(0.0, 1.0, n).reshape(shape)
        baseline = background[rows]
        point = (baseline + alpha * (noisy - baseline)).astype(inputs.dtype)
        yield Draw(rows, noisy, baseline, point)


class GradientShap(Explainer):
    name = "gradient_shap"
    defaults = {"background": None, "n_samples": 50, "stdevs": 0.0, "seed": None}
    requires = ("gradients",)

    def validate(self) -> None:
        check_positive_int("n_samples", self.options["n_samples"])
        check_number("stdevs", self.options["stdevs"])
        if self.options["background"] is None:
            check_background(None, np.zeros((1, 1)))
        if self.options["seed"] is not None:
            resolve_seed(self.options["seed"])

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        background = check_background(self.options["background"], inputs)
        seed = resolve_seed(self.options["seed"])
        n = self.options["n_samples"]
        stream = Remembered(draws(inputs, background, n, self.options["stdevs"], seed))
        points = (draw.point for draw in stream)
        total = np.zeros(inputs.shape, np.float64)
        reference_output = np.zeros(len(inputs), np.float64)
        bg_out = model.forward(background).astype(np.float64)
        for grads in model.gradients_of_blocks(points, target):
            draw = stream.pop()
            total += grads * (draw.noisy - draw.baseline)
            reference_output += bg_out[draw.rows, target]
        attributions = total / n
        f_x = model.forward(inputs)[np.arange(len(inputs)), target].astype(np.float64)
        delta = attributions.reshape(len(inputs), -1).sum(axis=1) - (f_x - reference_output / n)
        return Attribution(
            attributions=attributions.astype(inputs.dtype),
            convergence_delta=delta,
            options={"seed": seed},
        )


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [GradientShap]
