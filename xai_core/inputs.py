"""Several inputs, keyword arguments and integer ids, seen by explainers as one array.

A model may take several inputs (`model(*inputs)` or `model(**inputs)`) and extra
keyword arguments that are not attributed (`forward_kwargs`: attention masks,
token types, flags). Explainers should not care: the core packs the attributed
inputs of each sample into one flat row, explainers work on that
(N, n_features) array exactly as on a tabular batch, and `BatchedModel`
unpacks every row before the backend sees it. Attributions come back in the
inputs' own structure. One input without keyword arguments is never packed:
explainers see it in its own shape (images stay images).

Backends receive a `ModelInputs` (positional arrays, keyword values, and which of
them are attributed) instead of an array only when the call needs it; a
backend that takes only arrays still works for every single-input model.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError, OptionError, XaiError

#: one attributed value: a position in `args` or a key in `kwargs`
Slot = int | str


@dataclass(frozen=True)
class ModelInputs:
    """One call's arguments: `model(*args, **kwargs)`; gradients are taken for `attributed`."""

    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    attributed: tuple[Slot, ...] = ()

    def get(self, slot: Slot) -> Any:
        return self.args[slot] if isinstance(slot, int) else self.kwargs[slot]

    def map_arrays(self, fn: Any) -> ModelInputs:
        """The same call with `fn` applied to every NumPy array (to make framework tensors)."""

        def conv(value: Any) -> Any:
            return fn(value) if isinstance(value, np.ndarray) else value

        return ModelInputs(
            tuple(conv(a) for a in self.args),
            {k: conv(v) for k, v in self.kwargs.items()},
            self.attributed,
        )


def is_several(inputs: Any) -> bool:
    """Whether `inputs` is a structure of several inputs: a dict, or a tuple/list of arrays
    or tensors (a nested list of numbers is one array)."""
    if isinstance(inputs, Mapping):
        return True
    return (
        isinstance(inputs, (tuple, list))
        and len(inputs) > 0
        and all(_array_like(v) for v in inputs)
    )


def _array_like(value: Any) -> bool:
    return hasattr(value, "shape") and not isinstance(value, (int, float))


@dataclass(frozen=True)
class InputLayout:
    """How packed rows map back to the model's inputs."""

    kind: str  # "array", "tuple", "list" or "dict"
    keys: tuple[Slot, ...]
    shapes: tuple[tuple[int, ...], ...]  # per sample
    dtypes: tuple[np.dtype, ...]

    @property
    def packed(self) -> bool:
        return self.kind != "array"

    @property
    def sizes(self) -> list[int]:
        return [int(np.prod(s, dtype=np.int64)) for s in self.shapes]

    @functools.cached_property
    def integer(self) -> list[Slot]:
        """The inputs holding integers or booleans (worked out once: asked on every call)."""
        return [k for k, d in zip(self.keys, self.dtypes) if d.kind in "iub"]

    def integer_mask(self) -> np.ndarray | None:
        """Which features of one packed sample are integers (token ids), or None when none
        are: perturbation methods replace those by a baseline token, never scale them."""
        if not self.integer:
            return None
        if not self.packed:
            return np.ones(self.shapes[0], bool)
        return np.concatenate(
            [np.full(size, dtype.kind in "iub") for size, dtype in zip(self.sizes, self.dtypes)]
        )

    def pack(self, parts: Sequence[np.ndarray], dtype: Any = None) -> np.ndarray:
        """Attributed arrays (in `keys` order) to (N, n_features) rows."""
        if not self.packed:
            return parts[0]
        n = len(parts[0])
        rows = [np.asarray(p).reshape(n, -1) for p in parts]
        return np.concatenate(rows, axis=1).astype(dtype or self.packed_dtype, copy=False)

    def pack_structure(self, value: Any, dtype: Any = None) -> np.ndarray:
        """`pack` for arrays in the inputs' structure (a dict, tuple or list of parts, as
        `Explanation.attributions` holds them for several inputs); one array as it is."""
        if isinstance(value, Mapping):
            return self.pack(list(value.values()), dtype)
        if isinstance(value, (tuple, list)):
            return self.pack(list(value), dtype)
        return value

    @property
    def packed_dtype(self) -> np.dtype:
        floats = {d for d in self.dtypes if d.kind == "f"}
        if len(floats) == 1 and len(floats) == len(set(self.dtypes)):
            return next(iter(floats))
        return np.dtype(np.float64)  # ids up to 2**53 are exact

    def unpack(self, rows: np.ndarray, cast: bool = True) -> list[np.ndarray]:
        """Packed rows back to one array per input (its own dtype when `cast`)."""
        if not self.packed:
            return [rows]
        n, parts, start = len(rows), [], 0
        for shape, size, dtype in zip(self.shapes, self.sizes, self.dtypes):
            part = rows[:, start : start + size].reshape(n, *shape)
            if cast and part.dtype != dtype:
                part = np.rint(part).astype(dtype) if dtype.kind in "iub" else part.astype(dtype)
            parts.append(part)
            start += size
        return parts

    def structure(self, parts: Sequence[np.ndarray]) -> Any:
        """Arrays in the user's structure: one array, a tuple, a list or a dict."""
        if self.kind == "array":
            return parts[0]
        if self.kind == "dict":
            return dict(zip(self.keys, parts))
        return tuple(parts) if self.kind == "tuple" else list(parts)

    def call(self, parts: Sequence[np.ndarray], kwargs: Mapping[str, Any]) -> Any:
        """What the backend gets: a plain array when nothing else is needed."""
        if self.kind == "array" and not kwargs:
            return parts[0]
        if self.kind == "dict":
            return ModelInputs((), {**dict(zip(self.keys, parts)), **kwargs}, self.keys)
        return ModelInputs(tuple(parts), dict(kwargs), self.keys)


