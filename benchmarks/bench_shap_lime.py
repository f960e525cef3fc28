"""kernel_shap and lime through xai_core vs the shap / lime libraries called directly.

Same model (the PyTorch tabular MLP and digits CNN twins), same settings, a
hand-written NumPy predict function for the direct calls. Targets: ours /
direct <= 1.05 (the adapter adds nothing), and image LIME with our batching
vs the library's defaults (batch of 10) <= 0.5. Candidates interleaved in one
process; ratios of medians printed.

    python benchmarks/bench_shap_lime.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
warnings.filterwarnings("ignore")


def main() -> None:
    import lime.lime_image
    import lime.lime_tabular
    import shap
    import torch
    from threadpoolctl import threadpool_limits

    import xai_core
    from xai_core.testing.twins import cnn_weights, mlp_weights, twin
    from xai_core_explainers.lime_explainer import grid_segments

    from timing import interleaved, report

    mlp = twin("torch", "mlp", mlp_weights(n_in=30, hidden=64, n_out=2)).eval()
    rng = np.random.default_rng(0)
    x, background = rng.normal(size=(4, 30)).astype("f4"), rng.normal(size=(50, 30)).astype("f4")

    def predict(rows):
        with torch.no_grad():
            return mlp(torch.from_numpy(np.asarray(rows, "f4"))).numpy().astype(np.float64)

    def direct_kernel():
        np.random.seed(0)
        explainer = shap.KernelExplainer(predict, background.astype(np.float64))
        return explainer.shap_values(x.astype(np.float64), nsamples=500, silent=True)

    def direct_lime_tabular():
        explainer = lime.lime_tabular.LimeTabularExplainer(  # float64, as ours hands lime
            background.astype(np.float64),
            mode="classification",
            discretize_continuous=False,
            random_state=0,
        )
        return [
            explainer.explain_instance(row, predict, labels=(0,), num_features=30, num_samples=1000)
            for row in x.astype(np.float64)
        ]

    rows = []
    medians = interleaved(
        {
            "xai_core kernel_shap": lambda: xai_core.explain(
                mlp, x, "kernel_shap", background=background, n_samples=500, seed=0, target=0
            ),
            "shap.KernelExplainer direct": direct_kernel,
        },
        repeats=9,
    )
    rows += report(
        "kernel SHAP, MLP 30 features, 4 rows, 500 samples", medians, "shap.KernelExplainer direct"
    )[:1]

    def one_thread(fn):
        # With the default pools, PyTorch's OpenMP workers and LIME's NumPy/scikit-learn work
        # fight over this machine's 2 cores: single calls spread over 50-145 ms (bimodal) for
        # both candidates alike, and a median flips between modes. One thread: ~42 ms, stable.
        def run():
            with threadpool_limits(1):
                return fn()

        return run

    medians = interleaved(
        {
            "xai_core lime (tabular)": one_thread(
                lambda: xai_core.explain(
                    mlp, x, "lime", background=background, n_samples=1000, seed=0, target=0
                )
            ),
            "lime LimeTabularExplainer direct": one_thread(direct_lime_tabular),
        },
        repeats=41,
    )
    rows += report(
        "LIME tabular, MLP 30 features, 4 rows, 1000 samples",
        medians,
        "lime LimeTabularExplainer direct",
    )[:1]

    cnn = twin("torch", "cnn", cnn_weights()).eval()
    digits = rng.uniform(size=(2, 1, 28, 28)).astype("f4")

    def classify(batch):
        with torch.no_grad():
            chw = np.ascontiguousarray(np.moveaxis(batch[..., :1], -1, 1), dtype="f4")
            return cnn(torch.from_numpy(chw)).numpy().astype(np.float64)

    def lime_defaults():
        explainer = lime.lime_image.LimeImageExplainer(random_state=0)
        for image in digits:
            rgb = np.repeat(np.moveaxis(image, 0, -1), 3, axis=-1).astype(np.float64)
            explainer.explain_instance(
                rgb,
                classify,
                labels=(0,),
                top_labels=None,
                hide_color=0,
                num_samples=1000,
                segmentation_fn=lambda im: grid_segments(im, 3),
                random_seed=0,
            )

    medians = interleaved(
        {
            "xai_core lime (image)": lambda: xai_core.explain(
                cnn, digits, "lime", n_samples=1000, seed=0, target=0
            ),
            "lime LimeImageExplainer defaults": lime_defaults,
        },
        repeats=7,
    )
    rows += report(
        "LIME image, CNN 1x28x28, 2 images, 1000 samples",
        medians,
        "lime LimeImageExplainer defaults",
    )[:1]
    print("\nRESULTS (xai_core / direct):")
    for name, ratio in rows:
        print(f"  {name:<28} {ratio:5.2f}")


if __name__ == "__main__":
    main()
