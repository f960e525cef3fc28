"""Pictures of explanations. matplotlib is imported only when a picture is asked for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import XaiError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .explanation import Explanation


def _pyplot():
    # matplotlib falls back to Agg by itself where there is no screen (servers, CI)
    import matplotlib.pyplot as plt

    return plt


def channels_axis(shape: Sequence[int]) -> int | None:
    """Where the channels are in a batch of images: 1 (NCHW), -1 (NHWC) or None (NHW)."""
    if len(shape) == 3:
        return None
    if len(shape) != 4:
        raise XaiError(f"cannot draw inputs of shape {tuple(shape)} as images")
    first, last = shape[1] in (1, 3, 4), shape[-1] in (1, 3, 4)
    return 1 if first and not last else -1


def to_hwc(images: np.ndarray, axis: int | None) -> np.ndarray:
    """Images as (N, H, W, C) whatever their layout."""
    if axis is None:
        return images[..., None]
    return np.moveaxis(images, 1, -1) if axis == 1 else images


def heat(attr_hwc: np.ndarray) -> np.ndarray:
    """One (H, W) map per sample, scaled to [0, 1] per sample as saliency maps need.

    Channels are summed as magnitudes; the 99.5th percentile clips outliers
    so that one hot pixel does not wash the map out.
    """
    maps = np.abs(attr_hwc).sum(axis=-1)
    flat = maps.reshape(len(maps), -1)
    top = np.percentile(flat, 99.5, axis=1).reshape(-1, 1, 1)
    return np.clip(maps / np.where(top > 0, top, 1.0), 0.0, 1.0)


def show_image(ax: Any, image_hwc: np.ndarray) -> None:
    """Draw one image scaled to [0, 1], grayscale when it has one channel."""
    img = image_hwc.astype(np.float64)
    lo, hi = img.min(), img.max()
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    if img.shape[-1] == 1:
        ax.imshow(img[..., 0], cmap="gray")
    else:
        ax.imshow(img[..., :3])
    ax.set_xticks([])
    ax.set_yticks([])


def plot_explanation(
    explanation: Explanation,
    *,
    samples: Sequence[int] | None = None,
    kind: str = "auto",
    feature_names: Sequence[str] | None = None,
    top_k: int = 10,
) -> Figure:
    """Heatmaps over images, top-feature bars for tabular data, or the dataset-level view.

    kind: "auto", "image", "bar" (per sample) or "global" (mean |attribution| per feature).
    """
    if explanation.attributions is None:
        raise XaiError(
            f"{explanation.method!r} explanations hold no attributions to plot; "
            "for captured activations use xai_core.plotting.plot_feature_maps."
        )
    names = feature_names or explanation.options.get("feature_names")
    attributions = explanation.attributions
    if kind == "auto":
        kind = "bar" if attributions.ndim == 2 else "image"
    if kind == "global":
        return plot_global_importance(attributions, feature_names=names, top_k=top_k)
    idx = list(samples) if samples is not None else list(range(min(6, len(attributions))))
    if kind == "image":
        fig = plot_heatmaps(explanation.inputs[idx], attributions[idx], explanation, idx)
    elif kind == "bar":
        fig = plot_feature_bars(explanation, idx, names, top_k)
    else:
        fig = None
    if fig is not None:
        if samples is None and len(idx) < len(attributions):  # said, not silently left out
            note = (
                f"the first {len(idx)} of {len(attributions)} samples (samples=[...] picks others)"
            )
            title = fig._suptitle.get_text() if fig._suptitle is not None else ""
            fig.suptitle(f"{title}\n{note}" if title else note, fontsize=10)
            fig.tight_layout()
        return fig
    raise XaiError(f"unknown plot kind {kind!r}: use 'auto', 'image', 'bar' or 'global'.")


def plot_heatmaps(
    inputs: np.ndarray, attributions: np.ndarray, explanation: Explanation, idx: Sequence[int]
) -> Figure:
    plt = _pyplot()
    axis = channels_axis(inputs.shape)
    images, maps = to_hwc(inputs, axis), heat(to_hwc(attributions, axis))
    n = len(idx)
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    for col in range(n):
        show_image(axes[0, col], images[col])
        axes[0, col].set_title(f"#{idx[col]} class {explanation.target[idx[col]]}", fontsize=9)
        show_image(axes[1, col], images[col])
        axes[1, col].imshow(maps[col], cmap="inferno", alpha=0.65, vmin=0, vmax=1)
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel(explanation.method)
    fig.suptitle(f"{explanation.method} ({explanation.backend})")
    fig.tight_layout()
    return fig


def plot_feature_bars(
    explanation: Explanation, idx: Sequence[int], names: Sequence[str] | None, top_k: int
) -> Figure:
    plt = _pyplot()
    attributions = explanation.attributions
    assert attributions is not None
    n_features = attributions.shape[1]
    names = list(names) if names is not None else [f"x{i}" for i in range(n_features)]
    fig, axes = plt.subplots(1, len(idx), figsize=(4.2 * len(idx), 0.35 * top_k + 1.5))
    for ax, i in zip(np.atleast_1d(axes), idx):
        values = attributions[i]
        order = np.argsort(-np.abs(values))[:top_k][::-1]
        colors = ["#d62728" if v > 0 else "#1f77b4" for v in values[order]]
        ax.barh([names[j] for j in order], values[order], color=colors)
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_title(f"#{i} class {explanation.target[i]}", fontsize=10)
    fig.suptitle(f"{explanation.method} ({explanation.backend}): top {top_k} features")
    fig.tight_layout()
    return fig


def plot_global_importance(
    attributions: np.ndarray, *, feature_names: Sequence[str] | None = None, top_k: int = 15
) -> Figure:
    """Mean |attribution| per feature over many samples: the dataset-level view.

    Tabular data: the `top_k` features as bars. Images: one map of where the
    model looks on average.
    """
    plt = _pyplot()
    if attributions.ndim >= 3:
        axis = channels_axis(attributions.shape)
        mean_map = np.abs(to_hwc(attributions, axis)).sum(axis=-1).mean(axis=0)
        fig, ax = plt.subplots(figsize=(4, 4))
        im = ax.imshow(mean_map, cmap="inferno")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"mean |attribution| over {len(attributions)} images")
        fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        return fig
    flat = np.abs(attributions.reshape(len(attributions), -1)).mean(axis=0)
    names = (
        list(feature_names) if feature_names is not None else [f"x{i}" for i in range(len(flat))]
    )
    order = np.argsort(flat)[-top_k:]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(order) + 1.5))
    ax.barh([names[j] for j in order], flat[order], color="#555555")
    ax.set_xlabel(f"mean |attribution| over {len(attributions)} samples")
    fig.tight_layout()
    return fig


def plot_comparison(
    explanations: Sequence[Explanation],
    samples: Sequence[int],
    title: str | None = None,
    labels: Sequence[str] | None = None,
) -> Figure:
    """Several image explanations of the same inputs side by side: one row per method
    (labelled by `labels`, default the method names: one method with two options needs
    two labels)."""
    plt = _pyplot()
    first = explanations[0]
    axis = channels_axis(first.inputs.shape)
    images = to_hwc(first.inputs[list(samples)], axis)
    n = len(samples)
    fig, axes = plt.subplots(
        len(explanations) + 1, n, figsize=(1.9 * n, 1.9 * (len(explanations) + 1)), squeeze=False
    )
    for col, i in enumerate(samples):
        show_image(axes[0, col], images[col])
        axes[0, col].set_title(f"class {first.target[i]}", fontsize=9)
    axes[0, 0].set_ylabel("input")
    for row, expl in enumerate(explanations, start=1):
        assert expl.attributions is not None
        maps = heat(to_hwc(expl.attributions[list(samples)], axis))
        for col in range(n):
            axes[row, col].imshow(maps[col], cmap="inferno", vmin=0, vmax=1)
            axes[row, col].set_xticks([])
            axes[row, col].set_yticks([])
        axes[row, 0].set_ylabel(expl.method if labels is None else labels[row - 1], fontsize=9)
    methods = ", ".join(e.method for e in explanations)
    fig.suptitle(title or f"{first.backend}: {methods}")
    fig.tight_layout()
    return fig


def plot_network(summary: Any, max_neurons: int = 10) -> Figure:
    """The seed's neurons-and-arrows figure for dense networks, a block diagram otherwise."""
    if summary.is_dense():
        return _plot_dense(summary, max_neurons)
    return _plot_blocks(summary)


