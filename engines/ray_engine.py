"""`engine="ray"`: the batches on a Ray cluster (a local one when no address is given).

Each worker is an actor that builds the model once (`DatasetJob.build_model`: a path or a
factory, so nothing framework-specific crosses the wire) and explains the batches it is
given; the driver commits every finished batch to the store, so the store has one
writer and the same layout as the local engine's. Sources that workers can read by
index (arrays, .npy/.npz, image folders) go through Ray Data (`map_batches` over batch
indices with an actor pool: streaming, with Ray Data's back-pressure); sequential
sources (iterables, Parquet, compressed .npz) are read here and handed to an actor
pool with at most two batches in flight per worker. Ray is imported only here.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np

from xai_core import hookimpl
from xai_core.data_sources import Batch, Source
from xai_core.engine import Commit, DatasetJob, Engine
from xai_core.errors import XaiError


class _Worker:
    """One actor: the model built once, batches explained on request."""

    def __init__(self, job: DatasetJob, source: Source | None = None) -> None:
        self.job = job
        self.source = source
        self.model = job.build_model()

    def explain(self, batch: Batch) -> tuple[int, int, dict[str, np.ndarray]]:
        return batch.index, batch.start, self.job.explain_batch(self.model, batch)

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data's map_batches: batch indices in, pickled results out."""
        assert self.source is not None
        out = []
        for index in rows["index"]:
            batch = self.source.batch(int(index), self.job.batch_size)
            out.append(pickle.dumps(self.explain(batch), protocol=5))
        return {"result": np.array(out, dtype=object)}


class RayEngine(Engine):
    name = "ray"
    defaults = {"address": None, "num_workers": 2, "num_cpus": 1, "num_gpus": None}

    def run(
        self, job: DatasetJob, source: Source, todo: Iterator[Batch] | list[int], commit: Commit
    ) -> None:
        try:
            import ray
        except ImportError as exc:
            raise XaiError(
                'engine="ray" needs Ray: pip install "xai-core[ray]" (or ray[data]).'
            ) from exc
        started = not ray.is_initialized()
        if started:
            ray.init(  # no address: a new local Ray, never one found running by chance
                address=self.options["address"] or "local",
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
            )
        try:
            if isinstance(todo, list):
                self._run_indexed(ray, job, source, todo, commit)
            else:
                self._run_streamed(ray, job, todo, commit)
        except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, XaiError):  # the worker's own clear error: as it was
                raise cause from exc
            raise XaiError(
                f"a Ray worker failed or died ({type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}). The "
                "batches finished before are committed: rerun the same call to resume."
            ) from exc
        finally:
            if started:
                ray.shutdown()

    def _actor_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.options["num_cpus"]}
        if self.options["num_gpus"]:
            options["num_gpus"] = self.options["num_gpus"]
        return options

    def _run_indexed(
        self, ray: Any, job: DatasetJob, source: Source, todo: list[int], commit: Commit
    ) -> None:
        if not todo:
            return
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the driver's one bar counts rows
        items = [{"index": i} for i in todo]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _Worker,
            fn_constructor_kwargs={"job": job, "source": source},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.options["num_workers"]),
            **self._actor_options(),
        )
        for row in dataset.iter_rows():
            commit(*pickle.loads(row["result"]))

    def _run_streamed(
        self, ray: Any, job: DatasetJob, todo: Iterator[Batch], commit: Commit
    ) -> None:
        actor = ray.remote(**self._actor_options())(_Worker)
        actors = [actor.remote(job) for _ in range(self.options["num_workers"])]
        pool = ray.util.ActorPool(actors)
        limit = 2 * len(actors)
        in_flight = 0
        for batch in todo:
            if in_flight >= limit:
                commit(*pool.get_next_unordered())
                in_flight -= 1
            pool.submit(lambda a, b: a.explain.remote(b), batch)
            in_flight += 1
        while pool.has_next():
            commit(*pool.get_next_unordered())


@hookimpl
def xai_engines() -> list[type[Engine]]:
    return [RayEngine]
