"""Checks on what users pass in, with messages that say how to fix it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import InputError, ModelOutputError, OptionError, TargetError
from .inputs import InputLayout, split_inputs
from .memory import available_memory

#: the largest float32: float64 inputs beyond it are inf in a float32 model
FLOAT32_MAX = float(np.finfo(np.float32).max)


#: up to this many values, finiteness is one `isfinite(...).all()`: a temporary of this
#: size costs less than entering `np.errstate` (measured: 1.4 vs 2.5 us per check)
SMALL = 1 << 14
#: up to this many values, a Python sum of the values (0.25 us for a 1-row MLP's outputs):
#: Python floats neither warn nor overflow silently into a wrong answer (an overflowing
#: sum is inf, and the exact check below settles it)
TINY = 32


def all_finite(arr: np.ndarray) -> bool:
    """Whether a float array holds no NaN or inf. Large arrays: one sum, no temporary
    array (a NaN or inf anywhere makes it non-finite; an overflowing sum is settled
    exactly), so that every call's check stays one pass over the data."""
    if arr.size <= TINY and math.isfinite(sum(arr.ravel().tolist())):
        return True
    if arr.size <= SMALL:
        return bool(np.isfinite(arr).all())
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(arr, axis=None)):
            return True
    return bool(np.isfinite(arr).all())


def check_inputs(inputs: np.ndarray, name: str = "inputs") -> np.ndarray:
    """A non-empty, finite batch of real numbers; integers (token ids) and booleans (on/off
    features, Captum's bool inputs) stay as they are.

    Runs on every call, so it is kept to one array pass: dtype kinds instead of
    `issubdtype`, and `all_finite`. Not `np.dot`: it wakes BLAS threads that then spin
    against the framework's own on small machines (measured: +7% on a PyTorch
    activation capture on 2 cores).
    """
    kind = inputs.dtype.kind
    if kind not in "iufb":
        raise InputError(
            f"{name} must be real numbers (float, int or bool), got dtype {inputs.dtype}. Pass a "
            "NumPy array or the framework's tensor, batch first."
        )
    if inputs.ndim < 2:
        raise InputError(
            f"{name} must be batch first with at least 2 dimensions, got shape {inputs.shape}. "
            "For a single sample add a batch axis: x[None]."
        )
    if inputs.shape[0] == 0:
        raise InputError(f"{name} hold an empty batch (0 samples): pass at least one sample.")
    if inputs.size == 0:
        raise InputError(
            f"{name} of shape {inputs.shape} hold no features (an axis of length 0): each "
            "sample needs at least one value to explain."
        )
    needed = inputs.size * inputs.dtype.itemsize  # what the model's tensor will take
    free = available_memory() if needed > 1 << 30 else None
    if free is not None and needed > free:
        raise InputError(
            f"{name} of shape {inputs.shape} take {needed / 2**30:.1f} GiB as a tensor, more "
            f"than the {free / 2**30:.1f} GiB free (a broadcast or zero-stride view is "
            "materialised when the model reads it). Pass fewer or smaller samples."
        )
    if kind != "f" or all_finite(inputs):  # integers are finite
        return inputs
    bad = ~np.isfinite(inputs)  # the sum overflowed, or some values are bad: find them
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])[:5].tolist()
        raise InputError(
            f"{name} contain NaN or inf ({int(bad.sum())} values, in samples {rows}"
            f"{'...' if bad.any(axis=tuple(range(1, inputs.ndim))).sum() > 5 else ''}). "
            "Clean or impute them before explaining."
        )
    return inputs


def check_predictions(predictions: np.ndarray, n: int) -> np.ndarray:
    """Model outputs as (batch, n_outputs)."""
    predictions = np.asarray(predictions)
    if predictions.ndim == 1:
        predictions = predictions.reshape(-1, 1)
    if predictions.ndim != 2 or predictions.shape[0] != n:
        raise InputError(
            f"the model returned outputs of shape {predictions.shape} for {n} samples; "
            "xai_core explains models whose output is (batch, n_outputs) or (batch,)."
        )
    return predictions


