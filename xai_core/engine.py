"""The `Engine` interface: who computes the batches of `explain_dataset`.

An engine is a plugin (entry-point group `xai_core.engines`): it receives a
`DatasetJob` (everything needed to explain one batch, picklable so that remote
workers can rebuild the model), the batches still to do, and a `commit` function
that writes one finished batch to the store. The built-in `local` engine runs them
in this process; `ray` spreads them over a Ray cluster.
"""

from __future__ import annotations

import functools
import inspect
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .data_sources import Batch, Source
from .errors import XaiError


def batch_seed(run_seed: int, index: int) -> int:
    """The seed of batch `index`: derived from the run's seed and the batch's index only,
    never from the worker that computes it, so every engine gives the same numbers."""
    return int(np.random.SeedSequence([run_seed, index]).generate_state(1, np.uint32)[0])


def is_factory(model: Any) -> bool:
    """A zero-argument function (or partial, or class) that builds the model: what remote
    workers call once each. Model objects (a torch Module is callable) are not."""
    return (
        inspect.isfunction(model)
        or inspect.ismethod(model)
        or isinstance(model, (functools.partial, type))
    )


@dataclass
class DatasetJob:
    """One `explain_dataset` call, minus the data and the store."""

    model: Any
    method: str
    options: dict[str, Any]
    target: Any
    batch_size: int
    n_rows: int | None
    forward_kwargs: dict[str, Any] | None = None
    output: Any = None
    seed: int | None = None
    trust: bool = False
    store_inputs: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: the explain verb (`xai_core.explain`), handed down by `explain_dataset`: the engine
    #: interface sits below the verbs and imports none of them; a function, so it
    #: pickles by reference to remote workers
    explain: Any = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled for remote workers without the model the caller built: they build
        their own from the path or factory."""
        state = dict(self.__dict__)
        state.pop("prebuilt", None)
        return state

    def build_model(self) -> Any:
        """The model: the one the caller already built in this process, else loaded from a
        path, built by a factory, or the object itself."""
        prebuilt = self.__dict__.get("prebuilt")
        if prebuilt is not None:
            return prebuilt
        if isinstance(self.model, (str, os.PathLike)):
            from .loading import load_model

            return load_model(self.model, trust=self.trust)
        if is_factory(self.model):
            return self.model()
        return self.model

    def explain_batch(self, model: Any, batch: Batch) -> dict[str, np.ndarray]:
        """Explain one batch; returns the arrays to store, by store path."""
        explain = self.explain
        if explain is None:
            raise XaiError(
                "this DatasetJob was built without the explain verb; xai_core.explain_dataset "
                "builds jobs with one (DatasetJob(..., explain=xai_core.explain))."
            )
        options = dict(self.options)
        if self.seed is not None:
            options["seed"] = batch_seed(self.seed, batch.index)
        target = batch.target if batch.target is not None else self.target
        explanation = explain(
            model,
            batch.inputs,
            self.method,
            target=target,
            forward_kwargs=self._kwargs_for(batch),
            output=self.output,
            progress=False,
            **options,
        )
        arrays: dict[str, np.ndarray] = {
            "predictions": np.asarray(explanation.predictions),
            "target": np.asarray(explanation.target),
        }
        _put_structured(arrays, "attributions", explanation.attributions)
        if self.store_inputs:
            _put_structured(arrays, "inputs", batch.inputs)
        if explanation.convergence_delta is not None:
            arrays["convergence_delta"] = np.asarray(explanation.convergence_delta)
        for layer, value in explanation.activations.items():
            arrays[f"activations/{store_key(layer)}"] = np.asarray(value)
        return arrays

    def _kwargs_for(self, batch: Batch) -> dict[str, Any] | None:
        """forward_kwargs with one row per data row are cut with their batch."""
        if not self.forward_kwargs:
            return self.forward_kwargs
        cut = {}
        for name, value in self.forward_kwargs.items():
            shape = getattr(value, "shape", None)
            if self.n_rows is not None and shape and len(shape) >= 1 and shape[0] == self.n_rows:
                cut[name] = np.asarray(value)[batch.start : batch.start + len(batch)]
            else:
                cut[name] = value
        return cut


def store_key(name: Any) -> str:
    """A layer's or an input's name as one Zarr key: '/' would nest groups and '..'
    is refused by zarr (an ONNX node is often named '/conv1/Conv_output_0'), so they are
    percent-encoded; `urllib.parse.unquote` gives the name back."""
    key = str(name).replace("%", "%25").replace("/", "%2F").replace("\\", "%5C")
    return "%2E" + key[1:] if key.startswith(".") else key or "%00"


def _put_structured(arrays: dict[str, np.ndarray], name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, part in value.items():
            arrays[f"{name}/{store_key(key)}"] = np.asarray(part)
    elif isinstance(value, (tuple, list)):
        for i, part in enumerate(value):
            arrays[f"{name}/{i}"] = np.asarray(part)
    else:
        arrays[name] = np.asarray(value)


#: what an engine calls for every finished batch: (batch index, first row, arrays)
Commit = Callable[[int, int, dict[str, np.ndarray]], None]


class Engine(ABC):
    """Base class of the engines `explain_dataset(engine=...)` can use."""

    name: ClassVar[str]
    #: options the engine accepts from `explain_dataset(engine_options=...)`
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **options: Any) -> None:
        from .errors import OptionError

        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise OptionError(
                f"engine {self.name!r} has no option {', '.join(map(repr, unknown))}; its "
                f"options are: {', '.join(sorted(self.defaults)) or 'none'}."
            )
        self.options = {**self.defaults, **options}

    @abstractmethod
    def run(
        self, job: DatasetJob, source: Source, todo: Iterator[Batch] | list[int], commit: Commit
    ) -> None:
        """Explain the batches not done yet and `commit` each as it finishes.

        `todo` is the batches themselves (read in order by the caller's source) for
        engines that take them from this process, or their indices when the source has
        random access (`source.random_access`)."""
