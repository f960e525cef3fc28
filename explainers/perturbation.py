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
    shape, (stop - start, *inputs.shape[1:]), or per sample, (stop - start, *inputs.shape)
    (Captum's feature masks with one row per sample)."""
    if model.aggregate:
        return _ablate_batch_value(model, inputs, baselines, n_features, masks)
    initial = at_target(model.forward(inputs)[None], target)[0]
    total = np.zeros(inputs.shape, np.float64)
    counts = np.zeros(inputs.shape[1:], np.float64)
    current: dict[str, np.ndarray] = {}

    per_sample = False

    def perturbed(start: int, stop: int) -> np.ndarray:
        nonlocal per_sample
        current["masks"] = masks(start, stop)
        per_sample = current["masks"].ndim == inputs.ndim + 1
        shaped = current["masks"] if per_sample else current["masks"][:, None]
        return np.where(shaped, baselines[None], inputs[None])

    for _, _, outputs in model.forward_groups(n_features, perturbed, like=inputs):
        drops = initial[None] - at_target(outputs, target)  # (k, n)
        group = current["masks"].astype(np.float64)
        if per_sample:
            total += np.einsum("kn,kn...->n...", drops, group)
        else:
            total += np.einsum("kn,k...->n...", drops, group)
            counts += group.sum(axis=0)
    return total, counts


def _ablate_batch_value(
    model: BatchedModel,
    inputs: np.ndarray,
    baselines: np.ndarray,
    n_features: int,
    masks: Callable[[int, int], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """`ablate` for a model returning one value for the whole batch (Captum's aggregation
    mode): feature j is replaced in every sample at once, and its drop is the batch
    value's; every sample's row gets the same attribution (Captum returns that row once)."""
    initial = model.batch_value(inputs)
    total = np.zeros(inputs.shape, np.float64)
    counts = np.zeros(inputs.shape[1:], np.float64)
    for j in range(n_features):
        mask = masks(j, j + 1)[0]
        per_sample = mask.ndim == inputs.ndim
        shaped = mask if per_sample else mask[None]
        drop = initial - model.batch_value(np.where(shaped, baselines, inputs))
        total += drop * shaped.astype(np.float64)
        if not per_sample:
            counts += mask
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
    aggregate_mode = True
    defaults = {"window": None, "strides": 1, "baselines": 0.0}
    per_input_options = {"window": "shape", "strides": "shape"}

    def validate(self) -> None:
        if self.options["window"] is None:
            raise OptionError(
                "occlusion needs window=<shape of the occluding patch per sample>, in the "
                "input's layout: e.g. (1, 3, 3) for (C, H, W) images, (3, 3, 1) for Keras."
            )

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        layout = model.layout
        if layout is not None and layout.packed:  # several inputs: windows per input
            parts = [
                (shape, window, strides)
                for shape, window, strides in zip(
                    layout.shapes, self.options["window"], self.options["strides"]
                )
            ]
        else:
            parts = [(inputs.shape[1:], self.options["window"], self.options["strides"])]
        blocks, settled = [], []
        for shape, window, strides in parts:
            window = check_shape_option("window", window, shape)
            strides = check_shape_option("strides", strides, shape)
            blocks.append(window_masks(shape, window, strides))
            settled.append((list(window), list(strides)))
        masks, n_features = packed_masks(blocks, inputs.shape[1:])
        baselines = broadcast_baselines(self.options["baselines"], inputs)
        total, covered = ablate(model, inputs, target, baselines, n_features, masks)
        windows, strides = [w for w, _ in settled], [s for _, s in settled]
        one = len(settled) == 1
        return Attribution(
            attributions=(total / covered).astype(np.float64),
            options={
                "window": windows[0] if one else windows,
                "strides": strides[0] if one else strides,
            },
        )


def window_masks(
    sample: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...]
) -> tuple[int, Callable[[int, int], np.ndarray]]:
    """(number of window positions, masks(start, stop) of those positions) over one input."""
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

    return len(positions), masks


def packed_masks(
    blocks: list[tuple[int, Callable[[int, int], np.ndarray]]], packed: tuple[int, ...]
) -> tuple[Callable[[int, int], np.ndarray], int]:
    """Every input's windows in turn, as masks of the packed row: a window never crosses
    an input's border (Captum's per-input sliding windows). One input: its own masks."""
    if len(blocks) == 1:
        return blocks[0][1], blocks[0][0]
    sizes = [n for n, _ in blocks]
    first = np.cumsum([0, *sizes])
    widths = [int(np.prod(part(0, 1).shape[1:])) for _, part in blocks]
    offsets = np.cumsum([0, *widths])

    def masks(start: int, stop: int) -> np.ndarray:
        out = np.zeros((stop - start, *packed), dtype=bool)
        for i, (n, part) in enumerate(blocks):
            lo, hi = max(start, first[i]), min(stop, first[i] + n)
            if lo < hi:
                out[lo - start : hi - start, offsets[i] : offsets[i + 1]] = part(
                    lo - first[i], hi - first[i]
                ).reshape(hi - lo, -1)
        return out

    return masks, int(first[-1])


class FeatureAblation(Explainer):
    neuron_option = True
    name = "feature_ablation"
    aggregate_mode = True
    defaults = {"feature_mask": None, "baselines": 0.0}
    per_input_options = {"feature_mask": "mask"}

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        sample = inputs.shape[1:]
        ids, groups = feature_groups(self.options["feature_mask"], sample, len(inputs))

        def masks(start: int, stop: int) -> np.ndarray:  # (k, *ids.shape): per sample or not
            return ids[None] == groups[start:stop].reshape(-1, *([1] * ids.ndim))

        baselines = broadcast_baselines(self.options["baselines"], inputs)
        total, _ = ablate(model, inputs, target, baselines, len(groups), masks)
        return Attribution(attributions=total)


def feature_groups(
    mask: Any, sample: tuple[int, ...], n: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(feature id of every element of a sample, the distinct ids): from `feature_mask`
    (integer ids broadcastable to one sample) or, by default, every element alone. Given
    the batch size `n`, a mask of one row per sample (n, *sample) is kept per sample
    (Captum's convention), the ids then shaped (n, *sample)."""
    if mask is None:
        ids = np.arange(int(np.prod(sample))).reshape(sample)
        return ids, ids.reshape(-1)
    try:
        ids = np.asarray(mask)
        if ids.dtype.kind not in "iu":
            raise TypeError
        if ids.ndim == len(sample) + 1 and len(ids) == 1:
            ids = ids[0]
        if n is not None and n > 1 and ids.ndim == len(sample) + 1 and len(ids) == n:
            return np.broadcast_to(ids, (n, *sample)), np.unique(ids)
        ids = np.broadcast_to(ids, sample)
    except (TypeError, ValueError):
        per_sample = f" or one row per sample ({n}, *{sample})" if n and n > 1 else ""
        raise OptionError(
            f"feature_mask must be integer group ids broadcastable to one sample {sample}"
            f"{per_sample}, got {np.shape(mask)} {getattr(np.asarray(mask), 'dtype', '')}."
        ) from None
    return ids, np.unique(ids)


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [Occlusion, FeatureAblation]