def _dense_columns(summary: Any) -> list[tuple[str, int]]:
    """(label, width) per column: the input, then each dense layer with its activation."""
    layers = summary.layers
    first = next(layer for layer in layers if layer.kind in ("Linear", "Dense"))
    out = first.output_shape[-1] if first.output_shape else None
    if summary.input_shape is not None:
        n_in = summary.input_shape[-1]
    elif out:
        n_in = first.n_params // out - 1  # weights + one bias per output
    else:
        n_in = 0
    columns = [(f"input\n({int(n_in)})", int(n_in))]
    for i, layer in enumerate(layers):
        if layer.kind not in ("Linear", "Dense"):
            continue
        width = layer.output_shape[-1] if layer.output_shape else None
        if width is None:
            raise XaiError(
                "output shapes are unknown: pass inputs, xai_core.summary(model, inputs=x[:1])"
            )
        after = layers[i + 1].kind if i + 1 < len(layers) and not layers[i + 1].n_params else ""
        label = f"{layer.name}\n{layer.kind}({width})" + (f"\n+ {after}" if after else "")
        columns.append((label, int(width)))
    return columns


def _plot_dense(summary: Any, max_neurons: int) -> Figure:
    plt = _pyplot()
    columns = _dense_columns(summary)
    fig, ax = plt.subplots(figsize=(2.2 * len(columns) + 1, 5))
    positions = []
    for c, (_, width) in enumerate(columns):
        shown = min(width, max_neurons)
        ys = np.linspace(0.9, 0.1, shown) if shown > 1 else np.array([0.5])
        positions.append((c, ys, width > shown))
    for (c0, ys0, _), (c1, ys1, _) in zip(positions, positions[1:]):
        for y0 in ys0:
            for y1 in ys1:
                ax.plot([c0, c1], [y0, y1], color="#999999", linewidth=0.4, zorder=1)
    palette = ["#4c72b0", *["#55a868"] * (len(columns) - 2), "#c44e52"]
    for (c, ys, clipped), (label, width), color in zip(positions, columns, palette):
        ax.scatter([c] * len(ys), ys, s=260, color=color, edgecolor="black", zorder=2)
        if clipped:
            ax.text(c, 0.03, f"... {width} units", ha="center", fontsize=8)
        ax.text(c, 1.0, label, ha="center", va="bottom", fontsize=8)
    ax.set_xlim(-0.6, len(columns) - 0.4)
    ax.set_ylim(-0.02, 1.22)
    ax.axis("off")
    ax.set_title(f"{summary.model} ({summary.backend}): {summary.total_params:,} parameters")
    fig.tight_layout()
    return fig


