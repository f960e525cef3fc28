"""Cutting work into `internal_batch_size` rows, once, for every explainer and backend.

Explainers call a `BatchedModel` exactly as they would call an adapter; it
splits the rows, calls the adapter per chunk and joins the results. Backends
therefore never chunk, and explainers never chunk either.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from .adapter import LayerInfo, ModelAdapter


class BatchedModel:
    """An adapter seen through fixed-size row chunks."""

    def __init__(self, adapter: ModelAdapter, batch_size: int | None = None) -> None:
        self.adapter = adapter
        self.batch_size = batch_size

    @property
    def backend(self) -> str:
        return self.adapter.backend

    def _chunks(self, n: int) -> list[slice]:
        size = self.batch_size or max(n, 1)
        return [slice(i, min(i + size, n)) for i in range(0, n, size)]

    def _map(self, fn: Callable[[slice], np.ndarray], n: int) -> np.ndarray:
        parts = [fn(rows) for rows in self._chunks(n)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        out = self._map(lambda rows: np.asarray(self.adapter.forward(inputs[rows])), len(inputs))
        return out.reshape(len(inputs), -1) if out.ndim == 1 else out

    def gradients(self, inputs: np.ndarray, target: np.ndarray) -> np.ndarray:
        return self._map(lambda r: self.adapter.gradients(inputs[r], target[r]), len(inputs))

    def capture(self, inputs: np.ndarray, layers: Sequence[str]) -> dict[str, np.ndarray]:
        parts = [self.adapter.capture(inputs[rows], layers) for rows in self._chunks(len(inputs))]
        return {name: np.concatenate([p[name] for p in parts], axis=0) for name in layers}

    def layer_gradients(
        self, inputs: np.ndarray, target: np.ndarray, layer: str
    ) -> tuple[np.ndarray, np.ndarray]:
        parts = [
            self.adapter.layer_gradients(inputs[r], target[r], layer)
            for r in self._chunks(len(inputs))
        ]
        return (
            np.concatenate([a for a, _ in parts], axis=0),
            np.concatenate([g for _, g in parts], axis=0),
        )

    def gradients_of_blocks(
        self, blocks: Iterable[np.ndarray], target: np.ndarray
    ) -> Iterator[np.ndarray]:
        """Input gradients for a stream of blocks shaped like the batch, in order.

        Methods that expand a batch (n_steps interpolations, n_samples noisy copies)
        hand their blocks over lazily; blocks are grouped so that one adapter call
        sees at most `batch_size` rows, so the expanded rows never have to exist at
        once. Without a `batch_size`, all blocks go in one call, as in Captum.
        """
        n = len(target)
        per_call = max(1, self.batch_size // n) if self.batch_size else None
        pending: list[np.ndarray] = []

        def flush() -> list[np.ndarray]:
            rows = pending[0] if len(pending) == 1 else np.concatenate(pending)
            grads = self.gradients(rows, np.tile(target, len(pending)))
            count = len(pending)
            pending.clear()
            return np.split(grads, count) if count > 1 else [grads]

        for block in blocks:
            pending.append(block)
            if per_call is not None and len(pending) == per_call:
                yield from flush()
        if pending:
            yield from flush()

    def layers(self) -> list[LayerInfo]:
        return self.adapter.layers()

    def check_layers(self, names: Sequence[str]) -> None:
        self.adapter.check_layers(names)


class Remembered:
    """Iterates a stream of blocks and keeps each until `pop()` hands it back.

    Lets an explainer pair each block with its gradients from
    `gradients_of_blocks` while holding only the blocks of one call in memory.
    """

    def __init__(self, blocks: Iterable[np.ndarray]) -> None:
        self._blocks = iter(blocks)
        self._kept: collections.deque[np.ndarray] = collections.deque()

    def __iter__(self) -> Remembered:
        return self

    def __next__(self) -> np.ndarray:
        block = next(self._blocks)
        self._kept.append(block)
        return block

    def pop(self) -> np.ndarray:
        return self._kept.popleft()