def split_inputs(inputs: Any, to_numpy: Any) -> tuple[InputLayout, list[np.ndarray]]:
    """The layout and arrays of what the user passed (one array, or a tuple/list/dict)."""
    if type(inputs) is np.ndarray:  # the common call: one array, nothing to convert
        return InputLayout("array", (0,), (inputs.shape[1:],), (inputs.dtype,)), [inputs]
    if isinstance(inputs, Mapping):
        if not inputs or not all(isinstance(k, str) for k in inputs):
            raise InputError(
                "inputs given as a dict need string keys (the model's argument names) and at "
                "least one entry."
            )
        kind, keys, values = "dict", tuple(inputs), list(inputs.values())
    elif isinstance(inputs, (tuple, list)) and is_several(inputs):
        kind = "tuple" if isinstance(inputs, tuple) else "list"
        keys, values = tuple(range(len(inputs))), list(inputs)
    else:
        kind, keys, values = "array", (0,), [inputs]
    arrays = []
    for key, value in zip(keys, values):
        try:
            arrays.append(np.asarray(to_numpy(value)))
        except (ValueError, TypeError) as exc:
            where = "" if kind == "array" else f" (input {key!r})"
            hint = (
                " A model with several inputs takes a tuple of arrays, each batch first."
                if kind == "array"
                else ""
            )
            raise InputError(f"inputs{where} are not a regular array: {exc}.{hint}") from exc
    if kind != "array":
        sizes = {len(a) if a.ndim else 0 for a in arrays}
        if len(sizes) != 1:
            detail = ", ".join(f"{k!r}: {a.shape}" for k, a in zip(keys, arrays))
            raise InputError(
                f"the inputs have different batch sizes ({detail}); every input is batch "
                "first with one row per sample."
            )
    layout = InputLayout(
        kind,
        keys,
        tuple(a.shape[1:] for a in arrays),
        tuple(a.dtype for a in arrays),
    )
    return layout, arrays


def check_forward_kwargs(forward_kwargs: Any, error: type[XaiError] = InputError) -> None:
    """None or a mapping of keyword arguments (`explain`, `evaluate`, `explain_dataset`)."""
    if forward_kwargs is not None and not isinstance(forward_kwargs, Mapping):
        raise error(
            "forward_kwargs must be a dict of keyword arguments, got "
            f"{type(forward_kwargs).__name__}."
        )


