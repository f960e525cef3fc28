"""Import the built-in explainers' helper functions for tests, and checks several test
files share."""

import numpy as np

import xai_core
from xai_core_explainers.grad_cam import resize_bilinear

__all__ = ["check_output_pick_and_chunking", "resize_bilinear"]


def check_output_pick_and_chunking(model, x, expl, pixel_target, ig_target, kwargs) -> None:
    """For a segmenter returning {"logits": y, "aux": 2 * y} with batch-first
    forward_kwargs: output="aux" doubles the saliency of `expl`, and integrated gradients
    at a pixel target do not depend on how the rows are cut into calls."""
    aux = xai_core.explain(
        model, x, "saliency", abs=False, target=pixel_target, output="aux", forward_kwargs=kwargs
    )
    np.testing.assert_allclose(aux.attributions, 2 * expl.attributions, rtol=1e-5, atol=1e-7)
    ig = [
        xai_core.explain(
            model,
            x,
            "integrated_gradients",
            target=ig_target,
            n_steps=6,
            forward_kwargs=kwargs,
            internal_batch_size=size,
        ).attributions
        for size in (None, 4)
    ]
    np.testing.assert_allclose(ig[0], ig[1], rtol=1e-5, atol=1e-7)