def resolve_target(
    target: Any, predictions: np.ndarray, output_shape: tuple[int, ...] | None = None
) -> np.ndarray:
    """One output index per sample (into the flattened outputs), from None, an int, one
    int per sample, or index tuples for outputs with several axes.

    None means the only output of a single-output model, else each sample's
    predicted class (the argmax), as in shap and Captum's tutorials. For outputs
    of shape (C, H, W) or (T, C), `target=(c, i, j)` (one tuple for all samples or
    one per sample) is Captum's convention.
    """
    n, k = predictions.shape
    shape = tuple(output_shape or (k,))
    if len(shape) > 1:
        return _resolve_index_tuples(target, n, shape)
    if type(target) is np.ndarray and target.ndim == 0 and target.dtype.kind in "iu":
        if 0 <= int(target) < k:  # one class for every sample, the common call: no array pass
            chosen = np.empty(n, np.int64)
            chosen.fill(target)
            return chosen
    if target is None:
        if k == 1:
            return np.zeros(n, dtype=np.int64)
        return predictions.argmax(axis=1).astype(np.int64)
    arr = np.asarray(target)
    if arr.dtype.kind not in "iu":  # bool is kind "b"
        if arr.dtype.kind == "f" and np.all(np.mod(arr, 1) == 0):
            if np.abs(arr).max(initial=0) >= k:
                raise TargetError(
                    f"target {arr.reshape(-1)[np.abs(arr.reshape(-1)).argmax()]:g} out of "
                    f"range: the model has {k} output{'s' if k != 1 else ''}, so targets "
                    f"must be in 0..{k - 1}."
                )
            arr = arr.astype(np.int64)
        else:
            raise TargetError(
                f"target must be None, an int or one int per sample, got {target!r:.80}."
            )
    if arr.ndim == 0:
        arr = np.full(n, int(arr), dtype=np.int64)
    arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1 or len(arr) != n:
        raise TargetError(
            f"target has {arr.size} values for {n} samples: give one int for all samples "
            "or exactly one per sample."
        )
    if arr.min() < 0 or arr.max() >= k:
        out_of_range = (arr < 0) | (arr >= k)
        raise TargetError(
            f"target {arr[out_of_range][:5].tolist()} out of range: the model has {k} "
            f"output{'s' if k != 1 else ''}, so targets must be in 0..{k - 1}."
        )
    return arr.astype(np.int64)


def _resolve_index_tuples(target: Any, n: int, shape: tuple[int, ...]) -> np.ndarray:
    example = f"target={tuple(0 for _ in shape)}"
    if target is None:
        raise TargetError(
            f"each sample's output has shape {shape}: say which element to explain, e.g. "
            f"{example} (Captum's convention), one tuple per sample, or reduce the output "
            "with output=<function> (e.g. the sum of a class over a pixel mask)."
        )
    arr = np.asarray(target)
    if arr.dtype.kind not in "iu" or arr.shape not in ((len(shape),), (n, len(shape))):
        raise TargetError(
            f"each sample's output has shape {shape}, so target is a tuple of {len(shape)} "
            f"ints ({example}) or one such tuple per sample; got {target!r:.80}."
        )
    arr = np.broadcast_to(arr, (n, len(shape)))
    if (arr < 0).any() or (arr >= np.array(shape)).any():
        raise TargetError(f"target {arr.tolist()[:3]} is outside the output's shape {shape}.")
    return np.ravel_multi_index(tuple(arr.T), shape).astype(np.int64)


def check_background(
    background: Any, inputs: np.ndarray, method: str, dtype: Any = None
) -> np.ndarray:
    """Reference rows (background data) with the inputs' per-sample shape; one sample, or
    one scalar for every feature, is accepted too. Shared by every method that compares
    against reference data."""
    if background is None:
        raise OptionError(
            f"{method} needs background=<reference samples>, e.g. 100 training rows, with the "
            "same per-sample shape as the inputs."
        )
    try:
        bg = np.asarray(background, dtype=dtype or inputs.dtype)
    except (ValueError, TypeError):
        raise OptionError(
            f"background must be an array of reference samples, got {background!r:.60}."
        ) from None
    if bg.ndim == 0:  # one value for every feature: one reference row (Captum's baseline 0)
        bg = np.full((1, *inputs.shape[1:]), bg, dtype=bg.dtype)
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


def outputs_changed(call: str, row: tuple[int, ...], first: tuple[int, ...]) -> ModelOutputError:
    """The error for a model whose outputs per sample differ from its first call's."""
    return ModelOutputError(
        f"{call} returned outputs of shape {row} per sample, but {first} on its first "
        "call: a model must return the same outputs on every call. Is it stateful "
        "(a counter, a cache, a train-mode layer that changes shape)?"
    )