def _plot_blocks(summary: Any) -> Figure:
    from matplotlib.patches import FancyBboxPatch

    plt = _pyplot()
    layers = summary.layers
    fig, ax = plt.subplots(figsize=(6, 0.75 * len(layers) + 1.2))
    colors = {"conv": "#4c72b0", "pool": "#dd8452", "linear": "#c44e52", "dense": "#c44e52"}
    for i, layer in enumerate(layers):
        y = len(layers) - i
        color = next((v for k, v in colors.items() if k in layer.kind.lower()), "#8c8c8c")
        ax.add_patch(
            FancyBboxPatch(
                (0.05, y - 0.32), 0.9, 0.64, boxstyle="round,pad=0.02", color=color, alpha=0.85
            )
        )
        shape = "?" if layer.output_shape is None else str(tuple(layer.output_shape))
        ax.text(0.08, y, f"{layer.name}  [{layer.kind}]", va="center", color="white", fontsize=9)
        ax.text(
            0.92,
            y,
            f"{shape}   {layer.n_params:,} p",
            va="center",
            ha="right",
            color="white",
            fontsize=8,
        )
        if i:
            ax.annotate(
                "",
                xy=(0.5, y + 0.34),
                xytext=(0.5, y + 0.66),
                arrowprops={"arrowstyle": "->", "color": "black"},
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(0.4, len(layers) + 0.8)
    ax.axis("off")
    ax.set_title(f"{summary.model} ({summary.backend}): {summary.total_params:,} parameters")
    fig.tight_layout()
    return fig


def plot_feature_maps(
    explanation: Explanation, layer: str | None = None, sample: int = 0, max_maps: int = 16
) -> Figure:
    """A grid of one captured convolutional layer's channels for one sample."""
    plt = _pyplot()
    if not explanation.activations:
        raise XaiError("this explanation holds no activations: use method='activations'.")
    layer = layer or next(iter(explanation.activations))
    if layer not in explanation.activations:
        raise XaiError(f"no activations for {layer!r}; captured: {list(explanation.activations)}")
    maps = explanation.activations[layer][sample]
    if maps.ndim != 3:
        raise XaiError(f"{layer!r} has output shape {maps.shape} per sample: no feature maps.")
    if explanation.options.get("channels_last", False):
        maps = np.moveaxis(maps, -1, 0)
    n = min(len(maps), max_maps)
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.5), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(maps[k], cmap="viridis")
            ax.set_title(f"ch {k}", fontsize=7)
    fig.suptitle(
        f"{layer}: {n} of {len(maps)} feature maps (sample {sample}, {explanation.backend})"
    )
    fig.tight_layout()
    return fig


