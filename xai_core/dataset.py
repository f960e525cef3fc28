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
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from .data_sources import Batch, Source, open_source
from .engine import DatasetJob, is_factory
from .errors import InputError, OptionError
from .fingerprint import model_digest
from .inputs import check_forward_kwargs
from .result_store import Results, ResultStore, open_results, store_location

__all__ = ["Results", "explain_dataset", "open_results"]


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
    from .api import adapt, explain, get_explainer
    from .explainer import check_positive_int
    from .loading import load_model
    from .registry import REGISTRY

    check_positive_int("batch_size", batch_size)
    explainer = get_explainer(method, **options)  # checks the method and its options now
    check_forward_kwargs(forward_kwargs, OptionError)
    if engine_options is not None and not isinstance(engine_options, dict):
        raise OptionError(
            f"engine_options must be a dict of the engine's options, got "
            f"{type(engine_options).__name__}."
        )
    engine_impl = REGISTRY.engine_class(engine)(**(engine_options or {}))
    location = store_location(out)  # refuses a bad out= before any work
    # the model is built here once (a path is loaded, trust checked; a factory is called):
    # its layout decides how images are read, its weights' hash goes in the identity
    path = model if isinstance(model, (str, os.PathLike)) else None
    built = load_model(model, trust=trust) if path is not None else None
    if built is None:
        built = model() if is_factory(model) else model
    adapter = adapt(built)
    source = open_source(data, target=target, channels_last=bool(adapter.channels_last))
    if source.n_rows == 0:
        raise InputError("the data holds no rows: there is nothing to explain.")
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
        explain=explain,
    )
    job.prebuilt = built  # the local engine uses it; remote workers build their own
    identity = _identity(job, source, options.get("seed"), model_digest(adapter, path))
    store = ResultStore.open(location, identity, overwrite, shown=out)
    try:
        return _run(store, job, source, engine_impl, explainer, options, progress, method)
    finally:
        store.lock.release()


def _run(
    store: ResultStore,
    job: DatasetJob,
    source: Source,
    engine_impl: Any,
    explainer: Any,
    options: dict[str, Any],
    progress: bool,
    method: str,
) -> Results:
    """Explain the batches not done yet into `store` (its lock held by the caller)."""
    from .explainer import resolve_seed

    batch_size = job.batch_size
    if "seed" in explainer.options:
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
        store.finish(n_batches)
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


def _identity(job: DatasetJob, source: Source, seed: Any, model: str | None) -> dict[str, Any]:
    """What must match for a rerun to resume into an existing store."""
    return {
        "model": model,
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
