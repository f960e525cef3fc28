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
        return plot_heatmaps(explanation.inputs[idx], attributions[idx], explanation, idx)
    if kind == "bar":
        return plot_feature_bars(explanation, idx, names, top_k)
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


def plot_comparison(explanations: Sequence[Explanation], samples: Sequence[int]) -> Figure:
    """Several image explanations of the same inputs side by side: one row per method."""
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
        axes[row, 0].set_ylabel(expl.method, fontsize=9)
    fig.suptitle(f"{first.backend}: gradient explanations")
    fig.tight_layout()
    return fig
