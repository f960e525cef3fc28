"""`xai demo`: train a small CNN on scikit-learn's digits (shipped with the package,
no download), explain held-out digits and write figures plus a text summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import XaiError


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError as exc:
        raise XaiError("the demo needs scikit-learn: pip install 'xai-core[demo]'") from exc
    data = sk_digits()
    images = (data.images / 16.0).astype(np.float32)[:, None]  # N, 1, 8, 8
    return images, data.target.astype(np.int64)


def train_torch_cnn(images: np.ndarray, labels: np.ndarray, epochs: int = 40, seed: int = 0) -> Any:
    try:
        import torch
    except ImportError as exc:
        raise XaiError("the demo trains with PyTorch: pip install torch") from exc
    from tqdm.auto import trange

    from .testing.twins import torch_cnn

    torch.manual_seed(seed)
    model = torch_cnn(channels=1, n_out=10)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in trange(epochs, desc="training digits CNN (PyTorch)", leave=False):
        for rows in np.array_split(rng.permutation(len(x)), max(1, len(x) // 64)):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[rows]), y[rows])
            loss.backward()
            opt.step()
    opt.zero_grad(set_to_none=True)
    return model


def run_demo(
    out: str | os.PathLike[str] = "xai-demo", frameworks: list[str] | None = None, n_images: int = 6
) -> Path:
    """Train, explain, draw; returns the output folder."""
    import matplotlib

    matplotlib.use("Agg")
    import xai_core

    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    images, labels = load_digits()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    train, test = order[:1400], order[1400:]
    model = train_torch_cnn(images[train], labels[train])
    x_test = images[test]
    lines = ["xai demo: digits CNN (8x8 images, 10 classes)", ""]

    accuracy = float(
        (xai_core.explain(model, x_test, "saliency").predictions.argmax(1) == labels[test]).mean()
    )
    lines.append(f"held-out accuracy (PyTorch): {accuracy:.3f} on {len(test)} images")

    shown = x_test[:n_images]
    written = []
    expl = xai_core.explain(model, shown, "saliency")
    fig = expl.plot()
    path = out_dir / "saliency_torch.png"
    fig.savefig(path, dpi=110)
    written.append(path)
    lines.append("")
    lines.append("explained digits (true -> predicted):")
    for i in range(n_images):
        top = tuple(int(v) for v in np.unravel_index(np.argmax(expl.attributions[i, 0]), (8, 8)))
        lines.append(
            f"  #{i}: {labels[test][i]} -> {expl.target[i]}, most salient pixel (row, col) {top}"
        )
    lines.append("")
    lines.append("figures:")
    lines.extend(f"  {p}" for p in written)
    (out_dir / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return out_dir
