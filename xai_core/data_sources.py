"""Where `explain_dataset` reads its rows: arrays, .npy/.npz files, image folders, Parquet
tables and iterables of batches, all seen as one stream of fixed-size batches.

Files are never read whole: .npy (and uncompressed .npz members) are read row range by
row range with positioned reads (not memory-mapped: see `RowFile`), compressed .npz
members are decompressed as a stream, Parquet is read batch by batch,
images one file at a time. Batches are re-cut to `batch_size` rows whatever the source
yields, so a store's chunks are the same for every source and every engine, and batch
`i` always holds rows `i * batch_size` onwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, XaiError
from .fingerprint import array_digest, file_digest

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: keys of an .npz that hold the inputs, and the targets, in order of preference
NPZ_INPUT_KEYS = ("x", "inputs", "X", "data", "images")
NPZ_TARGET_KEYS = ("y", "target", "targets", "labels", "label")


@dataclass
class Batch:
    """Rows `start` .. `start + len` of the data: inputs (one array, or a tuple/list/dict of
    arrays for several inputs) and their targets when the data carries them."""

    index: int
    start: int
    inputs: Any
    target: np.ndarray | None = None

    def __len__(self) -> int:
        return _rows(self.inputs)


def to_numpy(value: Any) -> np.ndarray:
    """Any framework's tensor (PyTorch, TensorFlow, Paddle) or array-like as NumPy."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch
        value = value.detach().cpu()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    return np.asarray(value)


def _rows(inputs: Any) -> int:
    if isinstance(inputs, Mapping):
        inputs = next(iter(inputs.values()))
    elif isinstance(inputs, (tuple, list)):
        inputs = inputs[0]
    return len(inputs)