def plot_text(
    tokens: Sequence[str], scores: Sequence[float], title: str | None = None, width: int = 70
) -> Figure:
    """Tokens coloured by their score (red raises the explained output, blue lowers it),
    like Captum's `visualize_text` and shap's text plot, as a matplotlib Figure."""
    from matplotlib import colormaps

    plt = _pyplot()
    tokens, scores = [str(t) for t in tokens], np.asarray(scores, np.float64).reshape(-1)
    if len(tokens) != len(scores):
        raise XaiError(f"{len(tokens)} tokens for {len(scores)} scores: give one per token.")
    scale = max(float(np.abs(scores).max()), 1e-12)
    lines: list[list[int]] = [[]]
    used = 0
    for i, token in enumerate(tokens):
        if used + len(token) + 1 > width and lines[-1]:
            lines.append([])
            used = 0
        lines[-1].append(i)
        used += len(token) + 1
    fig = plt.figure(
        figsize=(
            max(4.0, 0.11 * min(width, sum(map(len, tokens)) + len(tokens))),
            0.45 * len(lines) + (0.5 if title else 0.2),
        )
    )
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    cmap = colormaps["bwr"]
    renderer = fig.canvas.get_renderer()
    for row, indices in enumerate(lines):
        x = 0.01
        y = 1 - (row + 0.5 + (0.6 if title else 0)) / (len(lines) + (0.6 if title else 0.1))
        for i in indices:
            strength = scores[i] / scale
            text = ax.text(
                x,
                y,
                tokens[i],
                va="center",
                ha="left",
                family="monospace",
                fontsize=11,
                color="white" if abs(strength) > 0.6 else "black",
                bbox={"facecolor": cmap(0.5 + 0.5 * strength), "edgecolor": "none", "pad": 2},
            )
            text.set_gid(f"token-{i}")
            x += text.get_window_extent(renderer).width / fig.bbox.width + 0.02
    if title:
        ax.text(0.01, 0.97, title, va="top", ha="left", fontsize=10, weight="bold")
    return fig