def split_forward_kwargs(
    forward_kwargs: Mapping[str, Any] | None, n: int, to_numpy: Any
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(batch-first arrays, constants): the first are cut and expanded with the inputs."""
    check_forward_kwargs(forward_kwargs)
    if forward_kwargs is None:
        return {}, {}
    batch, constant = {}, {}
    for key, value in forward_kwargs.items():
        if hasattr(value, "__array__") or hasattr(value, "numpy"):
            array = np.asarray(to_numpy(value))
            if array.ndim >= 1 and len(array) == n:
                batch[key] = array
                continue
            constant[key] = array
        else:
            constant[key] = value
    return batch, constant


def pack_reference(value: Any, layout: InputLayout, name: str, to_numpy: Any) -> np.ndarray:
    """Baselines or background for several inputs, in the inputs' structure, as packed rows.

    Each part is a scalar, one sample, or rows of samples; parts with one row are
    repeated to the others' row count."""
    if isinstance(value, Mapping):
        if layout.kind != "dict" or set(value) != set(layout.keys):
            raise InputError(f"{name} has keys {list(value)}, the inputs {list(layout.keys)}.")
        parts = [value[k] for k in layout.keys]
    else:
        if layout.kind == "dict" or len(value) != len(layout.keys):
            raise InputError(
                f"{name} has {len(value)} parts for {len(layout.keys)} inputs: give one per "
                "input, in the inputs' structure (or one scalar for all)."
            )
        parts = list(value)
    rows = []
    for key, part, shape in zip(layout.keys, parts, layout.shapes):
        array = np.asarray(to_numpy(part), dtype=np.float64)
        if array.ndim == 0 or array.shape == shape:
            array = np.broadcast_to(array, shape)[None]
        if array.shape[1:] != shape:
            raise InputError(
                f"{name} for input {key!r} has shape {array.shape}; each sample of that input "
                f"has shape {shape}."
            )
        rows.append(array)
    m = max(len(r) for r in rows)
    if any(len(r) not in (1, m) for r in rows):
        raise InputError(f"the parts of {name} have different numbers of rows.")
    rows = [np.broadcast_to(r, (m, *r.shape[1:])) for r in rows]
    return layout.pack(rows)


def in_structure(value: Any, layout: InputLayout) -> list[Any] | None:
    """`value`'s parts, one per input in the layout's order, when it is given in the
    inputs' structure (a dict with the inputs' keys, or a tuple/list with one entry per
    input); None when it is one value for the packed rows."""
    if isinstance(value, Mapping):
        if layout.kind != "dict" or set(value) != set(layout.keys):
            raise OptionError(
                f"an option given as a dict needs the inputs' keys {list(layout.keys)}, got "
                f"{list(value)}."
            )
        return [value[k] for k in layout.keys]
    if isinstance(value, (tuple, list)) and len(value) == len(layout.keys):
        if all(isinstance(v, (tuple, list, np.ndarray)) or hasattr(v, "shape") for v in value):
            return list(value)
    return None


def pack_per_input(kind: str, value: Any, layout: InputLayout, name: str, n: int) -> Any:
    """An option that is per input in Captum (`feature_mask`, `feature_names`,
    categorical feature indices, window shapes) as the packed rows need it.

    mask: integer ids per input (one sample's shape, 1 x it, or one row per sample)
    concatenated, so that one id in two inputs is one feature ablated in both, as Captum
    0.9 does (its cross-tensor masks; Captum before 0.8 took each input alone: give
    disjoint ids for that); names: the lists
    joined; indices: each input's indices moved by its offset in the packed row; shape:
    one shape per input, kept per input for the explainer (`BatchedModel.layout`)."""
    if kind == "shape" and isinstance(value, (tuple, list)) and len(value) == len(layout.keys):
        if all(isinstance(v, (int, np.integer, tuple, list)) for v in value):
            return tuple(value)  # one shape (or one int) per input
    parts = in_structure(value, layout)
    if parts is None:
        if kind == "shape" and isinstance(value, (int, np.integer)):
            return tuple(value for _ in layout.keys)  # one int: every input, every axis
        if kind == "shape":
            raise OptionError(
                f"{name} for a model of {len(layout.keys)} inputs is one shape per input, in "
                f"the inputs' structure (Captum's tuple of shapes), e.g. "
                f"{tuple(tuple(1 for _ in s) for s in layout.shapes)}; an int means that size "
                "along every axis of every input."
            )
        return value
    if kind == "shape":
        return tuple(parts)
    if kind == "draws":  # (k, samples, *shape) per input -> (k, samples, n_features)
        draws = []
        for key, part, shape in zip(layout.keys, parts, layout.shapes):
            array = np.asarray(part, dtype=np.float64)
            if array.ndim != len(shape) + 2 or array.shape[1:] != (n, *shape):
                raise OptionError(
                    f"{name} for input {key!r} has shape {array.shape}; each input's part is "
                    f"(draws, {n}, {', '.join(map(str, shape))})."
                )
            draws.append(array.reshape(*array.shape[:2], -1))
        if len({len(d) for d in draws}) != 1:
            raise OptionError(f"the parts of {name} have different numbers of draws.")
        return np.concatenate(draws, axis=2)
    if kind == "names":
        names: list[Any] = []
        for key, part, size in zip(layout.keys, parts, layout.sizes):
            if len(part) != size:
                raise OptionError(
                    f"{name} for input {key!r} has {len(part)} names; that input has {size} "
                    "features per sample."
                )
            names += list(part)
        return names
    if kind == "indices":
        offsets = np.cumsum([0, *layout.sizes[:-1]])
        moved: list[int] = []
        for key, part, size, offset in zip(layout.keys, parts, layout.sizes, offsets):
            bad = [i for i in part if not 0 <= int(i) < size]
            if bad:
                raise OptionError(f"{name} for input {key!r}: {bad} out of range (0..{size - 1}).")
            moved += [int(i) + int(offset) for i in part]
        return moved
    # masks: one sample's ids (or 1 x it), or one row per sample (n x it) for any input
    masks = [np.asarray(part) for part in parts]
    per_sample = n > 1 and any(
        m.ndim == len(shape) + 1 and len(m) == n for m, shape in zip(masks, layout.shapes)
    )
    rows = []
    for key, mask, shape in zip(layout.keys, masks, layout.shapes):
        if mask.dtype.kind not in "iub":
            raise OptionError(
                f"{name} for input {key!r} holds {mask.dtype} values; it takes integer feature ids."
            )
        if mask.ndim == len(shape):
            mask = mask[None]
        try:
            mask = np.broadcast_to(mask, (n if per_sample else 1, *shape))
        except ValueError:
            raise OptionError(
                f"{name} for input {key!r} has shape {np.shape(mask)}; it must broadcast to "
                f"one sample of that input, {shape}, 1 x it, or one row per sample "
                f"({n}, *{shape})."
            ) from None
        rows.append(mask.reshape(len(mask), -1).astype(np.int64))
    packed = np.concatenate(rows, axis=1)
    return packed if per_sample else packed[0]
