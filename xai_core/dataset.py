"""`explain_dataset`: explanations for a whole dataset, into a Zarr store, resumable.

Every batch is committed on its own: its arrays are written (one chunk per array,
chunks cut at batch boundaries), then its flag in `_done`. Zarr writes each chunk
atomically (a local store writes a temporary file and renames it; object stores
put whole objects), so a crash or Ctrl-C leaves finished batches finished and the
batch in flight not flagged. Rerunning the same call computes only the batches
without a flag, and since a batch's seed comes from the run's seed and the batch's
index, the store ends identical to an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from .data_sources import Batch, Source, open_source
from .engine import DatasetJob, is_factory
from .errors import XaiError
from .explanation import Explanation

FORMAT = "xai_core.dataset/1"
DONE = "_done"


def explain_dataset(
    model: Any,
    data: Any,
    method: str,
    *,
    out: str | os.PathLike[str],
    target: Any = None,
    batch_size: int = 256,
    engine: str = "local",
    progress: bool = True,
    forward_kwargs: dict[str, Any] | None = None,
    output: Any = None,
    overwrite: bool = False,
    store_inputs: bool = False,
    trust: bool = False,
    engine_options: dict[str, Any] | None = None,
    **options: Any,
) -> Results:
    """Explain every row of `data` with `method` and write the results to the Zarr store
    `out`; returns them, lazily, as `Results`.

    `model` is a model, a saved model's path (`load_model` formats; `trust` as there),
    or a zero-argument function that builds it (what remote workers call). `data` is an
    array (or a tuple/dict of arrays for several inputs), a .npy/.npz path (read by
    row ranges, never whole), a folder of images, a Parquet table, or an iterable of
    batches (DataLoader, tf.data, generator; items are arrays, several inputs, or (inputs,
    target) pairs). `target` is None, an int, one per row, or for Parquet the target
    column's name. Rerunning the same call resumes; other options or data are refused
    unless `overwrite=True`. `options` go to the method (a `seed` is per run: each batch
    gets one derived from it and its index).
    """
    from .api import adapt, get_explainer
    from .explainer import check_positive_int, resolve_seed
    from .registry import REGISTRY

    check_positive_int("batch_size", batch_size)
    explainer = get_explainer(method, **options)  # checks the method and its options now
    engine_impl = REGISTRY.engine_class(engine)(**(engine_options or {}))
    probe = None if isinstance(model, (str, os.PathLike)) or is_factory(model) else model
    channels_last = bool(adapt(probe).channels_last) if probe is not None else False
    source = open_source(data, target=target, channels_last=channels_last)
    seeded = "seed" in explainer.options
    job = DatasetJob(
        model=model,
        method=method,
        options={k: v for k, v in options.items() if k != "seed"},
        # one target for all rows; per-row targets travel with their rows in the source
        target=target if target is None or isinstance(target, (int, np.integer, tuple)) else None,
        batch_size=batch_size,
        n_rows=source.n_rows,
        forward_kwargs=forward_kwargs,
        output=output,
        trust=trust,
        store_inputs=store_inputs,
    )
    identity = _identity(job, source, options.get("seed"))
    store = ResultStore.open(out, identity, overwrite)
    if seeded:
        job.seed = store.seed if store.seed is not None else resolve_seed(options.get("seed"))
        store.record_seed(job.seed)
    done = store.done()
    n_batches = source.n_batches(batch_size)
    total = source.n_rows
    bar = _bar(progress, total, sum(_batch_rows(i, batch_size, total) for i in done), method)

    def commit(index: int, start: int, arrays: dict[str, np.ndarray]) -> None:
        store.write(index, start, arrays, n_batches)
        if bar is not None:
            bar.update(len(arrays["predictions"]))

    try:
        if source.random_access:
            todo: Iterator[Batch] | list[int] = [i for i in range(n_batches or 0) if i not in done]
        else:
            todo = source.batches(batch_size, frozenset(done))
        engine_impl.run(job, source, todo, commit)
        store.finish(source, batch_size)
    finally:
        if bar is not None:
            bar.close()
    return Results(store.group)


def _batch_rows(index: int, batch_size: int, total: int | None) -> int:
    if total is None:
        return batch_size
    return max(0, min(batch_size, total - index * batch_size))


def _bar(enabled: bool, total: int | None, initial: int, method: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="row", desc=f"explain_dataset {method}")


def _json_safe(value: Any) -> Any:
    """Options as JSON: arrays by shape, dtype and content hash."""
    if isinstance(value, np.ndarray) or hasattr(value, "__array__") and not np.isscalar(value):
        array = np.asarray(value)
        digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]
        return {"array": list(array.shape), "dtype": str(array.dtype), "sha256": digest}
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _identity(job: DatasetJob, source: Source, seed: Any) -> dict[str, Any]:
    """What must match for a rerun to resume into an existing store."""
    return {
        "method": job.method,
        "options": _json_safe({k: v for k, v in job.options.items()}),
        "seed": seed,
        "target": _json_safe(job.target),
        "batch_size": job.batch_size,
        "data": _json_safe(source.describe()),
        "row_target": _json_safe(source.row_target),
        "output": _json_safe(job.output),
        "forward_kwargs": _json_safe(job.forward_kwargs),
        "store_inputs": job.store_inputs,
    }


def _location(out: Any) -> str:
    """A local path, or an fsspec URL for any other filesystem (s3://, gs://, memory://)."""
    location = os.fspath(out) if isinstance(out, os.PathLike) else str(out)
    if location.startswith("file://"):
        return location[len("file://") :]
    return location


class ResultStore:
    """The Zarr group being written: arrays created from the first batch's results."""

    def __init__(self, group: Any) -> None:
        self.group = group
        identity = dict(group.attrs)["identity"]
        self.batch_size = identity["batch_size"]
        self.n_rows = identity["data"].get("rows")
        self._arrays: dict[str, Any] = {}  # handles, opened once (each lookup reads metadata)

    @classmethod
    def open(cls, out: Any, identity: dict[str, Any], overwrite: bool) -> ResultStore:
        import zarr

        location = _location(out)
        try:
            existing = zarr.open_group(location, mode="r")
            attrs = dict(existing.attrs)
        except (FileNotFoundError, zarr.errors.GroupNotFoundError, KeyError, ValueError):
            attrs = None
        if attrs is not None and not overwrite:
            if attrs.get("format") != FORMAT:
                raise XaiError(
                    f"{out} exists and is not an explain_dataset store; pick another out= or "
                    "pass overwrite=True to replace it."
                )
            stored = json.loads(json.dumps(attrs.get("identity")))
            wanted = json.loads(json.dumps(identity))
            if stored != wanted:
                changed = sorted(k for k in wanted if stored.get(k) != wanted.get(k))
                raise XaiError(
                    f"{out} holds results of another run (different {', '.join(changed)}); "
                    "resuming would mix them. Pick another out=, or pass overwrite=True to "
                    "start again."
                )
            return cls(zarr.open_group(location, mode="a"))
        from . import __version__

        group = zarr.open_group(location, mode="w")
        group.attrs.update(
            {
                "format": FORMAT,
                "identity": identity,
                "method": identity["method"],
                "options": identity["options"],
                "data": identity["data"],
                "versions": {"xai_core": __version__, "numpy": np.__version__},
                "complete": False,
            }
        )
        return cls(group)

    @property
    def seed(self) -> int | None:
        return self.group.attrs.get("run_seed")

    def record_seed(self, seed: int) -> None:
        if self.group.attrs.get("run_seed") != seed:
            options = {**dict(self.group.attrs.get("options", {})), "seed": seed}
            self.group.attrs.update({"run_seed": seed, "options": options})

    def done(self) -> set[int]:
        if DONE not in self.group:
            return set()
        flags = self.group[DONE][:]
        return {int(i) for i in np.nonzero(flags)[0]}

    def _array(self, path: str, value: np.ndarray) -> Any:
        array = self._arrays.get(path)
        if array is None:
            if path in self.group:
                array = self.group[path]
            else:
                array = self.group.create_array(
                    path,
                    shape=(self.n_rows or 0, *value.shape[1:]),
                    chunks=(self.batch_size, *value.shape[1:]),
                    dtype=value.dtype,
                    fill_value=0,
                )
            self._arrays[path] = array
        return array

    def write(
        self, index: int, start: int, arrays: dict[str, np.ndarray], n_batches: int | None
    ) -> None:
        """Write one batch's arrays, then flag it done (the commit)."""
        stop = start + len(arrays["predictions"])
        for path, value in arrays.items():
            array = self._array(path, value)
            if array.shape[0] < stop:
                array.resize((stop, *array.shape[1:]))
            array[start:stop] = value
        flags = self._done_array(n_batches)
        if flags.shape[0] <= index:
            flags.resize((index + 1,))
        flags[index] = True

    def _done_array(self, n_batches: int | None) -> Any:
        array = self._arrays.get(DONE)
        if array is None:
            if DONE in self.group:
                array = self.group[DONE]
            else:
                array = self.group.create_array(
                    DONE, shape=(n_batches or 0,), chunks=(1,), dtype="bool", fill_value=False
                )
            self._arrays[DONE] = array
        return array

    def finish(self, source: Source, batch_size: int) -> None:
        """Mark the store complete once every batch is flagged."""
        n_batches = source.n_batches(batch_size)
        done = self.done()
        if n_batches is None:  # an iterable: complete when it was read to its end
            complete = bool(done) and len(done) == max(done) + 1
        else:
            complete = len(done) == n_batches
        if complete:
            self.group.attrs["complete"] = True


class Results:
    """An `explain_dataset` store, read lazily: arrays stay on disk until sliced.

    `attributions`, `predictions`, `target` (and `convergence_delta`, `activations`)
    are Zarr arrays; `results[i:j]` is an `Explanation` of those rows."""

    def __init__(self, group: Any) -> None:
        self.group = group

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self.group.attrs)

    @property
    def method(self) -> str:
        return self.group.attrs["method"]

    @property
    def complete(self) -> bool:
        return bool(self.group.attrs.get("complete"))

    def _get(self, name: str) -> Any:
        return self.group[name] if name in self.group else None

    @property
    def attributions(self) -> Any:
        return self._get("attributions")

    @property
    def predictions(self) -> Any:
        return self.group["predictions"]

    @property
    def target(self) -> Any:
        return self.group["target"]

    @property
    def convergence_delta(self) -> Any:
        return self._get("convergence_delta")

    @property
    def activations(self) -> dict[str, Any]:
        if "activations" not in self.group:
            return {}
        group = self.group["activations"]
        return {name: group[name] for name in group.array_keys()}

    def __len__(self) -> int:
        return int(self.predictions.shape[0])

    def _structured(self, name: str, rows: slice) -> Any:
        node = self._get(name)
        if node is None:
            return None
        if hasattr(node, "array_keys"):  # several inputs: one array per input
            keys = sorted(
                node.array_keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else k)
            )
            parts = {k: node[k][rows] for k in keys}
            return tuple(parts.values()) if all(k.isdigit() for k in keys) else parts
        return node[rows]

    def __getitem__(self, item: int | slice) -> Explanation:
        rows = slice(item, item + 1) if isinstance(item, (int, np.integer)) else item
        if not isinstance(rows, slice):
            raise XaiError("index results with an int or a slice, e.g. results[100:200].")
        delta = self.convergence_delta
        return Explanation(
            method=self.method,
            inputs=self._structured("inputs", rows),
            target=self.target[rows],
            predictions=self.predictions[rows],
            attributions=self._structured("attributions", rows),
            activations={k: v[rows] for k, v in self.activations.items()},
            convergence_delta=None if delta is None else delta[rows],
            backend="",
            options=dict(self.group.attrs.get("options", {})),
            versions=dict(self.group.attrs.get("versions", {})),
        )

    def __repr__(self) -> str:
        state = "complete" if self.complete else "incomplete (rerun the call to resume)"
        shape = None if self.attributions is None else getattr(self.attributions, "shape", None)
        return f"Results(method={self.method!r}, rows={len(self)}, attributions={shape}, {state})"


def open_results(path: str | os.PathLike[str]) -> Results:
    """Reopen a store written by `explain_dataset`."""
    import zarr

    location = _location(path)
    try:
        group = zarr.open_group(location, mode="r")
    except Exception as exc:  # noqa: BLE001 - any reason it is not a store
        raise XaiError(f"{path} is not a Zarr store written by explain_dataset: {exc}") from exc
    if group.attrs.get("format") != FORMAT:
        raise XaiError(f"{path} is a Zarr store but not one written by explain_dataset.")
    return Results(group)
