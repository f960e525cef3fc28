"""Occlusion and feature ablation (Zeiler & Fergus, 2014): what the output loses when a
part of the input is replaced by a baseline. Forward passes only: any backend.

Same numbers as Captum's `Occlusion` and `FeatureAblation`: a feature (a window
position, or a group of the feature mask) is replaced by the baseline in every
sample; its attribution is f(x)[target] - f(x with the feature replaced)[target],
given to each element of the feature; occlusion averages over the windows that
cover an element. Unlike Captum's default (one perturbed copy per model call),
the copies of many features go to the model together, in the core's chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.errors import OptionError
from xai_core.outputs import at_target
from xai_core.validation import broadcast_baselines


def ablate(
    model: BatchedModel,
    inputs: np.ndarray,
    target: np.ndarray,
    baselines: np.ndarray,
    n_features: int,
    masks: Callable[[int, int], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """(sum over features of drop * mask, number of features covering each element).

    `masks(start, stop)` gives features start..stop-1 as boolean masks of one sample's
    shape, (stop - start, *inputs.shape[1:])."""
    initial = at_target(model.forward(inputs)[None], target)[0]
    total = np.zeros(inputs.shape, np.float64)
    counts = np.zeros(inputs.shape[1:], np.float64)
    current: dict[str, np.ndarray] = {}

    def perturbed(start: int, stop: int) -> np.ndarray:
        current["masks"] = masks(start, stop)
        return np.where(current["masks"][:, None], baselines[None], inputs[None])

    for _, _, outputs in model.forward_groups(n_features, perturbed, like=inputs):
        drops = initial[None] - at_target(outputs, target)  # (k, n)
        group = current["masks"].astype(np.float64)
        total += np.einsum("kn,k...->n...", drops, group)
        counts += group.sum(axis=0)
    return total, counts


def check_shape_option(name: str, value: Any, sample_shape: tuple[int, ...]) -> tuple[int, ...]:
    """A window or stride: one positive int per sample dimension (an int means all)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value),) * len(sample_shape)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != len(sample_shape)
        or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in value
        )
    ):
        raise OptionError(
            f"{name} must give one positive int per dimension of a sample {sample_shape} "
            f"(in the input's layout, channels included), got {value!r:.60}."
        )
    return tuple(int(v) for v in value)


class Occlusion(Explainer):
    name = "occlusion"
    defaults = {"window": None, "strides": 1, "baselines": 0.0}

    def validate(self) -> None:
        if self.options["window"] is None:
            raise OptionError(
                "occlusion needs window=<shape of the occluding patch per sample>, in the "
                "input's layout: e.g. (1, 3, 3) for (C, H, W) images, (3, 3, 1) for Keras."
            )

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        sample = inputs.shape[1:]
        window = check_shape_option("window", self.options["window"], sample)
        strides = check_shape_option("strides", self.options["strides"], sample)
        if any(w > d for w, d in zip(window, sample)):
            raise OptionError(f"window {window} is larger than a sample {sample}.")
        if any(s > w and w < d for s, w, d in zip(strides, window, sample)):
            raise OptionError(
                f"strides {strides} are larger than the window {window}: some elements would "
                "never be occluded. Use strides no larger than the window."
            )
        counts = [int(np.ceil((d - w) / s)) + 1 for d, w, s in zip(sample, window, strides)]
        starts = [np.arange(c) * s for c, s in zip(counts, strides)]
        positions = np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, len(sample))

        def masks(start: int, stop: int) -> np.ndarray:
            out = np.zeros((stop - start, *sample), dtype=bool)
            for k, corner in enumerate(positions[start:stop]):
                out[(k, *(slice(c, c + w) for c, w in zip(corner, window)))] = True
            return out

        baselines = broadcast_baselines(self.options["baselines"], inputs)
        total, covered = ablate(model, inputs, target, baselines, len(positions), masks)
        return Attribution(
            attributions=(total / covered).astype(np.float64),
            options={"window": list(window), "strides": list(strides)},
        )


class FeatureAblation(Explainer):
    name = "feature_ablation"
    defaults = {"feature_mask": None, "baselines": 0.0}

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        sample = inputs.shape[1:]
        ids, groups = feature_groups(self.options["feature_mask"], sample)

        def masks(start: int, stop: int) -> np.ndarray:
            return ids[None] == groups[start:stop].reshape(-1, *([1] * len(sample)))

        baselines = broadcast_baselines(self.options["baselines"], inputs)
        total, _ = ablate(model, inputs, target, baselines, len(groups), masks)
        return Attribution(attributions=total)


def feature_groups(mask: Any, sample: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(feature id of every element of a sample, the distinct ids): from `feature_mask`
    (integer ids broadcastable to one sample) or, by default, every element alone."""
    if mask is None:
        ids = np.arange(int(np.prod(sample))).reshape(sample)
        return ids, ids.reshape(-1)
    try:
        ids = np.asarray(mask)
        if ids.dtype.kind not in "iu":
            raise TypeError
        if ids.ndim == len(sample) + 1 and len(ids) == 1:
            ids = ids[0]
        ids = np.broadcast_to(ids, sample)
    except (TypeError, ValueError):
        raise OptionError(
            f"feature_mask must be integer group ids broadcastable to one sample {sample}, "
            f"got {np.shape(mask)} {getattr(np.asarray(mask), 'dtype', '')}."
        ) from None
    return ids, np.unique(ids)


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [Occlusion, FeatureAblation]
