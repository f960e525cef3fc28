"""`Explanation`: the one result type every method returns.

It saves to a single `.npz` file (arrays) with the metadata as a JSON string
inside, so loading never unpickles anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import XaiError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMAT_VERSION = 1


def _store_structure(arrays: dict[str, np.ndarray], name: str, value: Any) -> Any:
    """One array under `name`, or several inputs' arrays under `name__<i>` (with their
    structure returned for the metadata)."""
    if value is None:
        return None
    if isinstance(value, dict):
        for i, part in enumerate(value.values()):
            arrays[f"{name}__{i}"] = part
        return {"kind": "dict", "keys": list(value)}
    if isinstance(value, (tuple, list)):
        for i, part in enumerate(value):
            arrays[f"{name}__{i}"] = part
        return {"kind": type(value).__name__, "keys": list(range(len(value)))}
    arrays[name] = value
    return None


def _load_structure(data: Any, name: str, structure: Any) -> Any:
    if structure is None:
        return data[name] if name in data else None
    parts = [data[f"{name}__{i}"] for i in range(len(structure["keys"]))]
    if structure["kind"] == "dict":
        return dict(zip(structure["keys"], parts))
    return tuple(parts) if structure["kind"] == "tuple" else list(parts)


@dataclass
class Explanation:
    """The result of `xai_core.explain`.

    `attributions` has the inputs' shape and layout (None for capture-only
    methods); `activations` maps layer names to captured outputs; `target`
    holds the class explained for each sample; `extras` keeps
    method-specific arrays (e.g. Grad-CAM at the layer's resolution).
    """

    method: str
    inputs: np.ndarray
    target: np.ndarray
    predictions: np.ndarray
    attributions: np.ndarray | None = None
    activations: dict[str, np.ndarray] = field(default_factory=dict)
    convergence_delta: np.ndarray | None = None
    backend: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    #: the layer whose output `attributions` describe (`layer=` option); None: the inputs
    layer: str | list[str] | None = None
    #: what `explain` was given as `forward_kwargs` and `output`, so that `evaluate` scores
    #: the same output of the same call (kept in memory; `save` does not write them)
    forward_kwargs: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    output: Any = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        attributions = self.attributions
        if isinstance(attributions, dict):
            shape: Any = {k: v.shape for k, v in attributions.items()}
        elif isinstance(attributions, (tuple, list)):
            shape = [v.shape for v in attributions]
        else:
            shape = None if attributions is None else attributions.shape
        layers = list(self.activations) or None
        layer = f", layer={self.layer!r}" if self.layer else ""
        return (
            f"Explanation(method={self.method!r}, backend={self.backend!r}, "
            f"n={len(self.target)}, attributions={shape}{layer}, activations={layers})"
        )

    # -- persistence -------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write to exactly `path` (NumPy `.npz`; metadata as JSON inside, no pickle).

        Written to a temporary file next to `path` and renamed over it, so a save that
        fails half-way leaves any previous file at `path` as it was."""
        arrays: dict[str, np.ndarray] = {"target": self.target, "predictions": self.predictions}
        structures = {
            "inputs": _store_structure(arrays, "inputs", self.inputs),
            "attributions": _store_structure(arrays, "attributions", self.attributions),
        }
        if self.convergence_delta is not None:
            arrays["convergence_delta"] = self.convergence_delta
        for i, value in enumerate(self.activations.values()):
            arrays[f"activation_{i}"] = value
        for i, value in enumerate(self.extras.values()):
            arrays[f"extra_{i}"] = value
        options, array_options = _split_options(self.options)
        for name, value in array_options.items():
            arrays[f"option_{name}"] = value
        for name, value in arrays.items():
            if np.asarray(value).dtype.kind not in "biufcUS":
                raise XaiError(
                    f"cannot save {name!r}: it holds {np.asarray(value).dtype} values, which "
                    "NumPy can only store by pickling (and loading a pickle runs code). Keep "
                    "numbers, strings or booleans in options and extras."
                )
        meta = {
            "format": FORMAT_VERSION,
            "method": self.method,
            "backend": self.backend,
            "options": options,
            "array_options": sorted(array_options),
            "versions": self.versions,
            "activations": list(self.activations),
            "extras": list(self.extras),
            "structures": structures,
            "layer": self.layer,
        }
        arrays["meta"] = np.array(json.dumps(meta))
        target = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(target))
        handle, temporary = tempfile.mkstemp(prefix=".xai-", suffix=".npz.tmp", dir=folder)
        try:
            with os.fdopen(handle, "wb") as fh:
                np.savez_compressed(fh, **arrays)
            os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 is not what open() gives
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Explanation:
        """Read a file written by `save`; anything else is an `XaiError` saying what."""
        where = repr(os.fspath(path))
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise XaiError(f"{where} is not a saved Explanation: {exc}") from exc
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise XaiError(
                f"{where} holds a single array (.npy), not a saved Explanation (.npz from "
                "Explanation.save)."
            )
        _check_inflated_size(data, where)
        try:
            with data:
                return cls._from_npz(data)
        except XaiError:
            raise
        except (KeyError, ValueError, TypeError, EOFError, OSError, zipfile.BadZipFile) as exc:
            raise XaiError(
                f"{where} is not a readable saved Explanation (truncated, corrupted, or "
                f"written by something else): {type(exc).__name__}: {exc}"
            ) from exc

    @classmethod
    def _from_npz(cls, data: Any) -> Explanation:
        meta = json.loads(str(data["meta"]))
        if not isinstance(meta, dict):
            raise XaiError("its metadata is not a JSON object.")
        version = meta.get("format")
        if version != FORMAT_VERSION:
            raise XaiError(
                f"it has file format {version!r}; this xai_core reads format {FORMAT_VERSION}. "
                "Load it with the xai_core version that wrote it."
            )
        _check_meta_types(meta)
        options = dict(meta["options"])
        for name in meta["array_options"]:
            options[name] = data[f"option_{name}"]
        structures = meta.get("structures", {})
        return cls(
            method=meta["method"],
            inputs=_load_structure(data, "inputs", structures.get("inputs")),
            target=data["target"],
            predictions=data["predictions"],
            attributions=_load_structure(data, "attributions", structures.get("attributions")),
            activations={n: data[f"activation_{i}"] for i, n in enumerate(meta["activations"])},
            convergence_delta=(data["convergence_delta"] if "convergence_delta" in data else None),
            backend=meta["backend"],
            options=options,
            versions=meta["versions"],
            extras={n: data[f"extra_{i}"] for i, n in enumerate(meta["extras"])},
            layer=meta.get("layer"),
        )

    # -- text ------------------------------------------------------------------
    def per_token(self, normalize: bool = False) -> np.ndarray:
        """One score per token: layer attributions (N, tokens, dim) summed over the
        embedding dimension, as Captum's tutorials do (`normalize`: divided by each
        sample's L2 norm, for comparing sentences). Token-level attributions
        (N, tokens), e.g. Kernel SHAP on ids, come back as they are."""
        if self.attributions is None or not isinstance(self.attributions, np.ndarray):
            raise XaiError("per_token needs attributions in one array (one input).")
        scores = self.attributions
        if scores.ndim == 3:
            scores = scores.sum(axis=-1)
        if scores.ndim != 2:
            raise XaiError(
                f"per_token needs attributions (N, tokens) or (N, tokens, dim), got {scores.shape}."
            )
        scores = scores.astype(np.float64)
        if normalize:
            scores = scores / np.maximum(np.linalg.norm(scores, axis=1, keepdims=True), 1e-12)
        return scores

    def plot_text(self, tokens: list[str], sample: int = 0, **kwargs: Any) -> Figure:
        """The tokens of one sample coloured by `per_token` scores (a matplotlib Figure)."""
        from .plotting import plot_text

        scores = self.per_token()[sample]
        title = kwargs.pop("title", f"{self.method} · target {int(self.target[sample])}")
        return plot_text(tokens, scores[: len(tokens)], title=title, **kwargs)

    # -- interop -------------------------------------------------------------
    def to_shap(
        self, feature_names: list[str] | None = None, tokens: list[list[str]] | None = None
    ) -> Any:
        """A `shap.Explanation` (values, base values, data, feature names), so that
        `shap.plots.waterfall / bar / beeswarm / decision / image` work on it; with
        `tokens` (one list of strings per sample), values are `per_token` scores and
        data the tokens, for `shap.plots.text`.

        Base values are the method's own where it has them (Kernel/Deep SHAP);
        otherwise f(x) - sum(attributions), so the plots stay additive.
        """
        try:
            import shap
        except ImportError as exc:
            raise XaiError("to_shap needs shap: pip install 'xai-core[shap]'") from exc
        if self.attributions is None:
            raise XaiError(f"{self.method!r} explanations hold no attributions for shap.")
        n = len(self.target)
        values = np.asarray(self.attributions, np.float64) if tokens is None else self.per_token()
        if "base_values" in self.extras:
            base = np.asarray(self.extras["base_values"], np.float64)
        else:
            outputs = self.predictions[np.arange(n), self.target].astype(np.float64)
            base = outputs - values.reshape(n, -1).sum(axis=1)
        if tokens is not None:
            data = np.empty(n, dtype=object)
            for i, row in enumerate(tokens):
                data[i] = np.asarray(row, dtype=object)
            values = np.array([v[: len(t)] for v, t in zip(values, tokens)], dtype=object)
            if len({len(t) for t in tokens}) == 1:
                values = np.stack(list(values)).astype(np.float64)
                data = np.stack(list(data))
            return shap.Explanation(values=values, base_values=base, data=data)
        names = feature_names or self.options.get("feature_names")
        data = np.asarray(self.inputs)
        if data.ndim == 4 and values.shape == data.shape and channels_first(data.shape):
            # shap.plots.image draws (N, H, W, C): PyTorch and Paddle images are turned
            data, values = np.moveaxis(data, 1, -1), np.moveaxis(values, 1, -1)
        return shap.Explanation(
            values=values,
            base_values=base,
            data=data,
            feature_names=list(names) if names is not None else None,
            output_names=None,
        )

    # -- pictures ------------------------------------------------------------
    def plot(self, **kwargs: Any) -> Figure:
        """A matplotlib Figure: heatmaps over images, top-feature bars for tabular data."""
        from .plotting import plot_explanation

        if isinstance(self.layer, list):
            raise XaiError(
                f"this explanation holds one attribution per layer ({', '.join(self.layer)}), "
                "moved together; to plot one layer's map, explain it alone "
                f"(layer={self.layer[0]!r}) and plot that, or draw "
                f"expl.attributions[{self.layer[0]!r}] with matplotlib."
            )
        return plot_explanation(self, **kwargs)

    def to_html(self, feature_names: list[str] | None = None) -> str:
        """One self-contained page (inline PNG, no script): what was explained, the
        picture `plot()` draws, the options and the versions; `feature_names` name
        tabular features in the picture."""
        from .html_pages import figure_image, mapping_table, page

        options = {} if feature_names is None else {"feature_names": feature_names}
        targets = ", ".join(str(t) for t in np.asarray(self.target).reshape(-1)[:16])
        parts = [f"<p>{len(self.target)} samples on <b>{self.backend}</b>; targets {targets}</p>"]
        if self.attributions is not None and not isinstance(self.layer, list):
            alt = f"{self.method} attributions of the first samples, target {targets}"
            parts.append(figure_image(self.plot(**options), alt))
        parts += ["<h2>Options</h2>", mapping_table(self.options)]
        parts += ["<h2>Versions</h2>", mapping_table(self.versions or {})]
        return page(f"{self.method} explanation", parts)

    def _repr_html_(self) -> str:
        return self.to_html()


