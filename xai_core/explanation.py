"""`Explanation`: the one result type every method returns.

It saves to a single `.npz` file (arrays) with the metadata as a JSON string
inside, so loading never unpickles anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import XaiError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMAT_VERSION = 1


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
    layer: str | None = None

    def __repr__(self) -> str:
        shape = None if self.attributions is None else self.attributions.shape
        layers = list(self.activations) or None
        return (
            f"Explanation(method={self.method!r}, backend={self.backend!r}, "
            f"n={len(self.inputs)}, attributions={shape}, activations={layers})"
        )

    # -- persistence -------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write to exactly `path` (NumPy `.npz`; metadata as JSON inside, no pickle)."""
        arrays: dict[str, np.ndarray] = {
            "inputs": self.inputs,
            "target": self.target,
            "predictions": self.predictions,
        }
        if self.attributions is not None:
            arrays["attributions"] = self.attributions
        if self.convergence_delta is not None:
            arrays["convergence_delta"] = self.convergence_delta
        for i, value in enumerate(self.activations.values()):
            arrays[f"activation_{i}"] = value
        for i, value in enumerate(self.extras.values()):
            arrays[f"extra_{i}"] = value
        options, array_options = _split_options(self.options)
        for name, value in array_options.items():
            arrays[f"option_{name}"] = value
        meta = {
            "format": FORMAT_VERSION,
            "method": self.method,
            "backend": self.backend,
            "options": options,
            "array_options": sorted(array_options),
            "versions": self.versions,
            "activations": list(self.activations),
            "extras": list(self.extras),
        }
        arrays["meta"] = np.array(json.dumps(meta))
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Explanation:
        """Read a file written by `save`."""
        try:
            data = np.load(path, allow_pickle=False)
            meta = json.loads(str(data["meta"]))
        except (OSError, ValueError, KeyError) as exc:
            raise XaiError(f"{os.fspath(path)!r} is not a saved Explanation: {exc}") from exc
        with data:
            options = dict(meta["options"])
            for name in meta["array_options"]:
                options[name] = data[f"option_{name}"]
            return cls(
                method=meta["method"],
                inputs=data["inputs"],
                target=data["target"],
                predictions=data["predictions"],
                attributions=data["attributions"] if "attributions" in data else None,
                activations={n: data[f"activation_{i}"] for i, n in enumerate(meta["activations"])},
                convergence_delta=(
                    data["convergence_delta"] if "convergence_delta" in data else None
                ),
                backend=meta["backend"],
                options=options,
                versions=meta["versions"],
                extras={n: data[f"extra_{i}"] for i, n in enumerate(meta["extras"])},
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
        return shap.Explanation(
            values=values,
            base_values=base,
            data=np.asarray(self.inputs),
            feature_names=list(names) if names is not None else None,
            output_names=None,
        )

    # -- pictures ------------------------------------------------------------
    def plot(self, **kwargs: Any) -> Figure:
        """A matplotlib Figure: heatmaps over images, top-feature bars for tabular data."""
        from .plotting import plot_explanation

        return plot_explanation(self, **kwargs)


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
        except TypeError:
            plain[name] = repr(value)
    return plain, arrays
