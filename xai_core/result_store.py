"""The Zarr store of `explain_dataset`: created only where nothing of the user's is lost,
verified whenever it is opened, repaired by resuming.

Layout: one array per result (`attributions`, `predictions`, `target`, ...; a group
for several inputs and for activations), one chunk per batch along the rows, each
chunk zstd-compressed and CRC32C-checksummed, and `_done`, one flag per batch, set
after the batch's chunks are written (zarr writes a chunk atomically: a temporary file
renamed). The attributes hold the run's identity (model weights' hash, method,
options, seed, data fingerprint...) and the schema (dtype and row shape of every array).

Safety rules:
- a folder is only ever written if it is new, empty, or recognisably a store of this
  library; with `overwrite=True` only a store's own entries are deleted, never a file
  that is not a store's (a folder holding other files is refused, whatever the flag);
- opening verifies the schema, the shapes, and that every flagged batch has all its
  chunks; resuming also reads every flagged batch back (checksums) and recomputes the
  batches that are missing or unreadable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

import numpy as np

from .errors import OptionError, XaiError
from .explanation import Explanation

FORMAT = "xai_core.dataset/1"
DONE = "_done"
#: held (flock) by the run writing a local store: a second run into it is refused
LOCK = ".xai_lock"
#: every entry a store's folder may hold; anything else is the user's and is never touched
STORE_MEMBERS = frozenset(
    {
        "zarr.json",
        DONE,
        LOCK,
        "attributions",
        "predictions",
        "target",
        "convergence_delta",
        "activations",
        "inputs",
    }
)
REQUIRED_ATTRS = ("format", "identity", "method", "options", "complete")


class StoreError(XaiError, IndexError):
    """A store is damaged, is not a store, or was indexed out of range."""


def _filesystem(location: str) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(location)
    except (ValueError, ImportError) as exc:
        raise XaiError(
            f"cannot open {location!r}: {exc}. Use a local folder or an fsspec URL whose "
            "filesystem is installed (s3:// needs s3fs, gs:// needs gcsfs)."
        ) from exc


def _entries(fs: Any, root: str) -> list[str] | None:
    """Names in the folder `root`, or None when nothing is there."""
    if not fs.exists(root):
        return None
    if fs.isfile(root):
        raise XaiError(
            f"out={root!r} is a file, not a folder: explain_dataset writes a Zarr store "
            "(a folder). Pick another out=, e.g. 'results.zarr'."
        )
    here = root.rstrip("/")
    listed = (str(e).rstrip("/") for e in fs.ls(root, detail=False))
    return sorted({e.rsplit("/", 1)[-1] for e in listed if e and e != here})


def _read_attrs(location: str) -> tuple[dict[str, Any] | None, str | None]:
    """(attributes, None) of a readable store of ours, else (None, why not)."""
    import zarr

    try:
        attrs = dict(zarr.open_group(location, mode="r").attrs)
    except Exception as exc:  # noqa: BLE001 - unreadable zarr.json: JSON, KeyError, ...
        return None, f"its zarr.json cannot be read ({type(exc).__name__})"
    if attrs.get("format") != FORMAT:
        return None, "it is a Zarr group, but not one written by explain_dataset"
    missing = [k for k in REQUIRED_ATTRS if k not in attrs]
    if missing:
        return None, f"its attributes lack {', '.join(missing)}"
    if not isinstance(attrs["identity"], dict) or "batch_size" not in attrs["identity"]:
        return None, "its identity attribute is damaged"
    return attrs, None


def store_location(out: Any) -> str:
    """A local path, or an fsspec URL for any other filesystem (s3://, gs://, memory://)."""
    if not isinstance(out, (str, os.PathLike)):
        raise OptionError(f"out= must be a folder path or URL, got {type(out).__name__}.")
    location = os.fspath(out)
    if not isinstance(location, str):
        raise OptionError("out= must be a str path or URL, not bytes.")
    if location.startswith("file://"):
        location = location[len("file://") :]
    if not location.strip():
        raise OptionError("out= is empty: name a new folder for the store, e.g. out='ig.zarr'.")
    return location


def _batch_rows(index: int, batch_size: int, total: int | None) -> slice:
    start = index * batch_size
    stop = start + batch_size if total is None else min(start + batch_size, total)
    return slice(start, stop)


class ResultStore:
    """The Zarr group being written: arrays created from the first batch's results."""

    def __init__(self, group: Any, location: str) -> None:
        self.group = group
        self.location = location
        self.lock = StoreLock(None)
        identity = dict(group.attrs)["identity"]
        self.batch_size = int(identity["batch_size"])
        self.n_rows = identity["data"].get("rows")
        self._arrays: dict[str, Any] = {}  # handles, opened once (each lookup reads metadata)

    @classmethod
    def open(
        cls, location: str, identity: dict[str, Any], overwrite: bool, shown: Any = None
    ) -> ResultStore:
        """The store at `location`: resumed if it holds this run, new if nothing is there;
        anything else is refused (see the module's safety rules)."""
        shown = location if shown is None else shown
        fs, root = _filesystem(location)
        try:
            cls._store_entries(fs, root, shown)  # refuses a user's folder before writing in it
        except XaiError:
            # a run holding the lock may be mid-write (zarr's atomic temporary files): that
            # is the other run's store, said so, not a user's folder
            if StoreLock.held(fs, root):
                raise StoreLock.busy(shown) from None
            cls._store_entries(fs, root, shown)  # afresh: that run may have just finished
        lock = StoreLock.acquire(fs, root, shown)
        try:
            store = cls._open_locked(fs, root, location, identity, overwrite, shown)
        except BaseException:
            lock.release()
            raise
        store.lock = lock
        return store

    @staticmethod
    def _store_entries(fs: Any, root: str, shown: Any) -> list[str]:
        """The entries of a store's folder (none: a new store), the lock left out;
        anything that is not a store's is refused."""
        try:
            entries = [e for e in _entries(fs, root) or [] if e != LOCK]
        except OSError as exc:
            raise XaiError(f"cannot read out={shown!r}: {exc}") from exc
        foreign = [e for e in entries if e not in STORE_MEMBERS]
        if entries and (foreign or "zarr.json" not in entries):
            listed = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise XaiError(
                f"out={shown!r} already holds files that are not an explain_dataset "
                f"store's ({listed or 'no zarr.json'}). explain_dataset never deletes "
                "them, overwrite=True included: pick a new or empty folder."
            )
        return entries

    @classmethod
    def _open_locked(
        cls,
        fs: Any,
        root: str,
        location: str,
        identity: dict[str, Any],
        overwrite: bool,
        shown: Any,
    ) -> ResultStore:
        entries = cls._store_entries(fs, root, shown)  # again, now that the lock is held
        if entries:
            attrs, damage = _read_attrs(location)
            if not overwrite:
                if attrs is None:
                    raise XaiError(
                        f"out={shown!r} looks like an explain_dataset store but {damage}. "
                        "Pass overwrite=True to recompute it from scratch (only the store's "
                        "own entries are deleted), or pick another out=."
                    )
                cls._check_identity(attrs, identity, shown)
                store = cls(_open_group(location, "a", shown), location)
                store.repair()
                return store
            for name in entries:  # only a store's own entries (not the lock): checked above
                fs.rm(f"{root.rstrip('/')}/{name}", recursive=True)
        return cls._create(location, identity, shown)

    @staticmethod
    def _check_identity(attrs: dict[str, Any], identity: dict[str, Any], shown: Any) -> None:
        stored = json.loads(json.dumps(attrs.get("identity")))
        wanted = json.loads(json.dumps(identity))
        if stored != wanted:
            changed = sorted(k for k in set(wanted) | set(stored) if stored.get(k) != wanted.get(k))
            raise XaiError(
                f"{shown} holds results of another run (different {', '.join(changed)}); "
                "resuming would mix them. Pick another out=, or pass overwrite=True to "
                "start again."
            )

    @classmethod
    def _create(cls, location: str, identity: dict[str, Any], shown: Any) -> ResultStore:
        from ._version import __version__

        group = _open_group(location, "a", shown)
        try:
            group.attrs.update(
                {
                    "format": FORMAT,
                    "identity": identity,
                    "method": identity["method"],
                    "options": identity["options"],
                    "data": identity["data"],
                    "versions": {"xai_core": __version__, "numpy": np.__version__},
                    "schema": {},
                    "complete": False,
                }
            )
        except OSError as exc:
            raise XaiError(f"cannot write the store at out={shown!r}: {exc}") from exc
        return cls(group, location)

    # -- verification -------------------------------------------------------------
    @property
    def schema(self) -> Any:
        """{array path: {"dtype", "shape"}}; whatever is there if damaged (see problems)."""
        value = self.group.attrs.get("schema") or {}
        return dict(value) if isinstance(value, dict) else value

    def problems(self, deep: bool = False) -> tuple[list[str], set[int] | None]:
        """(what is wrong, the flagged batches to recompute; None = every batch)."""
        done = self.done_or_none()
        if done is None:
            return ["the _done flags cannot be read"], None
        schema = self.schema
        if not isinstance(schema, dict) or not all(
            isinstance(spec, dict) and {"dtype", "shape"} <= set(spec) for spec in schema.values()
        ):
            return ["the schema attribute is damaged"], None
        if done and not {"predictions", "target"} <= set(schema):
            return ["arrays listed in the schema are missing"], None
        problems: list[str] = []
        rows = None
        for path, spec in schema.items():
            array = self._open_array(path)
            if array is None:
                return [f"array {path!r} is missing or unreadable"], None
            expected_tail = tuple(spec["shape"])
            if str(array.dtype) != spec["dtype"] or tuple(array.shape[1:]) != expected_tail:
                return [
                    f"array {path!r} is {array.dtype} {tuple(array.shape)}, the schema says "
                    f"{spec['dtype']} (rows, {', '.join(map(str, expected_tail))})"
                ], None
            if array.chunks[0] != self.batch_size:
                return [f"array {path!r} is chunked by {array.chunks[0]} rows"], None
            rows = array.shape[0] if rows is None else rows
            if array.shape[0] != rows or (self.n_rows is not None and rows != self.n_rows):
                wanted = self.n_rows or rows
                return [f"array {path!r} has {array.shape[0]} rows, not {wanted}"], None
        if self.group.attrs.get("complete") and rows is not None:
            missing = sorted(set(range(-(-rows // self.batch_size))) - done)
            if missing:
                problems.append(
                    f"it is marked complete, but batches {missing[:5]} are not flagged done"
                )
        bad: set[int] = set()
        keys = self._chunk_keys(schema)
        for index in sorted(done):
            for path, spec in schema.items():
                key = "/".join([path, "c", str(index), *["0"] * len(spec["shape"])])
                if key not in keys:
                    problems.append(f"batch {index} has no chunk in {path!r}")
                    bad.add(index)
                    break
                if deep:
                    try:
                        self._open_array(path)[_batch_rows(index, self.batch_size, rows)]
                    except Exception as exc:  # noqa: BLE001 - checksum, codec, JSON errors
                        problems.append(f"batch {index} of {path!r} is unreadable ({exc})")
                        bad.add(index)
                        break
        return problems, bad

    def _open_array(self, path: str) -> Any:
        try:
            return self.group[path]
        except Exception:  # noqa: BLE001 - missing node or unreadable metadata
            return None

    def _chunk_keys(self, schema: dict[str, Any]) -> set[str]:
        from zarr.core.sync import sync

        store = self.group.store
        base = self.group.path

        async def listed(prefix: str) -> list[str]:
            return [key async for key in store.list_prefix(prefix)]

        keys: set[str] = set()
        for path in schema:
            prefix = f"{base}/{path}/c/" if base else f"{path}/c/"
            keys.update(k[len(base) + 1 :] if base else k for k in sync(listed(prefix)))
        return keys

    def repair(self) -> None:
        """Before a resume: unflag the batches that are missing or unreadable (all of them
        when an array's metadata is damaged: it is recreated), so they are recomputed."""
        problems, bad = self.problems(deep=True)
        if not problems:
            return
        if bad is None:  # by the filesystem: a damaged child's metadata cannot be read
            fs, root = _filesystem(self.location)
            for name in _entries(fs, root) or []:
                if name in STORE_MEMBERS and name not in ("zarr.json", LOCK):
                    fs.rm(f"{root.rstrip('/')}/{name}", recursive=True)
            self._arrays.clear()
            self.group.attrs.update({"schema": {}, "complete": False})
            return
        if bad:
            flags = self.group[DONE]
            for index in bad:
                flags[index] = False
        self.group.attrs["complete"] = False

    # -- writing ------------------------------------------------------------------
    @property
    def seed(self) -> int | None:
        return self.group.attrs.get("run_seed")

    def record_seed(self, seed: int) -> None:
        if self.group.attrs.get("run_seed") != seed:
            options = {**dict(self.group.attrs.get("options", {})), "seed": seed}
            self.group.attrs.update({"run_seed": seed, "options": options})

    def done_or_none(self) -> set[int] | None:
        try:
            if DONE not in self.group:
                return set()
            flags = self.group[DONE][:]
        except Exception:  # noqa: BLE001 - a damaged flag array or its metadata
            return None
        return {int(i) for i in np.nonzero(flags)[0]}

    def done(self) -> set[int]:
        return self.done_or_none() or set()

    def _array(self, path: str, value: np.ndarray) -> Any:
        array = self._arrays.get(path)
        if array is None:
            if path in self.group:
                # the config is not stored with the array: a resumed run sets it again
                array = self.group[path].with_config({"write_empty_chunks": True})
            else:
                from zarr.codecs import Crc32cCodec, ZstdCodec

                array = self.group.create_array(
                    path,
                    shape=(self.n_rows or 0, *value.shape[1:]),
                    chunks=(self.batch_size, *value.shape[1:]),
                    dtype=value.dtype,
                    fill_value=0,
                    compressors=[ZstdCodec(), Crc32cCodec()],
                    # a batch of zeros is written too: a missing chunk always means damage
                    config={"write_empty_chunks": True},
                )
                schema = self.schema
                schema[path] = {"dtype": str(value.dtype), "shape": list(value.shape[1:])}
                self.group.attrs["schema"] = schema
            self._arrays[path] = array
        return array

    def write(
        self, index: int, start: int, arrays: dict[str, np.ndarray], n_batches: int | None
    ) -> None:
        """Write one batch's arrays, then flag it done (the commit)."""
        stop = start + len(arrays["predictions"])
        try:
            for path, value in arrays.items():
                array = self._array(path, value)
                if array.shape[0] < stop:
                    array.resize((stop, *array.shape[1:]))
                array[start:stop] = value
            flags = self._done_array(n_batches)
            if flags.shape[0] <= index:
                flags.resize((index + 1,))
            flags[index] = True
        except OSError as exc:
            raise XaiError(
                f"cannot write batch {index} to {self.location!r}: {exc}. The batches written "
                "before it are kept; free space (or fix permissions) and rerun the same call "
                "to resume."
            ) from exc

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

    def finish(self, n_batches: int | None) -> None:
        """Mark the store complete once every batch is flagged."""
        done = self.done()
        if n_batches is None:  # an iterable: complete when it was read to its end
            complete = bool(done) and len(done) == max(done) + 1
        else:
            complete = len(done) == n_batches
        if complete:
            self.group.attrs["complete"] = True


class StoreLock:
    """An exclusive `flock` on the store's `.xai_lock` while a run writes a local store:
    two runs into one store at once (two `overwrite=True` calls, a resume started twice)
    would interleave their chunks; the second one is refused. Object stores (s3://...)
    have no such lock: one run per store there is the user's to keep (README)."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    @classmethod
    def acquire(cls, fs: Any, root: str, shown: Any) -> StoreLock:
        try:
            import fcntl
        except ImportError:  # not POSIX
            return cls(None)
        from fsspec.implementations.local import LocalFileSystem

        if not isinstance(fs, LocalFileSystem):
            return cls(None)
        try:
            os.makedirs(root, exist_ok=True)
            fd = os.open(os.path.join(root, LOCK), os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise XaiError(f"cannot write the store at out={shown!r}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise cls.busy(shown) from exc
        return cls(fd)

    @staticmethod
    def busy(shown: Any) -> XaiError:
        return XaiError(
            f"out={shown!r} is being written by another explain_dataset run right now "
            "(its lock is held): wait for that run, or pick another out=."
        )

    @staticmethod
    def held(fs: Any, root: str) -> bool:
        """Whether another run holds the lock of a local store now (never creates it)."""
        try:
            import fcntl

            from fsspec.implementations.local import LocalFileSystem
        except ImportError:
            return False
        if not isinstance(fs, LocalFileSystem):
            return False
        try:
            fd = os.open(os.path.join(root, LOCK), os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def release(self) -> None:
        if self.fd is not None:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _open_group(location: str, mode: str, shown: Any) -> Any:
    import zarr

    try:
        return zarr.open_group(location, mode=mode)
    except (OSError, zarr.errors.ContainsArrayError, zarr.errors.ContainsGroupError) as exc:
        raise XaiError(
            f"cannot open the store at out={shown!r}: {type(exc).__name__}: {exc}. Another "
            "process may be writing it at the same time; one run per store."
        ) from exc


class Results:
    """An `explain_dataset` store, read lazily: arrays stay on disk until sliced.

    `attributions`, `predictions`, `target` (and `convergence_delta`, `activations`)
    are Zarr arrays; `results[i:j]` is an `Explanation` of those rows, `results[i]` of
    row i (negative i counts from the end, like a sequence)."""

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
        return {unquote(name): group[name] for name in group.array_keys()}

    def __len__(self) -> int:
        if "predictions" not in self.group:
            return 0
        return int(self.predictions.shape[0])

    def _structured(self, name: str, rows: slice) -> Any:
        node = self._get(name)
        if node is None:
            return None
        if hasattr(node, "array_keys"):  # several inputs: one array per input
            keys = sorted(
                node.array_keys(), key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else k)
            )
            parts = {unquote(k): node[k][rows] for k in keys}
            return tuple(parts.values()) if all(k.isdigit() for k in keys) else parts
        return node[rows]

    def _rows(self, item: Any) -> slice:
        n = len(self)
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, (int, np.integer, slice)):
            raise StoreError(
                f"index results with an int or a slice, e.g. results[100:200]; got "
                f"{type(item).__name__}."
            )
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            if step != 1:
                raise StoreError("results slices are contiguous: results[i:j], no step.")
            return slice(start, max(start, stop))
        index = int(item) + n if item < 0 else int(item)
        if not 0 <= index < n:
            raise StoreError(f"row {int(item)} is out of range: the store has {n} rows.")
        return slice(index, index + 1)

    def _check_finished(self, rows: slice) -> None:
        """Rows of a batch not flagged done hold no results (zeros, the fill value): an
        error, never numbers."""
        if rows.stop <= rows.start:
            return
        batch_size = int(self.group.attrs["identity"]["batch_size"])
        flags = self.group[DONE][:] if DONE in self.group else np.zeros(0, bool)
        wanted = range(rows.start // batch_size, (rows.stop - 1) // batch_size + 1)
        missing = [i for i in wanted if i >= len(flags) or not flags[i]]
        if missing:
            raise StoreError(
                f"rows {rows.start}..{rows.stop - 1} include batches {missing[:5]} that are "
                "not computed (an interrupted run): rerun the same explain_dataset call to "
                "finish them."
            )

    def __getitem__(self, item: int | slice) -> Explanation:
        rows = self._rows(item)
        try:
            self._check_finished(rows)
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
        except XaiError:
            raise
        except Exception as exc:  # noqa: BLE001 - checksum or codec errors of a damaged chunk
            raise StoreError(
                f"rows {rows.start}..{rows.stop - 1} cannot be read ({type(exc).__name__}: "
                f"{exc}); the store is damaged. Rerun the explain_dataset call to repair it."
            ) from exc

    def __iter__(self) -> Iterable[Explanation]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        state = "complete" if self.complete else "incomplete (rerun the call to resume)"
        shape = None if self.attributions is None else getattr(self.attributions, "shape", None)
        return f"Results(method={self.method!r}, rows={len(self)}, attributions={shape}, {state})"


def open_results(path: Any) -> Results:
    """Reopen a store written by `explain_dataset`, verified: its schema, shapes and every
    finished batch's chunks (a damaged store is an error that says how to repair it)."""
    location = store_location(path)
    fs, root = _filesystem(location)
    if not fs.exists(root):
        raise XaiError(f"{path} is not a Zarr store written by explain_dataset: it does not exist.")
    attrs, damage = _read_attrs(location)
    if attrs is None:
        raise XaiError(f"{path} is not a Zarr store written by explain_dataset: {damage}.")
    import zarr

    store = ResultStore(zarr.open_group(location, mode="r"), location)
    problems, _ = store.problems()
    if problems:
        raise StoreError(
            f"{path} is damaged: {'; '.join(problems[:3])}"
            f"{' ...' if len(problems) > 3 else ''}. Rerun the explain_dataset call that "
            "wrote it: it recomputes what is missing."
        )
    return Results(store.group)


__all__ = ["FORMAT", "ResultStore", "Results", "StoreError", "open_results", "store_location"]