def check_returned(
    call: Any,
    value: Any,
    rows: int,
    shape: tuple[int, ...] | None = None,
    inputs: np.ndarray | None = None,
    of_rows: slice | None = None,
    finite: bool = True,
) -> np.ndarray:
    """What a backend returned for one call of `rows` rows: real numbers, one row per
    input row (and `shape` when given), finite (unless `finite=False`: checked later).
    Every model call goes through here, so a model returning NaN, or the wrong batch size
    on its third call, is an error naming the call instead of NaN attributions or an
    IndexError deep in an explainer. `call` is what the message names (formatted only then);
    `inputs[of_rows]` are the call's inputs, where given (read only for the message)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise ModelOutputError(f"{call} returned {arr.dtype} values, not numbers.")
    if arr.ndim == 0 or len(arr) != rows:
        got = "a scalar" if arr.ndim == 0 else f"{len(arr)} rows (shape {arr.shape})"
        raise ModelOutputError(
            f"{call} returned {got} for {rows} input rows; a model must return one output "
            "row per input row, batch first, on every call"
            + (
                " (a function returning one value for the whole batch, Captum's aggregation "
                "mode, is explained by feature_ablation, occlusion and kernel_shap; metrics "
                "that run the model need one output per sample)."
                if arr.size == 1 and rows > 1
                else "."
            )
        )
    if shape is not None and arr.shape != shape:
        raise ModelOutputError(f"{call} returned shape {arr.shape}, expected {shape}.")
    if arr.dtype.kind != "f" or not finite or all_finite(arr):
        return arr
    bad = ~np.isfinite(arr)
    if not bad.any():
        return arr
    where = np.unique(np.nonzero(bad)[0])[:5].tolist()
    hint = ""
    if inputs is not None and of_rows is not None:
        inputs = inputs[of_rows]
    if inputs is not None and inputs.dtype.kind == "f" and inputs.size:
        with np.errstate(invalid="ignore"):
            largest = float(np.nanmax(np.abs(inputs)))
        if largest > FLOAT32_MAX:
            hint = (
                f" The inputs reach {largest:.3g}, beyond float32's range ({FLOAT32_MAX:.3g}):"
                " a float32 model sees inf there. Scale the inputs."
            )
    hint = hint or " Check the model on these inputs (a log of 0, a division by 0, an overflow)."
    raise ModelOutputError(
        f"{call} returned NaN or inf ({int(bad.sum())} values, in rows {where} of that call).{hint}"
    )


def broadcast_baselines(baselines: Any, inputs: np.ndarray) -> np.ndarray:
    """Baselines as an array of the inputs' shape: scalar, one sample, or one per sample."""
    try:
        b = np.asarray(baselines, dtype=inputs.dtype)
    except (ValueError, TypeError):
        raise OptionError(
            f"baselines must be numbers: a scalar (e.g. 0.0), one sample or one per sample, "
            f"got {baselines!r:.60}."
        ) from None
    try:
        if np.broadcast_shapes(b.shape, inputs.shape) != inputs.shape:
            raise ValueError
    except ValueError:
        raise OptionError(
            f"baselines of shape {b.shape} do not broadcast to the inputs' shape {inputs.shape}: "
            "give a scalar, one sample (shape[1:] or 1 x shape[1:]) or one per sample."
        ) from None
    if not np.isfinite(b).all():
        raise OptionError("baselines contain NaN or inf.")
    return np.array(np.broadcast_to(b, inputs.shape))  # writable: frameworks warn on views


def checked_inputs(inputs: Any, to_numpy: Any) -> tuple[InputLayout, list[np.ndarray]]:
    """`split_inputs`, then `check_inputs` on every part: what `explain` and `evaluate`
    both accept as inputs."""
    layout, arrays = split_inputs(inputs, to_numpy)
    if layout.packed:
        arrays = [
            check_inputs(a.reshape(len(a), -1) if a.ndim == 1 else a, f"input {k!r}").reshape(
                a.shape
            )
            for k, a in zip(layout.keys, arrays)
        ]
    else:
        arrays = [check_inputs(arrays[0])]
    return layout, arrays
