"""The first pass through the model: where its errors mean bad inputs, and where gradient
methods learn the predictions and the target without a pass of their own.

A gradient explanation used to run the model twice per chunk: once for the predictions
(to choose the target), once more for the gradients. Methods that say
`Explainer.target_from_first_pass` get a `PendingTarget` instead of a target array: the
first gradient pass that runs the samples themselves hands its outputs to the core
before its backward step (the adapter calls the target it was given), the core records
them as the predictions and answers with each row's target, chosen as before (the
user's, checked against the outputs, or the predicted class). Rows the method adds
(interpolations, noisy copies) follow their sample's target. One forward per chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from .errors import InputError, XaiError
from .validation import check_predictions, check_returned, outputs_changed, resolve_target

T = TypeVar("T")


def first_call(call: Callable[[], T], x: np.ndarray, layout: Any = None) -> T:
    """Run the first pass through the model; a framework error there almost always means
    inputs of the wrong shape or layout, so it is re-raised as an `InputError` saying so,
    with the inputs as the user gave them (several inputs: each one's shape and dtype, not
    the packed rows')."""
    try:
        return call()
    except XaiError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised with the fix, original chained
        if layout is not None and layout.packed:
            given = "inputs " + ", ".join(
                f"{k!r}: {(len(x), *shape)} {dtype}"
                for k, shape, dtype in zip(layout.keys, layout.shapes, layout.dtypes)
            )
            integer = bool(layout.integer)
        else:
            given, integer = f"inputs of shape {x.shape} (dtype {x.dtype})", x.dtype.kind in "iu"
        integers = (
            " Integer inputs reach the model as integers (token ids); if it expects floats, "
            "pass x.astype('float32')."
            if integer
            else ""
        )
        raise InputError(
            f"the model rejected {given}: "
            f"{type(exc).__name__}: {exc}\nPass a batch-first array in the layout and "
            "feature size the model expects (channels-first for PyTorch/Paddle convolutions, "
            f"channels-last for Keras).{integers}"
        ) from exc


class PendingTarget:
    """Each sample's target, decided by the outputs of the first pass that runs the samples.

    `record` takes the outputs of the samples' own rows, in order, a range at a time
    (chunks); `of_rows` answers the targets of a call's rows. Converted to an array
    before that (`np.asarray(target)`, by an explainer that needs the whole target first),
    it runs the prediction pass itself: correct, one pass more. Kept to a few NumPy calls:
    it runs on every call of an explainer in a loop."""

    def __init__(self, user_target: Any, n: int, predict: Callable[[], np.ndarray]) -> None:
        self.user_target = user_target
        self.n = n
        self._predict = predict
        self.predictions: np.ndarray | None = None
        self.output_shape: tuple[int, ...] | None = None
        self.target: np.ndarray | None = None
        self.resolved = False
        self._seen = 0  # samples 0.._seen-1 are recorded
        self._given: Any = False  # not worked out yet

    @property
    def given(self) -> np.ndarray | None:
        """The user's target as one non-negative int per sample where it is that plainly
        (an int or one int per sample), else None (the predicted class; index tuples)."""
        if self._given is False:
            tuples = self.user_target is None or isinstance(self.user_target, tuple)
            arr = None if tuples else np.asarray(self.user_target)
            plain = arr is not None and arr.dtype.kind in "iu" and arr.ndim <= 1
            if plain and arr.ndim == 1 and len(arr) != self.n:
                plain = False
            if plain and arr.size and arr.min() < 0:
                plain = False
            self._given = np.broadcast_to(arr, (self.n,)).astype(np.int64) if plain else None
        return self._given

    def record(self, start: int, stop: int, outputs: np.ndarray) -> None:
        """The outputs (as the model returned them, batch first) of samples start..stop-1."""
        if start == 0:  # (again: a prediction pass after a partial one)
            self.predictions, self._seen = None, 0
        if start != self._seen:
            raise XaiError(
                f"samples {start}..{stop - 1} ran before samples {self._seen}..{start - 1}; this "
                "is a bug in xai_core's batching (please report it)."
            )
        outputs = np.asarray(outputs)
        shape = tuple(outputs.shape[1:]) or (1,)
        flat = outputs if outputs.ndim == 2 else outputs.reshape(len(outputs), -1)
        if len(flat) != stop - start:
            check_predictions(flat, stop - start)  # says why
        if flat.dtype.kind == "f" and flat.dtype.itemsize < 4:
            flat = flat.astype(np.float32)  # half-precision models explain in float32
        whole = start == 0 and stop == self.n
        if self.predictions is not None and flat.shape[1] != self.predictions.shape[1]:
            raise outputs_changed("the model's forward", shape, self.output_shape)
        if self.predictions is None:
            self.output_shape = shape
            self.predictions = flat if whole else np.zeros((self.n, flat.shape[1]), flat.dtype)
            if self.user_target is not None:  # the user's: checked once against the outputs
                self.target = resolve_target(self.user_target, self.predictions, shape)
            elif not whole:
                self.target = np.zeros(self.n, np.int64)
        if not whole:
            self.predictions[start:stop] = flat
        if self.user_target is None:
            chosen = resolve_target(None, flat, shape)
            if whole:
                self.target = chosen
            else:
                self.target[start:stop] = chosen
        self._seen = stop
        self.resolved = stop == self.n

    def of_rows(self, samples: np.ndarray | None, rows: slice) -> np.ndarray:
        """The targets of a call's `rows`: row j belongs to sample `samples[j]`, or to
        sample j (None: the rows are the samples themselves)."""
        if samples is None:
            if rows.stop <= self._seen:
                return self.target if rows.start == 0 and rows.stop == self.n else self.target[rows]
        elif self.resolved or samples[rows].max(initial=-1) < self._seen:
            return self.target[samples[rows]]
        raise XaiError(
            "a gradient pass ran rows of samples whose predictions were not taken yet; "
            "this is a bug in xai_core's batching (please report it)."
        )

    def resolve(self) -> np.ndarray:
        """The whole target now, running the prediction pass if no pass gave it yet."""
        if not self.resolved:
            outputs = self._predict()  # (the core's forward records them itself)
            if not self.resolved:
                self.record(0, self.n, outputs)
        return self.target

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        target = self.resolve()
        return target if dtype is None else target.astype(dtype)

    def __len__(self) -> int:
        return self.n


class PassTarget:
    """The target an adapter gets for one gradient call while the samples' target is
    pending: call it with the pass's outputs (NumPy, batch first, as the model returned
    them), whose first rows are samples `start..stop-1`; it records them as predictions and
    returns the targets of the call's rows.

    `known` is the rows' target where it likely does not depend on the outputs (the user
    gave ints), else None. A backend that cannot call back between its forward and
    backward steps (a compiled graph) may run with `known` and call this with the outputs
    after: a target the outputs refuse (out of range) still raises, and where the answer
    differs from `known` (ints that index an output with several axes) it must run again
    with the answer.
    """

    def __init__(
        self, pending: PendingTarget, start: int, stop: int, samples: Any, rows: slice
    ) -> None:
        self.pending, self.start, self.stop = pending, start, stop
        self.samples, self.rows = samples, rows

    @property
    def known(self) -> np.ndarray | None:
        given = self.pending.given
        if given is None:
            return None
        return given[self.rows] if self.samples is None else given[self.samples[self.rows]]

    def __call__(self, outputs: np.ndarray) -> np.ndarray:
        rows = self.rows.stop - self.rows.start
        # numbers, one row per row; their finiteness is checked with the call's inputs after
        outputs = np.asarray(outputs)
        if outputs.ndim == 0 or len(outputs) != rows or outputs.dtype.kind not in "fiub":
            check_returned("the model's forward", outputs, rows, finite=False)  # says why
        samples = self.stop - self.start
        own = outputs if rows == samples else outputs[:samples]
        self.pending.record(self.start, self.stop, own)
        return self.pending.of_rows(self.samples, self.rows)


def resolved(target: Any) -> np.ndarray:
    """The target as an array (a `PendingTarget` resolved, running its pass if needed)."""
    return target.resolve() if isinstance(target, PendingTarget) else target