def _map(inputs: Any, fn: Any) -> Any:
    if isinstance(inputs, Mapping):
        return {k: fn(v) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(fn(v) for v in inputs)
    return fn(inputs)


def _parts(inputs: Any) -> list[np.ndarray]:
    if isinstance(inputs, Mapping):
        return list(inputs.values())
    if isinstance(inputs, (tuple, list)):
        return list(inputs)
    return [inputs]


class Source:
    """A dataset seen as batches. Subclasses set `kind`, `n_rows` (None if unknown until
    read) and implement `rows(start, stop)` (random access) or `stream()`."""

    kind = "source"
    n_rows: int | None = None
    #: True when workers can read any batch by index (Ray engine, resume without replay)
    random_access = True
    #: targets given next to the data (one per row), for sources that carry none
    row_target: np.ndarray | None = None

    def rows(self, start: int, stop: int) -> tuple[Any, np.ndarray | None]:
        raise NotImplementedError

    def stream(self) -> Iterator[tuple[Any, np.ndarray | None]]:
        """(inputs, target) chunks of any size, in order (sequential sources)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What the data is, for the store's attributes and the resume check."""
        return {"kind": self.kind, "rows": self.n_rows}

    def n_batches(self, batch_size: int) -> int | None:
        return None if self.n_rows is None else -(-self.n_rows // batch_size)

    def batch(self, index: int, batch_size: int) -> Batch:
        start = index * batch_size
        stop = start + batch_size if self.n_rows is None else min(start + batch_size, self.n_rows)
        with reading(getattr(self, "path", None) or self.kind):
            inputs, target = self.rows(start, stop)
        return self._with_target(Batch(index, start, inputs, target))

    def _with_target(self, batch: Batch) -> Batch:
        if batch.target is None and self.row_target is not None:
            batch.target = np.asarray(self.row_target[batch.start : batch.start + len(batch)])
        return batch

    def batches(self, batch_size: int, skip: frozenset[int] = frozenset()) -> Iterator[Batch]:
        """Every batch in order; those in `skip` are not materialised where the source
        allows (random access), else read and dropped."""
        if self.random_access:
            for index in range(self.n_batches(batch_size) or 0):
                if index not in skip:
                    yield self.batch(index, batch_size)
            return
        batches = _rebatch(self.stream(), batch_size, skip)
        while True:
            with reading(getattr(self, "path", None) or self.kind):
                batch = next(batches, None)
            if batch is None:
                return
            yield self._with_target(batch)


def _rebatch(
    chunks: Iterable[tuple[Any, np.ndarray | None]], batch_size: int, skip: frozenset[int]
) -> Iterator[Batch]:
    pending: list[tuple[Any, np.ndarray | None]] = []
    held = 0
    index = start = 0

    def cut(n: int) -> Batch:
        nonlocal pending, held, index, start
        taken, rest, need = [], [], n
        for inputs, target in pending:
            m = _rows(inputs)
            if need >= m:
                taken.append((inputs, target))
                need -= m
            elif need > 0:
                taken.append(
                    (
                        _map(inputs, lambda a, k=need: a[:k]),
                        None if target is None else target[:need],
                    )
                )
                rest.append(
                    (
                        _map(inputs, lambda a, k=need: a[k:]),
                        None if target is None else target[need:],
                    )
                )
                need = 0
            else:
                rest.append((inputs, target))
        pending, held = rest, held - n
        inputs = _concat([t[0] for t in taken])
        targets = [t[1] for t in taken]
        target = None if any(t is None for t in targets) else np.concatenate(targets)
        batch = Batch(index, start, inputs, target)
        index, start = index + 1, start + n
        return batch

    for inputs, target in chunks:
        if _rows(inputs) == 0:
            continue
        pending.append((inputs, target))
        held += _rows(inputs)
        while held >= batch_size:
            batch = cut(batch_size)
            if batch.index not in skip:
                yield batch
    if held:
        batch = cut(held)
        if batch.index not in skip:
            yield batch


def _concat(parts: list[Any]) -> Any:
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, Mapping):
        return {k: np.concatenate([p[k] for p in parts]) for k in first}
    if isinstance(first, (tuple, list)):
        return type(first)(np.concatenate([p[i] for p in parts]) for i in range(len(first)))
    return np.concatenate(parts)


class ArraySource(Source):
    """In-memory arrays or `RowFile`s (one, or several inputs), with optional targets."""

    kind = "array"

    def __init__(self, inputs: Any, target: np.ndarray | None = None, path: str | None = None):
        self.inputs = inputs
        self.target = target
        self.path = path
        self.n_rows = _rows(inputs)
        sizes = {len(a) for a in _parts(inputs)}
        if len(sizes) != 1:
            raise InputError(f"the inputs have different numbers of rows: {sorted(sizes)}.")
        if target is not None and len(target) != self.n_rows:
            raise InputError(f"{len(target)} targets for {self.n_rows} rows.")

    def rows(self, start: int, stop: int) -> tuple[Any, np.ndarray | None]:
        inputs = _map(self.inputs, lambda a: np.array(a[start:stop]))  # a copy, never a view
        return inputs, None if self.target is None else np.array(self.target[start:stop])

    def describe(self) -> dict[str, Any]:
        parts = _parts(self.inputs)
        return {
            "kind": self.kind,
            "path": self.path,
            "rows": self.n_rows,
            "shapes": [list(a.shape[1:]) for a in parts],
            "dtypes": [str(a.dtype) for a in parts],
            "targets": self.target is not None,
            # a file's every byte, or every row of the arrays: an edit anywhere is seen
            "fingerprint": _parts_digest(parts),
            "target_fingerprint": None if self.target is None else array_digest([self.target]),
        }


def _parts_digest(parts: list[Any]) -> str:
    """Arrays by content; rows read from a file by the whole file's bytes (faster, and an
    edit outside the rows read, in a header or another .npz member, is seen too)."""
    return "/".join(
        file_digest([p.path]) if isinstance(p, RowFile) else array_digest([p]) for p in parts
    )


class RowFile:
    """Rows of an array stored raw in a file (a .npy, an uncompressed .npz member), read
    with positioned reads. Never memory-mapped: the pages a map has touched count as the
    process's resident memory, so one pass over a mapped file grows it by the file's
    size (measured: 185 MB for a 191 MB .npy); here only the rows asked for are held.
    Pickles as its path, so workers read the file themselves."""

    def __init__(self, path: str, offset: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path, self.offset, self.shape, self.dtype = path, offset, tuple(shape), dtype
        self.ndim = len(self.shape)
        self._row_items = int(np.prod(self.shape[1:], dtype=np.int64))

    @classmethod
    def npy(cls, path: str) -> RowFile:
        with open(path, "rb") as f:
            shape, dtype = _npy_header(f)
            offset = f.tell()
        rows = cls(path, offset, shape, dtype)
        rows.check_size(os.path.getsize(path) - offset)
        return rows

    def check_size(self, available: int) -> None:
        """The header's shape must fit the bytes that follow it (a truncated file, or a
        header edited to claim more rows, is refused before any row is read)."""
        needed = self.shape[0] * self._row_items * self.dtype.itemsize
        if needed != available:
            raise InputError(
                f"{self.path}: its header says {self.shape} {self.dtype} ({needed} bytes), but "
                f"{available} bytes follow it: the file is truncated or damaged."
            )

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, item: int | slice) -> np.ndarray:
        if isinstance(item, (int, np.integer)):
            return self[int(item) : int(item) + 1][0]
        start, stop, step = item.indices(len(self))
        if step != 1:
            raise IndexError("RowFile reads contiguous rows only")
        n = max(stop - start, 0)
        offset = self.offset + start * self._row_items * self.dtype.itemsize
        with open(self.path, "rb") as f:
            data = np.fromfile(f, self.dtype, n * self._row_items, offset=offset)
        return data.reshape(n, *self.shape[1:])


class StreamedNpzMember(Source):
    """A compressed .npz member, decompressed as a stream (never held whole)."""

    kind = "npz-stream"
    random_access = False

    def __init__(self, path: str, key: str, target: np.ndarray | None) -> None:
        self.path, self.key, self.target = path, key, target
        with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as f:
            self.shape, self.dtype = _npy_header(f)
        self.n_rows = self.shape[0]

    def stream(self) -> Iterator[tuple[Any, np.ndarray | None]]:
        row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        chunk = max(1, (1 << 22) // max(row_bytes, 1))
        with zipfile.ZipFile(self.path) as zf, zf.open(f"{self.key}.npy") as f:
            _npy_header(f)
            start = 0
            while start < self.n_rows:
                n = min(chunk, self.n_rows - start)
                data = np.frombuffer(f.read(n * row_bytes), self.dtype).reshape(n, *self.shape[1:])
                target = None if self.target is None else self.target[start : start + n]
                yield data.copy(), target
                start += n

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "key": self.key,
            "rows": self.n_rows,
            "shapes": [list(self.shape[1:])],
            "dtypes": [str(self.dtype)],
            "targets": self.target is not None,
            "size": os.path.getsize(self.path),
            "fingerprint": file_digest([self.path]),
        }


def _npy_header(f: Any) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    reader = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, fortran, dtype = reader(f)
    if fortran:
        raise InputError("Fortran-ordered arrays cannot be read by rows; save them C-ordered.")
    if dtype.hasobject or dtype.kind not in "biuf":
        raise InputError(
            f"the array holds {dtype} values, not numbers"
            + (" (Python objects: reading them would unpickle code)" if dtype.hasobject else "")
            + ". Save a numeric array."
        )
    if not shape or any(int(n) < 0 for n in shape):
        raise InputError(f"the array has shape {shape}: batch first, at least one axis.")
    return tuple(int(n) for n in shape), dtype


def _npz_member(path: str, zf: zipfile.ZipFile, key: str) -> RowFile | None:
    """A stored (uncompressed) .npz member read in place, or None if it is compressed."""
    info = zf.getinfo(f"{key}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as raw:
        raw.seek(info.header_offset)
        local = raw.read(30)
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        start = info.header_offset + 30 + name_len + extra_len
        raw.seek(start)
        shape, dtype = _npy_header(raw)
        offset = raw.tell()
    rows = RowFile(path, offset, shape, dtype)
    rows.check_size(info.file_size - (offset - start))
    return rows


def npz_source(path: str) -> Source:
    with zipfile.ZipFile(path) as zf:
        keys = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
        if not keys:
            raise InputError(f"{path} holds no arrays.")
        x_key = next((k for k in NPZ_INPUT_KEYS if k in keys), keys[0])
        y_key = next((k for k in NPZ_TARGET_KEYS if k in keys and k != x_key), None)
        target = None
        if y_key is not None:
            target = np.asarray(np.load(path)[y_key])  # targets are small: one int per row
        inputs = _npz_member(path, zf, x_key)
    if inputs is None:
        return StreamedNpzMember(path, x_key, target)
    return ArraySource(inputs, target, path=f"{path}:{x_key}")


class ImageFolderSource(Source):
    """Image files (sorted, recursively), one at a time, as float32 in [0, 1]."""

    kind = "images"

    def __init__(self, path: str, channels_last: bool) -> None:
        self.path = path
        self.channels_last = channels_last
        self.files = sorted(
            p for p in Path(path).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not self.files:
            raise InputError(f"the folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
        self.n_rows = len(self.files)
        self.sample_shape = self._load(self.files[0]).shape

    def _load(self, file: Path) -> np.ndarray:
        from PIL import Image

        with Image.open(file) as image:
            array = np.asarray(image.convert("RGB" if image.mode not in ("L", "I;16") else "L"))
        array = array.astype(np.float32) / (65535.0 if array.dtype == np.uint16 else 255.0)
        if array.ndim == 2:
            array = array[..., None]
        return array if self.channels_last else np.ascontiguousarray(array.transpose(2, 0, 1))

    def rows(self, start: int, stop: int) -> tuple[Any, np.ndarray | None]:
        images = [self._load(f) for f in self.files[start:stop]]
        shapes = {i.shape for i in images} | {self.sample_shape}
        if len(shapes) != 1:
            raise InputError(
                f"the images in {self.path} have different sizes ({sorted(shapes)[:3]}); "
                "resize them to one size first (the model takes a fixed shape)."
            )
        return np.stack(images), None

    def describe(self) -> dict[str, Any]:
        digest = hashlib.sha256()
        for f in self.files:
            digest.update(str(f.relative_to(self.path)).encode())
            digest.update(file_digest([f]).encode())
        return {
            "kind": self.kind,
            "path": self.path,
            "rows": self.n_rows,
            "shapes": [list(self.sample_shape)],
            "dtypes": ["float32"],
            "targets": False,
            "fingerprint": digest.hexdigest()[:16],
        }


class ParquetSource(Source):
    """A Parquet table: the feature columns (all numeric ones but the target's) as float32."""

    kind = "parquet"
    random_access = False

    def __init__(self, path: str, target: Any = None) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.file = pq.ParquetFile(path)
        schema = self.file.schema_arrow
        self.target_column = target if isinstance(target, str) and target in schema.names else None
        self.columns = [f.name for f in schema if f.name != self.target_column and _numeric(f.type)]
        if not self.columns:
            raise InputError(f"{path} has no numeric feature columns.")
        self.n_rows = self.file.metadata.num_rows

    def stream(self) -> Iterator[tuple[Any, np.ndarray | None]]:
        wanted = self.columns + ([self.target_column] if self.target_column else [])
        for record in self.file.iter_batches(batch_size=4096, columns=wanted):
            x = np.column_stack(
                [record.column(c).to_numpy(zero_copy_only=False) for c in self.columns]
            ).astype(np.float32)
            y = None
            if self.target_column:
                y = record.column(self.target_column).to_numpy(zero_copy_only=False)
            yield x, y

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "rows": self.n_rows,
            "columns": self.columns,
            "target_column": self.target_column,
            "shapes": [[len(self.columns)]],
            "dtypes": ["float32"],
            "size": os.path.getsize(self.path),
            "fingerprint": file_digest([self.path]),
        }


def _numeric(arrow_type: Any) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_boolean(arrow_type)
    )


class IterableSource(Source):
    """Batches from a DataLoader, a tf.data.Dataset, a Paddle DataLoader or any iterable of
    arrays, tuples/dicts of arrays (several inputs) or (inputs, target) pairs."""

    kind = "iterable"
    random_access = False

    def __init__(self, data: Iterable[Any]) -> None:
        self.data = data
        self.n_rows = None
        self.type = f"{type(data).__module__}.{type(data).__qualname__}"

    def stream(self) -> Iterator[tuple[Any, np.ndarray | None]]:
        for item in self.data:
            yield split_item(item)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "type": self.type, "rows": None}


def split_item(item: Any) -> tuple[Any, np.ndarray | None]:
    """(inputs, target) from one batch of an iterable: a pair is a tuple/list of two whose
    second element is one integer per row; anything else is the inputs."""
    if isinstance(item, (tuple, list)) and len(item) == 2:
        second = to_numpy(item[1])
        first = item[0]
        rows = _rows(first) if isinstance(first, (tuple, list, Mapping)) else len(to_numpy(first))
        if second.ndim == 1 and second.dtype.kind in "iu" and len(second) == rows:
            return _map(first, to_numpy), second
    if isinstance(item, Mapping):
        return {k: to_numpy(v) for k, v in item.items()}, None
    if isinstance(item, (tuple, list)):
        return type(item)(to_numpy(v) for v in item), None
    return to_numpy(item), None


@contextlib.contextmanager
def reading(what: Any) -> Iterator[None]:
    """Whatever a reader raises on damaged or odd data (NumPy's ValueError, zipfile's
    BadZipFile, Arrow's ArrowInvalid, PIL's UnidentifiedImageError and
    DecompressionBombError, an OverflowError from a crafted header, a ragged batch) is
    an `InputError` naming the data."""
    try:
        yield
    except XaiError:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader's own errors (RecursionError too)
        shown = what if isinstance(what, (str, os.PathLike)) else type(what).__name__
        raise InputError(
            f"cannot read the data ({shown}): {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc


def open_source(data: Any, *, target: Any = None, channels_last: bool = False) -> Source:
    """The `Source` for whatever `explain_dataset` was given."""
    if isinstance(data, Source):
        return data
    if isinstance(data, (bytes, bytearray, memoryview, int, float, complex, np.generic)):
        raise InputError(
            f"data is {type(data).__name__}, not a dataset: give an array (rows first), a "
            ".npy/.npz path, a folder of images, a Parquet table or an iterable of batches."
        )
    with reading(data):
        source = _open(data, target, channels_last)
    given = _row_target(target)
    if given is not None and source.row_target is None and not _carries_target(source):
        if source.n_rows is not None and len(given) != source.n_rows:
            raise InputError(f"{len(given)} targets for {source.n_rows} rows of data.")
        source.row_target = given
    return source


def _carries_target(source: Source) -> bool:
    return getattr(source, "target", None) is not None


def _open(data: Any, target: Any, channels_last: bool) -> Source:
    if isinstance(data, (str, os.PathLike)):
        path = os.fspath(data)
        if os.path.isdir(path):
            return ImageFolderSource(path, channels_last)
        if not os.path.exists(path):
            raise InputError(f"no such data file or folder: {path!r}.")
        suffix = Path(path).suffix.lower()
        if suffix == ".npy":
            return ArraySource(RowFile.npy(path), _row_target(target), path=path)
        if suffix == ".npz":
            return npz_source(path)
        if suffix in (".parquet", ".pq"):
            return ParquetSource(path, target)
        raise InputError(
            f"cannot read {path!r}: give a .npy/.npz file, a folder of images, a Parquet "
            "table, an array, or an iterable of batches."
        )
    if isinstance(data, Mapping) and data:  # several named inputs: each one an array
        return ArraySource(
            {k: _numeric_rows(to_numpy(v), k) for k, v in data.items()}, _row_target(target)
        )
    if isinstance(data, np.ndarray) or (
        isinstance(data, (tuple, list))
        and data
        and all(isinstance(v, np.ndarray) for v in _parts(data))
    ):
        return ArraySource(data, _row_target(target))
    if hasattr(data, "__iter__") and not hasattr(data, "shape"):
        return IterableSource(data)
    return ArraySource(_numeric_rows(to_numpy(data), "data"), _row_target(target))


def _numeric_rows(array: np.ndarray, name: Any) -> np.ndarray:
    if array.dtype.kind not in "biuf" or array.ndim == 0:
        raise InputError(
            f"{name} is {array.dtype} of shape {array.shape}, not rows of numbers: give an "
            "array with one row per sample."
        )
    return array


def _row_target(target: Any) -> np.ndarray | None:
    """A target with one value per row of the data travels with its rows."""
    if target is None or isinstance(target, (int, tuple, str)):
        return None
    array = np.asarray(target)
    return array if array.ndim >= 1 else None
