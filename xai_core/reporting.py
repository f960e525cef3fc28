"""`xai_core.report`: one self-contained HTML page for the people who do not run Python —
the model, every method's explanations side by side, the metric table with the best
marked, the curves, and everything needed to reproduce it (issue 25)."""

from __future__ import annotations

import html
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import XaiError


def report(
    model: Any,
    inputs: Any,
    methods: Sequence[str] | Mapping[str, Mapping[str, Any]],
    metrics: Sequence[str] | Mapping[str, Mapping[str, Any]] = ("deletion", "insertion"),
    *,
    target: Any = None,
    out: str | Path | None = "report.html",
    samples: int = 6,
    **options: Any,
) -> str:
    """Compare `methods` on `inputs` with `metrics` (as `compare` does, same options) and
    write the page to `out` (None: only return it). The first `samples` samples are
    drawn, every method's map of each sample side by side (image inputs), or each
    method's top features (tabular)."""
    from . import __version__
    from .evaluation import compare
    from .html_pages import figure_image, mapping_table, page, short_value
    from .plotting import plot_comparison

    if out is not None:
        folder = Path(out).resolve().parent
        if not folder.is_dir():
            raise XaiError(f"out={str(out)!r}: the folder {str(folder)!r} does not exist.")
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    clock = time.perf_counter()
    comparison = compare(model, inputs, methods, metrics, target=target, **options)
    explanations = [comparison.explanations[m] for m in comparison.methods]
    first = explanations[0]
    shown = list(range(min(samples, len(first.target))))
    parts = [
        f"<p>{len(first.target)} samples on <b>{html.escape(first.backend)}</b>, "
        f"{len(comparison.methods)} methods, {len(comparison.metrics)} metrics.</p>",
        "<h2>Model</h2>",
        f"<pre>{html.escape(str(_summary(model)))}</pre>",
        "<h2>Explanations</h2>",
    ]
    if np.ndim(first.inputs) >= 3 and all(e.layer is None for e in explanations):
        alt = f"the maps of {', '.join(comparison.methods)} on samples {shown}"
        fig = plot_comparison(explanations, shown, labels=comparison.methods)
        parts.append(figure_image(fig, alt))
    else:
        for method, e in zip(comparison.methods, explanations):
            alt = f"{method}: the top features of samples {shown}"
            parts.append(f"<h3>{html.escape(method)}</h3>")
            parts.append(figure_image(e.plot(samples=shown), alt))
    parts.append("<h2>Comparison</h2>")
    parts.append(comparison.to_html().split("<body>", 1)[1].rsplit("</body>", 1)[0])
    seconds = time.perf_counter() - clock
    provenance = {
        "made": started,
        "seconds": f"{seconds:.2f}",
        "python": platform.python_version(),
        "xai_core": __version__,
        **{k: v for k, v in (first.versions or {}).items() if k != "xai_core"},
        "target": "predicted class" if target is None else repr(target),
    }
    for method, e in zip(comparison.methods, explanations):
        provenance[f"{method} options"] = ", ".join(
            f"{k}={short_value(v)}" for k, v in e.options.items()
        )
    parts += ["<h2>Provenance</h2>", mapping_table(provenance)]
    text = page("Explanation report", parts)
    if out is not None:
        Path(out).write_text(text, encoding="utf-8")
    return text


def _summary(model: Any) -> Any:
    """`xai_core.summary(model)`, read through the package: importing the submodule
    `xai_core.summary` first would make the package attribute `summary` that module (the
    import system sets it), and `xai_core.summary(...)` would then fail for everyone."""
    import importlib

    return importlib.import_module("xai_core").summary(model)
