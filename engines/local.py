"""`engine="local"`: the batches in this process, one after the other.

The model is built once; each batch is read, explained and committed before the next
is read, so memory holds one batch (and its results) at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

from xai_core import hookimpl
from xai_core.data_sources import Batch, Source
from xai_core.engine import Commit, DatasetJob, Engine


class LocalEngine(Engine):
    name = "local"

    def run(
        self, job: DatasetJob, source: Source, todo: Iterator[Batch] | list[int], commit: Commit
    ) -> None:
        model = job.build_model()
        for item in todo:
            batch = source.batch(item, job.batch_size) if isinstance(item, int) else item
            commit(batch.index, batch.start, job.explain_batch(model, batch))


@hookimpl
def xai_engines() -> list[type[Engine]]:
    return [LocalEngine]
