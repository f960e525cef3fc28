"""Content hashes that tell one model or one dataset from another, for resuming a store.

A store may only be resumed by the run that started it: the same weights and the same
data, byte for byte. Hashing reads everything once (SHA-256, a few hundred MB/s to
GB/s), which is far cheaper than explaining it, so the whole content is hashed: no
sampled rows, no modification times (a copied dataset keeps its hash, an edited one
does not)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from typing import Any

import numpy as np

#: bytes hashed per read: bounded memory whatever the size of the file or array
CHUNK_BYTES = 1 << 22


def file_digest(paths: Iterable[str | os.PathLike[str]]) -> str:
    """SHA-256 of the files' contents (and their order), read in chunks."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while block := f.read(CHUNK_BYTES):
                digest.update(block)
        digest.update(b"\0file\0")
    return digest.hexdigest()[:32]


def array_digest(arrays: Iterable[Any]) -> str:
    """SHA-256 of arrays' shapes, dtypes and every row, a chunk of rows at a time (works on
    anything sliceable by rows: NumPy arrays, memmaps, `RowFile`s)."""
    digest = hashlib.sha256()
    for array in arrays:
        shape, dtype = tuple(array.shape), np.dtype(array.dtype)
        digest.update(repr((shape, dtype.str)).encode())
        row_bytes = max(int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize, 1)
        step = max(1, CHUNK_BYTES // row_bytes)
        for start in range(0, shape[0] if shape else 0, step):
            digest.update(np.ascontiguousarray(array[start : start + step]).tobytes())
        if not shape:
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:32]


def model_digest(adapter: Any, path: Any = None) -> str | None:
    """The weights' hash from the backend (`ModelAdapter.fingerprint`), the same whether the
    model came as an object or as a file; a backend that cannot tell falls back on the
    file's bytes, else None (no check: said in the README)."""
    digest = adapter.fingerprint()
    if digest is not None:
        return "weights:" + digest
    if path is not None:
        return "file:" + file_digest(model_files(path))
    return None


def model_files(path: str | os.PathLike[str]) -> list[str]:
    """The files a saved model consists of (a Paddle prefix is several)."""
    path = os.fspath(path)
    if os.path.isfile(path):
        return [path]
    stem = (
        path[: -len(suffix)]
        if (suffix := os.path.splitext(path)[1])
        in (
            ".pdiparams",
            ".pdmodel",
            ".json",
        )
        else path
    )
    return [stem + s for s in (".json", ".pdmodel", ".pdiparams") if os.path.isfile(stem + s)]