def plot_metric_curves(result: Any, ax: Any = None, label: str | None = None) -> Figure:
    """A metric's curve: the mean over samples, bold, with one thin line per sample."""
    if result.curves is None:
        raise XaiError(f"metric {result.metric!r} has no curve to plot; only scores.")
    plt = _pyplot()
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 3.2))
    else:
        fig = ax.figure
    x = result.curve_x
    line = ax.plot(x, result.curves.mean(axis=0), lw=2.2, label=label or result.method)[0]
    for curve in result.curves:
        ax.plot(x, curve, lw=0.5, alpha=0.25, color=line.get_color())
    if result.curve_labels:
        ax.set_xticks(x, result.curve_labels, rotation=45, ha="right", fontsize=7)
    ax.set_xlabel(result.x_label)
    ax.set_ylabel(result.y_label)
    ax.set_title(f"{result.metric} (score {np.nanmean(result.scores):.3g})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_comparison_table(comparison: Any) -> Figure:
    """One bar panel per metric (best method in colour, the better direction in the title),
    then one panel per curve metric with every method's mean curve."""
    plt = _pyplot()
    curve_metrics = [
        m
        for m in comparison.metrics
        if all(comparison.results[meth][m].curves is not None for meth in comparison.methods)
    ]
    n_panels = len(comparison.metrics) + len(curve_metrics)
    cols = min(4, n_panels)
    rows = -(-n_panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows), squeeze=False)
    flat_axes = list(axes.ravel())
    arrows = {True: "higher is better", False: "lower is better", None: ""}
    for ax, metric in zip(flat_axes, comparison.metrics):
        means = [comparison.mean(m, metric) for m in comparison.methods]
        best = comparison.best(metric)
        colours = ["tab:orange" if m == best else "tab:gray" for m in comparison.methods]
        ax.barh(comparison.methods, means, color=colours)
        finite = np.array([v for v in means if np.isfinite(v)])
        if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 100:
            ax.set_xscale("log")  # scores a hundred times apart: keep the small ones visible
        ax.invert_yaxis()
        ax.set_title(f"{metric}\n{arrows[comparison.higher_is_better.get(metric)]}", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax, metric in zip(flat_axes[len(comparison.metrics) :], curve_metrics):
        for method in comparison.methods:
            result = comparison.results[method][metric]
            x = result.curve_x
            ax.plot(x, result.curves.mean(axis=0), lw=1.8, label=method)
        first = comparison.results[comparison.methods[0]][metric]
        if first.curve_labels:
            ax.set_xticks(first.curve_x, first.curve_labels, rotation=45, ha="right", fontsize=7)
        ax.set_xlabel(first.x_label, fontsize=8)
        ax.set_ylabel(first.y_label, fontsize=8)
        ax.set_title(f"{metric}: mean curves", fontsize=9)
        ax.legend(fontsize=7)
    for ax in flat_axes[n_panels:]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_token_heatmap(
    scores: np.ndarray,
    input_tokens: Sequence[str],
    output_tokens: Sequence[str],
    title: str | None = None,
    ax: Any = None,
) -> Figure:
    """Rows: what was explained (generated tokens, or a class), columns: input features;
    a diverging map centred at 0 (red raises the explained log-probability or logit, blue
    lowers it), each cell's score written in it when the grid is small enough to read."""
    plt = _pyplot()
    scores = np.asarray(scores, np.float64).reshape(len(output_tokens), len(input_tokens))
    if ax is None:
        width = min(2.0 + 0.55 * len(input_tokens), 24.0)
        fig, ax = plt.subplots(figsize=(width, 1.2 + 0.42 * len(output_tokens)))
    else:
        fig = ax.figure
    scale = max(float(np.abs(scores).max()), 1e-12)
    image = ax.imshow(scores, cmap="RdBu_r", vmin=-scale, vmax=scale, aspect="auto")
    ax.set_xticks(range(len(input_tokens)), [repr(t)[1:-1] for t in input_tokens], rotation=60)
    ax.set_yticks(range(len(output_tokens)), [repr(t)[1:-1] for t in output_tokens])
    ax.set_xlabel("input features")
    ax.set_ylabel("explained output")
    if scores.size <= 400:
        for (row, col), value in np.ndenumerate(scores):
            shade = "white" if abs(value) > 0.6 * scale else "black"
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color=shade)
    fig.colorbar(image, ax=ax, label="attribution", fraction=0.04, pad=0.02)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
