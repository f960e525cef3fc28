"""Cutting work into chunks, once, for every explainer and backend.

Explainers call a `BatchedModel` exactly as they would call an adapter; it
splits the rows, unpacks several inputs (see `inputs.py`), attaches each row's
`forward_kwargs`, calls the adapter per chunk and joins the results. Backends
therefore never chunk, and explainers never chunk either.

Chunk size: `internal_batch_size` rows when given; otherwise as many rows as fit
`XAI_CORE_CALL_BYTES` bytes of model inputs per call (default 1 MiB: a
ResNet-18 at 64 x 64 then sees 21 rows per call, a 28 x 28 CNN 334, a 30-feature
MLP ~8,700). Small calls are not only safe but faster on CPUs: a call's
activations stay in cache (measured: IG on a ResNet-18 at 64 x 64, 20-row calls
took 0.73x the time of one 100-row call; occlusion on a small CNN, 256-row calls
0.31x one 2,704-row call).
An allocation failure inside the framework becomes an `XaiError` that says to
set `internal_batch_size`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .adapter import LayerInfo, ModelAdapter
from .backend_utils import not_one_tensor
from .errors import GradientNotReachedError, InputError, ModelOutputError, XaiError
from .first_pass import PassTarget, PendingTarget, first_call
from .inputs import InputLayout
from .progress import Progress
from .validation import check_returned, outputs_changed

#: model-input bytes per adapter call when `internal_batch_size` is not given
DEFAULT_CALL_BYTES = 2**20
CALL_BYTES_ENV = "XAI_CORE_CALL_BYTES"

_OUT_OF_MEMORY = re.compile(
    r"out of memory|can't allocate|cannot allocate|not enough memory|ResourceExhausted|"
    r"OOM when allocating|alloc_cpu|Allocator .* failed",
    re.IGNORECASE,
)


def _environment_value(name: str) -> str | None:
    """`os.environ.get(name)` without its cost on every call: `os.environ`'s lookups go
    through `Mapping.get`, which raises and catches a KeyError for a variable that is not
    set (the usual case; ~3% of a 1-row explanation). Read live, so that a variable set
    while the process runs counts."""
    environ = os.environ
    data = getattr(environ, "_data", None)
    if data is None:  # not CPython's `os._Environ`
        return environ.get(name)
    raw = data.get(_ENV_KEYS.get(name) or _ENV_KEYS.setdefault(name, environ.encodekey(name)))
    return None if raw is None else environ.decodevalue(raw)


_ENV_KEYS: dict[str, Any] = {}


def call_bytes() -> int:
    """The per-call input budget, from `XAI_CORE_CALL_BYTES` (e.g. 67108864) or the default."""
    value = _environment_value(CALL_BYTES_ENV)
    if not value:
        return DEFAULT_CALL_BYTES
    try:
        budget = int(float(value))
    except ValueError:
        raise XaiError(f"{CALL_BYTES_ENV}={value!r} is not a number of bytes.") from None
    if budget < 1:
        raise XaiError(f"{CALL_BYTES_ENV} must be a positive number of bytes, got {value!r}.")
    return budget


class BatchedModel:
    """An adapter seen through row chunks, one packed array per batch."""

    def __init__(
        self,
        adapter: ModelAdapter,
        batch_size: int | None = None,
        layout: InputLayout | None = None,
        n_samples: int = 0,
        batch_kwargs: dict[str, np.ndarray] | None = None,
        constant_kwargs: dict[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.adapter = adapter
        self.progress = progress or Progress(enabled=False)
        self._samples_done = 0
        self.batch_size = batch_size
        self.layout = layout
        self.n_samples = n_samples
        self.batch_kwargs = batch_kwargs or {}
        self.constant_kwargs = constant_kwargs or {}
        #: shape of one sample's output before flattening (targets may index it)
        self.output_shape: tuple[int, ...] | None = None
        self._sample: int | None = None
        self._recent: list[tuple[np.ndarray, np.ndarray]] = []
        #: the core's samples and their target while it waits for the first pass that
        #: runs them (see `first_pass`); the adapter must say it takes such targets
        self.samples: np.ndarray | None = None
        self.pending: PendingTarget | None = None
        self._in_pass = bool(getattr(adapter, "targets_from_pass", False))
        #: the flattened model outputs of the latest gradient call, where the backend gave them
        self._last_outputs: np.ndarray | None = None

    @property
    def backend(self) -> str:
        return self.adapter.backend

    @property
    def last_outputs(self) -> np.ndarray | None:
        """The flattened model outputs of the latest gradient pass (None where the
        backend gave none): what a method scales by f(x) reads instead of a forward."""
        return self._last_outputs

    @property
    def channels_last(self) -> bool:
        return self.adapter.channels_last

    @property
    def integer_features(self) -> np.ndarray | None:
        """Which features of one sample (as explainers see it) are integer ids, or None."""
        return self.layout.integer_mask() if self.layout is not None else None

    # -- rows ------------------------------------------------------------------
    def rows_per_call(self, inputs: np.ndarray) -> int:
        if self.batch_size:
            return self.batch_size
        row = max(inputs.nbytes // max(len(inputs), 1), 1)
        return max(1, call_bytes() // row)

    def _chunks(self, inputs: np.ndarray) -> list[slice]:
        n = len(inputs)
        size = self.rows_per_call(inputs)
        return [slice(i, min(i + size, n)) for i in range(0, n, size)]

    @contextlib.contextmanager
    def for_sample(self, index: int) -> Iterator[None]:
        """Every row sent inside the block belongs to sample `index` (its forward_kwargs).

        For explainers that perturb one sample at a time (LIME, Kernel SHAP): the
        rows they send carry that sample's keyword arguments."""
        previous, self._sample = self._sample, int(index)
        if previous is None and index == 0:
            self.progress.start(self.n_samples, "sample")
        try:
            yield
        finally:
            self._sample = previous
            if previous is None:
                self.progress.update(1)

    def _samples_of(self, n_rows: int) -> np.ndarray | None:
        """Which sample each row belongs to, for cutting batch-first forward_kwargs."""
        if not self.batch_kwargs:
            return None
        if self._sample is not None:
            return np.full(n_rows, self._sample)
        if self.n_samples and n_rows % self.n_samples == 0:  # the batch, or blocks of it
            return np.tile(np.arange(self.n_samples), n_rows // self.n_samples)
        raise XaiError(
            f"cannot tell which samples {n_rows} rows belong to, so batch-first "
            f"forward_kwargs ({', '.join(self.batch_kwargs)}) cannot follow them; explain one "
            "sample at a time, or pass those arguments as constants."
        )

    def _call_inputs(self, rows: np.ndarray, samples: np.ndarray | None) -> Any:
        if self.layout is None:
            return rows
        kwargs = dict(self.constant_kwargs)
        if samples is not None:
            kwargs.update({k: v[samples] for k, v in self.batch_kwargs.items()})
        return self.layout.call(self.layout.unpack(rows), kwargs)

    def _pack(self, result: Any, like: np.ndarray) -> np.ndarray:
        if self.layout is None or not self.layout.packed:
            return result[0] if isinstance(result, tuple) else result
        return self.layout.pack(list(result), like.dtype)

    def _map(
        self,
        fn: Callable[[Any, slice], Any],
        inputs: np.ndarray,
        check: Callable[[Any, slice], Any] | None = None,
    ) -> list[Any]:
        n = len(inputs)
        samples = self._samples_of(n)
        if n <= self.rows_per_call(inputs):  # one call (the common case): nothing to cut
            rows = slice(0, n)
            result = _guard(rows, fn, self._call_inputs(inputs, samples), rows)
            return [check(result, rows) if check is not None else result]
        results = []
        for rows in self._chunks(inputs):
            call = self._call_inputs(inputs[rows], None if samples is None else samples[rows])
            result = _guard(rows, fn, call, rows)
            results.append(check(result, rows) if check is not None else result)
        return results

    def _first_pass(self, run: Callable[[], Any]) -> Any:
        """`run()`; while no pass has given the pending predictions yet, a framework error
        is the inputs' fault, and said so (the core's prediction pass did that before)."""
        if self.pending is None or self.pending.predictions is not None:
            return run()
        return first_call(run, self.samples, self.layout)

    # -- targets of rows --------------------------------------------------------------
    def _targets_for(self, inputs: np.ndarray, target: Any) -> Any:
        """What `_chunk_target` slices: the target array itself, or, while the samples'
        target is pending, `_RowTargets` (rows of the samples themselves run first)."""
        if not isinstance(target, PendingTarget):
            return target
        if target.resolved or not self._in_pass:
            return _tiled(target.resolve(), len(inputs))
        if inputs is self.samples:
            return _RowTargets(target, None, target.n)
        return _tiled(target.resolve(), len(inputs))

    @staticmethod
    def _chunk_target(targets: Any, rows: slice) -> Any:
        return targets.for_chunk(rows) if isinstance(targets, _RowTargets) else targets[rows]

    def _pass_outputs(self, check: Callable, out: Any, rows: slice) -> Any:
        """A gradient pass's own outputs checked as a forward pass's are (numbers, finite,
        as many per sample as on the first call, which a pending target learns them from)."""
        if out is None:
            return None
        out = check(out, rows)
        if self.output_shape is None and self.pending is not None:
            self.output_shape = self.pending.output_shape
        return out

    def _took(self, outputs: list[Any]) -> None:
        """After a gradient call: its outputs kept (`extra_outputs`), and the predictions a
        pending target took from it reused by `forward` and the core."""
        if len(outputs) == 1 and outputs[0] is not None:  # one call, the common case
            out = outputs[0]
            self._last_outputs = out if out.ndim == 2 else out.reshape(len(out), -1)
        elif outputs and all(o is not None for o in outputs):
            flat = [np.asarray(o).reshape(len(o), -1) for o in outputs]
            self._last_outputs = np.concatenate(flat, axis=0)
        else:
            self._last_outputs = None
        pending = self.pending
        if pending is not None and pending.resolved and not self._recent_has(self.samples):
            self.output_shape = self.output_shape or pending.output_shape
            self._recent = [(self.samples, pending.predictions), *self._recent[:2]]

    def _checked(self, call: str, inputs: np.ndarray, shape: Any = None) -> Callable:
        """A check for one call's result (see `validation.check_returned`)."""

        name = _call_name(call, self.backend)
        forward = call == "forward"

        def check(value: Any, rows: slice) -> np.ndarray:
            n = rows.stop - rows.start
            expected = None if shape is None else (n, *shape)
            arr = check_returned(name, value, n, expected, inputs, rows)
            if forward and self.output_shape is not None:
                self._check_output_shape(name, arr)
            return arr

        return check

    def _check_output_shape(self, call: str, out: np.ndarray) -> None:
        """Every call's outputs have the first call's shape per sample: a model whose
        number of outputs changes between calls cannot be explained (a target would
        mean another output on each call)."""
        first = self.output_shape
        if out.ndim == 2 and len(first) == 1 and out.shape[1] == first[0]:
            return  # the common case, without two products
        row = tuple(out.shape[1:]) or (1,)
        # targets index the flattened outputs: their number is what must not change (a
        # backend may hand the gradient pass's outputs back flattened)
        if int(np.prod(row)) != int(np.prod(first)):
            raise outputs_changed(str(call), row, first)

    # -- computation -------------------------------------------------------------
    #: set by the core when the model returns one value for the whole batch (Captum's
    #: aggregation mode, for the methods with `Explainer.aggregate_mode`)
    aggregate: bool = False

    def batch_value(self, batch: np.ndarray) -> float:
        """The model's one output for a whole batch of rows (aggregation mode): one call,
        never cut in chunks, since the value belongs to the batch and not to its rows."""
        call = self._call_inputs(batch, self._samples_of(len(batch)))
        raw = np.asarray(_guard(len(batch), self.adapter.forward, call))
        if raw.size != 1:
            raise ModelOutputError(
                f"the model returned {raw.shape} for a batch of {len(batch)} rows, after one "
                "value for the batch on its first call: a model returns one value per batch "
                "(aggregation mode) or one row per sample, on every call."
            )
        return float(raw.reshape(-1)[0])

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        # the core's prediction pass is reused when an explainer asks for f(inputs) again
        for seen, out in self._recent:
            if seen is inputs:
                return out
        checked = self._checked("forward", inputs)

        def check(value: Any, rows: slice) -> np.ndarray:
            arr = checked(value, rows)
            if self.output_shape is None:  # the first chunk's: later ones must match it
                self.output_shape = tuple(arr.shape[1:]) or (1,)
            return arr

        parts = self._first_pass(
            lambda: self._map(lambda call, _: self.adapter.forward(call), inputs, check)
        )
        out = self._flatten(parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0))
        self._recent = [(inputs, out), *self._recent[:2]]
        self._record_samples(inputs, out)
        return out

    def _recent_has(self, inputs: np.ndarray) -> bool:
        return any(seen is inputs for seen, _ in self._recent)

    def _record_samples(self, inputs: np.ndarray, out: np.ndarray) -> None:
        """A forward pass over the core's samples gives a pending target its predictions."""
        pending = self.pending
        if pending is not None and not pending.resolved and inputs is self.samples:
            pending.record(0, len(out), out.reshape(len(out), *self.output_shape))

    def _flatten(self, out: np.ndarray) -> np.ndarray:
        if out.ndim >= 1 and self.output_shape is None:
            self.output_shape = tuple(out.shape[1:]) or (1,)
        if out.dtype.kind == "f" and out.dtype.itemsize < 4:
            out = out.astype(np.float32)  # half-precision models explain in float32
        return out.reshape(len(out), -1) if out.ndim != 2 else out

    def check_differentiable(self, moves_inputs: bool = False) -> None:
        """Gradients need float inputs; integer ids are explained at a layer instead."""
        integer = self.layout.integer if self.layout is not None else []
        if not integer:
            return
        if moves_inputs:
            raise InputError(
                f"inputs {integer} are integers (token ids?) or booleans, and this method moves "
                "the inputs themselves (noise, interpolation), which they cannot follow. Use "
                "integrated_gradients with layer=<embedding layer>: it moves the layer's output; "
                "or a perturbation method (feature_ablation, occlusion, kernel_shap, lime), "
                "which switches features to a baseline."
            )
        embeddings = [i.name for i in _safe_layers(self.adapter) if "embed" in i.kind.lower()]
        which = "the inputs are" if self.layout.kind == "array" else f"inputs {integer} are"
        raise InputError(
            f"{which} integers (token ids?) or booleans, and a model has no gradient with "
            "respect to them. Attribute to the layer that embeds them with layer=<name>"
            + (
                f", e.g. layer={embeddings[0]!r} (embedding layers: {', '.join(embeddings)})"
                if embeddings
                else ""
            )
            + "; or use a perturbation method (feature_ablation, occlusion, kernel_shap, "
            "lime), which switches features to a baseline."
        )

    def gradients(self, inputs: np.ndarray, target: Any, rules: Any = None) -> np.ndarray:
        """d output[i, target[i]] / d inputs[i]. `target` may be the core's pending target
        (`first_pass.PendingTarget`): the pass then also gives the predictions. With
        `rules`, the backward rules of `xai_core.rules` apply (`ModelAdapter.rule_gradients`)."""
        self.check_differentiable()
        targets = self._targets_for(inputs, target)
        gradient_call = self._gradient_call(rules)
        if self._one_plain_call(inputs):
            return self._gradients_in_one_call(inputs, targets, gradient_call)
        grads_check = self._checked("input gradients", inputs, inputs.shape[1:])
        out_check = self._checked("forward", inputs)
        outputs: list[Any] = []

        def check(pair: Any, rows: slice) -> np.ndarray:
            grads, out = pair
            outputs.append(self._pass_outputs(out_check, out, rows))
            return grads_check(grads, rows)

        def call(inputs_of_call: Any, r: slice) -> tuple[np.ndarray, Any]:
            grads, out = gradient_call(inputs_of_call, self._chunk_target(targets, r))
            return self._pack(grads, inputs), out

        parts = self._first_pass(lambda: self._map(call, inputs, check))
        self._took(outputs)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def _one_plain_call(self, inputs: np.ndarray) -> bool:
        """Whether `inputs` go to the adapter as they are, in one call: one array, no
        keyword arguments, within the per-call budget (an explainer in a loop)."""
        return (
            (self.layout is None or self.layout.kind == "array")
            and not self.batch_kwargs
            and not self.constant_kwargs
            and len(inputs) <= self.rows_per_call(inputs)
        )

    def _gradient_call(self, rules: Any) -> Callable[[Any, Any], tuple[Any, Any]]:
        """The adapter's gradient call: plain, or with backward rules."""
        if rules is None:
            return self.adapter.gradients_and_outputs
        return lambda inputs, target: self.adapter.rule_gradients(inputs, target, rules)

    def _gradients_in_one_call(
        self, inputs: np.ndarray, targets: Any, call: Callable[[Any, Any], tuple[Any, Any]]
    ) -> np.ndarray:
        """`gradients` for `_one_plain_call` inputs: the same call and the same checks as
        chunk by chunk, without the chunking, its closures and its nested error wrappers
        (measured: ~15% of a 1-row MLP saliency call)."""
        n = len(inputs)
        rows = slice(0, n)
        target = self._chunk_target(targets, rows)
        pending = self.pending
        try:
            grads, out = call(inputs, target)
        except XaiError:
            raise
        except Exception as exc:
            if pending is not None and pending.predictions is None and not _out_of_memory(exc):
                first_call(_raise(exc), self.samples, self.layout)  # the inputs' fault: says so
            _guard(rows, _raise(exc))  # an allocation failure says what to set; else as it is
            raise
        if out is not None:
            out = check_returned(_call_name("forward", self.backend), out, n, None, inputs)
            if self.output_shape is not None:
                self._check_output_shape(_call_name("forward", self.backend), out)
            elif pending is not None:
                self.output_shape = pending.output_shape
        grads = check_returned(
            _call_name("input gradients", self.backend), grads, n, inputs.shape, inputs
        )
        self._took([out])
        return grads

    def rule_gradients(
        self,
        inputs: np.ndarray,
        target: Any,
        rules: Any,
        references: np.ndarray | None = None,
    ) -> np.ndarray:
        """d output[i, target[i]] / d inputs[i] with backward rules (`xai_core.rules`).

        With `references` (one row per sample: DeepLift's baselines), every call runs the
        rows [its samples; their references], so that a rule sees both halves of each
        layer's input; the gradients of the samples' rows come back, and the model outputs
        of the samples' and the references' rows are kept as `sample_outputs` and
        `reference_outputs` (None where the backend gave no outputs). Without references,
        this is `gradients(..., rules=rules)`: a pending target is settled by the pass."""
        if references is None:
            return self.gradients(inputs, target, rules=rules)
        self.check_differentiable(moves_inputs=False)
        pending = target if isinstance(target, PendingTarget) else None
        if pending is not None and (
            pending.resolved or not self._in_pass or inputs is not self.samples
        ):
            target, pending = pending.resolve(), None
        if pending is None:
            target = _tiled(np.asarray(target), len(inputs))
        n = len(inputs)
        per_call = max(1, self.rows_per_call(inputs) // 2)
        samples = self._samples_of(n)
        parts, sample_outputs, reference_outputs = [], [], []
        for start in range(0, n, per_call):
            rows = slice(start, min(start + per_call, n))
            x = np.concatenate([inputs[rows], references[rows]])
            s = None if samples is None else np.concatenate([samples[rows], samples[rows]])
            if pending is None:
                t: Any = np.concatenate([target[rows], target[rows]])
            else:  # the pass's outputs settle the samples' target (its first rows are them)
                of_rows = np.concatenate([np.arange(rows.start, rows.stop)] * 2)
                t = PassTarget(pending, rows.start, rows.stop, of_rows, slice(0, len(of_rows)))
            k = len(x)
            call = self._call_inputs(x, s)
            if pending is not None and pending.predictions is None:
                grads, out = first_call(
                    lambda c=call, t=t, k=k: _guard(k, self.adapter.rule_gradients, c, t, rules),
                    self.samples,
                    self.layout,
                )
            else:
                grads, out = _guard(k, self.adapter.rule_gradients, call, t, rules)
            grads = check_returned(
                _call_name("gradients with backward rules", self.backend),
                self._pack(grads, x),
                k,
                x.shape,
                x,
            )
            if out is not None:
                out = check_returned(_call_name("forward", self.backend), out, k, None, x)
                if self.output_shape is not None:
                    self._check_output_shape(_call_name("forward", self.backend), out)
                out = out.reshape(k, -1)
            half = k // 2
            parts.append(grads[:half])
            if out is not None:
                sample_outputs.append(out[:half])
                reference_outputs.append(out[half:])
        whole = len(sample_outputs) == len(parts)
        self.sample_outputs = np.concatenate(sample_outputs) if whole else None
        self.reference_outputs = np.concatenate(reference_outputs) if whole else None
        if pending is not None and pending.resolved:  # the core's predictions, reused
            self.output_shape = self.output_shape or pending.output_shape
            self._recent = [(self.samples, pending.predictions), *self._recent[:2]]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def layer_kinds(self) -> dict[str, str | None]:
        """Leaf layer -> its kind for backward rules (see `ModelAdapter.layer_kinds`)."""
        return self.adapter.layer_kinds()

    def capture(
        self,
        inputs: np.ndarray,
        layers: Sequence[str],
        structures: bool = False,
        skip_unbatched: bool = False,
    ) -> dict[str, np.ndarray]:
        """Captured layers, chunk by chunk; the model outputs of the same pass are kept
        so that the core's prediction step costs nothing more.

        A layer returning a tuple (an LSTM's `(out, (h, c))`) comes back as `name[0]`,
        `name[1][0]`, ... with `structures`, else it is an error (methods that use a
        layer's output need one tensor). A part of a tuple that is not batch first (an
        LSTM's (layers, N, H) state) is left out and said why in `skipped_layers`; with
        `skip_unbatched`, so is any such output (a position embedding's (1, T, D)),
        instead of failing the call."""
        out_check, layer_check = self._checked("forward", inputs), self._checked("capture", inputs)
        self.skipped_layers: dict[str, str] = {}

        def check(pair: Any, rows: slice) -> tuple[np.ndarray, dict[str, np.ndarray]]:
            out, captured = pair
            if not structures:
                for name in layers:
                    if name not in captured:  # a tuple, captured as name[0], name[1], ...
                        parts = [k for k in captured if k.startswith(f"{name}[")]
                        raise not_one_tensor(name, tuple(parts))
            kept = {}
            for key, value in captured.items():
                try:
                    kept[key] = layer_check(value, rows)
                except ModelOutputError as exc:
                    part = key not in layers  # one part of a layer's tuple (an LSTM's state)
                    if not (skip_unbatched or part) or "rows" not in str(exc):
                        raise
                    self.skipped_layers[key] = (
                        f"not batch first (shape {np.shape(value)} for {rows.stop - rows.start} "
                        "rows)"
                    )
            return out_check(out, rows), kept

        pairs = self._first_pass(
            lambda: self._map(
                lambda call, _: self.adapter.forward_and_capture(call, layers), inputs, check
            )
        )
        out = self._flatten(np.concatenate([np.asarray(o) for o, _ in pairs], axis=0))
        self._recent = [(inputs, out), *self._recent[:2]]
        self._record_samples(inputs, out)
        keys = [k for k in pairs[0][1] if k not in self.skipped_layers]
        return {
            key: pairs[0][1][key]
            if len(pairs) == 1
            else np.concatenate([p[key] for _, p in pairs], axis=0)
            for key in keys
        }

    def layer_gradients(
        self,
        inputs: np.ndarray,
        target: np.ndarray,
        layer: str,
        replacement: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(activation, d output / d activation) at `layer`; with `replacement`, the
        layer's output is replaced by it (row for row) and the gradient is taken there."""

        several = not isinstance(layer, str)  # a tuple of layers, replaced together
        targets = self._targets_for(inputs, target)
        outputs: list[Any] = []

        def call(c: Any, r: slice) -> tuple[Any, Any, Any]:
            t = self._chunk_target(targets, r)
            if replacement is None:
                return self.adapter.layer_gradients_and_outputs(c, t, layer)
            rows = tuple(p[r] for p in replacement) if several else replacement[r]
            return self.adapter.layer_gradients_and_outputs(c, t, layer, rows)

        names = list(layer) if several else [layer]
        act_checks = [self._checked(f"output of layer {n!r}", inputs) for n in names]
        grad_checks = [self._checked(f"gradients at layer {n!r}", inputs) for n in names]
        out_check = self._checked("forward", inputs)

        def check(triple: Any, rows: slice) -> tuple[list[np.ndarray], list[np.ndarray]]:
            pair, out = triple[:2], triple[2]
            outputs.append(self._pass_outputs(out_check, out, rows))
            acts = list(pair[0]) if several else [pair[0]]
            grads = list(pair[1]) if several else [pair[1]]
            acts = [c(a, rows) for c, a in zip(act_checks, acts)]
            grads = [c(g, rows) for c, g in zip(grad_checks, grads)]
            for name, activation, grad in zip(names, acts, grads):
                if grad.shape != activation.shape:
                    raise ModelOutputError(
                        f"the backend returned gradients of shape {grad.shape} at layer "
                        f"{name!r}, whose output has shape {activation.shape}."
                    )
            return acts, grads

        try:
            parts = self._first_pass(lambda: self._map(call, inputs, check))
        except GradientNotReachedError as exc:
            if not several:
                raise
            raise GradientNotReachedError(
                f"{exc} With several layers replaced together (as Captum's list of layers), "
                "a layer whose output only reaches the output through another listed layer "
                "is cut off by that layer's replacement: list layers on parallel paths, or "
                "explain them one at a time."
            ) from exc
        self._took(outputs)
        acts = tuple(np.concatenate([p[0][i] for p in parts], axis=0) for i in range(len(names)))
        grads = tuple(np.concatenate([p[1][i] for p in parts], axis=0) for i in range(len(names)))
        return (acts, grads) if several else (acts[0], grads[0])

    def gradient_groups(
        self,
        n_blocks: int,
        make_group: Callable[[int, int], np.ndarray],
        target: Any,
        like: np.ndarray | None = None,
        extra: np.ndarray | None = None,
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Input gradients of `n_blocks` blocks shaped like the batch, group by group.

        Methods that expand a batch (n_steps interpolations, n_samples noisy copies)
        say how many blocks there are and build any range of them on request,
        vectorised: `make_group(start, stop)` returns the blocks as (stop - start,
        *batch). Ranges are cut here, in order, so that one adapter call sees at
        most `rows_per_call` rows and the expanded rows never exist all at once.
        Yields (start, stop, gradients) with gradients shaped like the group.
        `like` is one block (the batch), to size the calls before any is built.
        `extra` rows (baselines: one per sample, or one for all) ride in the first call;
        their flattened outputs are in `extra_outputs` afterwards (None where the backend
        does not return a gradient pass's outputs).
        """
        self.check_differentiable()
        yield from self._groups(
            n_blocks, make_group, target, like, self.gradients, extra=extra, samples_lead=True
        )

    def forward_groups(
        self,
        n_blocks: int,
        make_group: Callable[[int, int], np.ndarray],
        like: np.ndarray,
        extra: np.ndarray | None = None,
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Model outputs for `n_blocks` perturbed copies of the batch, group by group.

        Perturbation methods (occlusion, feature ablation, RISE) build any range of
        their copies on request, `make_group(start, stop)` -> (stop - start, *batch);
        groups are sized here so that one call holds at most `rows_per_call` rows.
        Yields (start, stop, outputs) with outputs shaped (stop - start, batch, n_out).
        `extra` rows (the batch's own first samples, e.g. to check a recorded output)
        ride in the first call instead of costing one of their own; their outputs are
        in `extra_outputs` afterwards (None where rows carry forward_kwargs).
        """
        n = len(like)
        pending = [extra] if extra is not None and not self.batch_kwargs else []
        self.extra_outputs: np.ndarray | None = None

        def outputs(rows: np.ndarray, _: np.ndarray) -> np.ndarray:
            k = len(rows) // n
            if self.batch_kwargs:  # rows carrying kwargs keep the tiled order
                return self.forward(rows)
            if k > 1:
                # the copies of one sample side by side: nearly identical neighbouring rows
                # run faster (measured: 0.82x the time of the tiled order on a CNN with
                # max-pooling, whose comparisons the branch predictor then learns)
                by_sample = rows.reshape(k, n, *rows.shape[1:]).swapaxes(0, 1)
                rows = np.ascontiguousarray(by_sample).reshape(rows.shape)
            if pending:
                first = pending.pop()
                out = self.forward(np.concatenate([first, rows]))
                self.extra_outputs, out = out[: len(first)], out[len(first) :]
            else:
                out = self.forward(rows)
            if k == 1:
                return out
            return out.reshape(n, k, -1).swapaxes(0, 1).reshape(k * n, -1)

        target = np.zeros(n, np.int64)  # unused: outputs are returned whole
        for start, stop, out in self._groups(n_blocks, make_group, target, like, outputs):
            yield start, stop, out.reshape(stop - start, n, -1)

    def layer_gradient_groups(
        self,
        layer: str,
        n_blocks: int,
        make_group: Callable[[int, int], np.ndarray],
        target: np.ndarray,
        like: np.ndarray,
    ) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """`gradient_groups` with the gradient taken at `layer`'s output: blocks are built
        in input space (noisy copies, interpolated inputs), and each yields (start, stop,
        activations, gradients), both shaped (stop - start, batch, *layer output)."""
        self.check_differentiable(moves_inputs=True)
        n = len(target)

        def at_layer(rows: np.ndarray, t: Any) -> tuple[np.ndarray, np.ndarray]:
            return self.layer_gradients(rows, t, layer)

        for start, stop, (acts, grads) in self._groups(
            n_blocks, make_group, target, like, at_layer, samples_lead=True
        ):
            k = stop - start
            yield (
                start,
                stop,
                acts.reshape(k, n, *acts.shape[1:]),
                grads.reshape(k, n, *grads.shape[1:]),
            )

    def replaced_layer_gradient_groups(
        self,
        inputs: np.ndarray,
        layer: str | tuple[str, ...],
        n_blocks: int,
        make_group: Callable[[int, int], np.ndarray],
        target: np.ndarray,
        like: np.ndarray,
        layers: InputLayout | None = None,
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """`gradient_groups` in a layer's output space: blocks shaped like the layer's
        output for the batch (`like`) replace it while the model runs on `inputs`
        (tiled), and the gradient is taken there. Layer Integrated Gradients moves
        along this path, so token ids stay integers. Several layers (a tuple) move
        together, their outputs packed in one row per sample as inputs are (`layers`, an
        `InputLayout` of the layers' outputs)."""

        def grads(rows: np.ndarray, t: Any) -> np.ndarray:
            tiled = np.concatenate([inputs] * (len(rows) // len(inputs)), axis=0)
            if layers is None:
                return self.layer_gradients(tiled, t, layer, replacement=rows)[1]
            parts = layers.unpack(rows, cast=False)
            return layers.pack(self.layer_gradients(tiled, t, layer, replacement=parts)[1])

        per_row = max(int(inputs[:1].nbytes), 1)  # the budget counts model inputs
        for start, stop, g in self._groups(n_blocks, make_group, target, like, grads, per_row):
            yield start, stop, g.reshape(stop - start, *like.shape)

    def _groups(
        self,
        n_blocks: int,
        make_group: Callable[[int, int], np.ndarray],
        target: Any,
        like: np.ndarray | None,
        grads_of: Callable[[np.ndarray, Any], Any],
        row_bytes: int | None = None,
        extra: np.ndarray | None = None,
        samples_lead: bool = False,
    ) -> Iterator[tuple[int, int, Any]]:
        """Groups of blocks, one `grads_of(rows, row targets)` call each. `extra` rows (one
        row per sample, or one row for all) ride in the first call, their outputs left in
        `extra_outputs`; with `samples_lead` (rows in input space) and a pending target,
        the samples themselves lead the first call, which so gives the predictions."""
        n = len(target)
        if self.batch_size:
            per_call = max(1, self.batch_size // n)
        elif like is not None or row_bytes:
            row = row_bytes or max(int(like[:1].nbytes), 1)
            per_call = max(1, call_bytes() // (row * n))
        else:
            per_call = n_blocks
        budget, per_call = per_call * n, min(per_call, n_blocks)  # budget: rows per call
        pending = target if isinstance(target, PendingTarget) else None
        if pending is not None and (pending.resolved or not self._in_pass or not samples_lead):
            target, pending = pending.resolve(), None
        extra_samples = np.arange(0 if extra is None else len(extra)) % n
        n_lead = len(extra_samples) + (n if pending is not None else 0)
        # the rows riding in the first call take the place of blocks there, so that it
        # stays within the call's rows (or budget) and no call of its own is added
        first = min(n_blocks, max(1, (budget - n_lead) // n))
        self.extra_outputs: np.ndarray | None = None
        self.progress.start(n_blocks * n, "row")
        start = 0
        while start < n_blocks:
            stop = min(start + (first if start == 0 else per_call), n_blocks)
            group = make_group(start, stop)
            rows = group.reshape(-1, *group.shape[2:])
            shape = rows.shape
            samples = np.tile(np.arange(n), stop - start)
            lead = [] if start else [r for r in (extra,) if r is not None]
            if start == 0 and pending is not None:  # samples first: their rows decide
                lead.insert(0, self.samples)
                samples = np.concatenate([np.arange(n), extra_samples, samples])
                targets: Any = _RowTargets(pending, samples, n)
            else:
                samples = np.concatenate([extra_samples, samples]) if lead else samples
                targets = (pending.target if pending is not None else target)[samples]
            n_lead = sum(len(r) for r in lead)
            grads = grads_of(np.concatenate([*lead, rows]) if lead else rows, targets)
            if n_lead:
                out = self._last_outputs
                if extra is not None and out is not None:
                    self.extra_outputs = out[n_lead - len(extra) : n_lead]
                grads = _without_rows(grads, n_lead)
            if isinstance(grads, np.ndarray) and grads.shape == shape:
                grads = grads.reshape(group.shape)
            self.progress.update(len(rows))
            yield start, stop, grads
            start = stop
        self.progress.close()

    # -- layers --------------------------------------------------------------------
    def layers(self) -> list[LayerInfo]:
        return self.adapter.layers()

    def check_layers(self, names: Sequence[str]) -> None:
        self.adapter.check_layers(names)


def _safe_layers(adapter: ModelAdapter) -> list[LayerInfo]:
    try:
        return adapter.layers()
    except Exception:  # noqa: BLE001 - only used to improve a message
        return []


def _raise(exc: Exception) -> Callable[[], Any]:
    """A call that raises `exc` (to hand an error already caught to a translating wrapper)."""

    def call() -> Any:
        raise exc

    return call


def _out_of_memory(exc: Exception) -> bool:
    return isinstance(exc, MemoryError) or bool(_OUT_OF_MEMORY.search(str(exc)))


def _guard(rows: int | slice, call: Callable[..., Any], *args: Any) -> Any:
    """`call(*args)`, one adapter call of `rows` rows (a count or a slice); an allocation
    failure becomes an `XaiError` with the fix."""
    try:
        return call(*args)
    except XaiError:
        raise
    except Exception as exc:
        if _out_of_memory(exc):
            rows = rows.stop - rows.start if isinstance(rows, slice) else rows
            raise XaiError(
                f"the model ran out of memory on one call of {rows} rows "
                f"({type(exc).__name__}: {str(exc)[:200]}). Pass a smaller "
                "internal_batch_size= (rows per model call), or lower the per-call budget "
                f"with {CALL_BYTES_ENV} (now {call_bytes()} bytes of inputs)."
            ) from exc
        raise


def _tiled(target: np.ndarray, n_rows: int) -> np.ndarray:
    """A samples' target for rows that are blocks of the samples (or the samples)."""
    return (
        target
        if n_rows == len(target) or n_rows % len(target)
        else np.tile(target, n_rows // len(target))
    )


def _without_rows(result: Any, n: int) -> Any:
    """A gradient call's result without its first `n` rows (rows that only rode along)."""
    if isinstance(result, tuple):
        return tuple(_without_rows(part, n) for part in result)
    return result[n:]


def _call_name(call: str, backend: str) -> _CallName:
    """The (kept) name of a model call that check messages print."""
    name = _CALL_NAMES.get((call, backend))
    if name is None:
        name = _CALL_NAMES[call, backend] = _CallName(call, backend)
    return name


class _CallName:
    """ "the model's <call> (backend 'torch')", formatted only when a message needs it:
    every model call is checked, few fail."""

    __slots__ = ("call", "backend")

    def __init__(self, call: str, backend: str) -> None:
        self.call, self.backend = call, backend

    def __str__(self) -> str:
        return f"the model's {self.call} (backend {self.backend!r})"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


_CALL_NAMES: dict[tuple[str, str], _CallName] = {}


class _RowTargets:
    """The targets of one call's rows while the samples' target is pending: row j belongs
    to sample `samples[j]` (None: row j is sample j), and the first `anchors` rows are
    samples 0..anchors-1 themselves (they run first, so every other row's sample is known
    by the time it runs)."""

    def __init__(self, pending: PendingTarget, samples: np.ndarray | None, anchors: int) -> None:
        self.pending, self.samples, self.anchors = pending, samples, anchors

    def for_chunk(self, rows: slice) -> Any:
        """What the adapter gets for these rows: their targets, or, where the chunk holds
        samples not yet seen, a function of the pass's outputs that records them first."""
        start, stop = rows.start, min(rows.stop, self.anchors)
        if self.pending.resolved or start >= stop:
            return self.pending.of_rows(self.samples, rows)
        return PassTarget(self.pending, start, stop, self.samples, rows)