def channels_first(shape: tuple[int, ...]) -> bool:
    from .plotting import channels_axis

    return channels_axis(shape) == 1


def _umask() -> int:
    """The process's umask (read by setting it, and set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """JSON-able options, and array-valued ones (baselines, background) stored as arrays."""
    plain: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, value in options.items():
        if isinstance(value, np.ndarray):
            arrays[name] = value
            continue
        if isinstance(value, np.generic):
            value = value.item()
        try:
            json.dumps(value)
            plain[name] = value
        except (TypeError, ValueError):  # a function or an object: its description only
            plain[name] = repr(value)
    return plain, arrays


#: the types `_from_npz` relies on, by metadata key (JSON can hold anything)
META_TYPES: dict[str, tuple[type, ...]] = {
    "method": (str,),
    "options": (dict,),
    "array_options": (list,),
    "activations": (list,),
    "extras": (list,),
    "backend": (str,),
    "versions": (dict,),
    "structures": (dict,),
    "layer": (str, list, type(None)),  # a list: several layers, one array each
}


def _check_meta_types(meta: dict[str, Any]) -> None:
    """Type-confused metadata (a list where a dict belongs, a number for a name) is an
    XaiError naming the key, not an AttributeError deep inside."""
    for key, types in META_TYPES.items():
        if key in meta and not isinstance(meta[key], types):
            raise XaiError(
                f"its metadata {key!r} is a {type(meta[key]).__name__}, not "
                f"{' or '.join(t.__name__ for t in types)}: written by something else."
            )
    if isinstance(meta.get("layer"), list) and not all(isinstance(n, str) for n in meta["layer"]):
        raise XaiError("its metadata 'layer' lists something other than layer names.")
    for key in ("array_options", "activations", "extras"):
        if not all(isinstance(n, str) for n in meta.get(key, [])):
            raise XaiError(f"its metadata {key!r} holds names that are not strings.")


def _check_inflated_size(data: Any, where: str) -> None:
    """The arrays' size once decompressed, checked against free memory before any is
    read: a small crafted file must not inflate into gigabytes (a zip bomb)."""
    from .memory import available_memory

    infos = data.zip.infolist()
    total = sum(info.file_size for info in infos)
    free = available_memory()
    if free is not None and total > free // 2:
        raise XaiError(
            f"{where} would decompress to {total / 2**30:.1f} GiB (the file is "
            f"{sum(i.compress_size for i in infos) / 2**20:.1f} MiB), more than half the "
            f"{free / 2**30:.1f} GiB free: refused. A real explanation that large is read "
            "with explain_dataset's store instead."
        )
