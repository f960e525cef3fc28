"""explain_dataset at its defaults vs a hand-written Captum loop (issue 21): a newcomer
who never sets `internal_batch_size` or `XAI_CORE_CALL_BYTES` should not pay for it.

A small CNN (the digits-size twin, 28 x 28), integrated gradients with the defaults of
each (50 steps, Gauss-Legendre), every row explained once, nothing else tuned. Captum's
loop runs `IntegratedGradients.attribute` on batches of the same size as explain_dataset's
(256), and also with Captum's `internal_batch_size` set to the rows of a batch (the
setting a tuned user reaches for). The engine also writes every batch to a Zarr store.

    .venv/bin/python benchmarks/bench_dataset_defaults.py [rows]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import xai_core  # noqa: E402
from xai_core.testing.twins import cnn_weights, twin  # noqa: E402

from timing import interleaved, report  # noqa: E402

BATCH = 256


def main(rows: int) -> None:
    import torch
    from captum.attr import IntegratedGradients

    tmp = tempfile.mkdtemp()
    x = np.random.default_rng(0).normal(size=(rows, 1, 28, 28)).astype(np.float32)
    path = os.path.join(tmp, "x.npy")
    np.save(path, x)
    model = twin("torch", "cnn", cnn_weights(channels=1)).eval()

    def captum_loop(internal_batch_size=None):
        ig = IntegratedGradients(model)
        for start in range(0, rows, BATCH):
            xt = torch.from_numpy(x[start : start + BATCH])
            with torch.no_grad():
                chosen = model(xt).argmax(1)  # the predicted class, as explain_dataset's
            ig.attribute(
                xt, target=chosen, internal_batch_size=internal_batch_size
            ).detach().numpy()

    def engine():
        out = os.path.join(tmp, "store")
        shutil.rmtree(out, ignore_errors=True)
        xai_core.explain_dataset(model, path, "integrated_gradients", out=out, progress=False)

    medians = interleaved(
        {
            "explain_dataset (defaults)": engine,
            "captum loop (defaults)": captum_loop,
            "captum loop (internal_batch_size=256)": lambda: captum_loop(BATCH),
        },
        repeats=5,
        warmup=1,
    )
    report(f"IG on {rows} images of 28 x 28, small CNN", medians, "captum loop (defaults)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2048)
