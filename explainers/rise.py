"""RISE (Petsiuk et al., 2018): randomised input sampling for explanation.

`n_masks` random masks keep each cell of a coarse `cell` x `cell` grid with
probability `p`; each grid is upsampled bilinearly to (cell + 1) times the cell
size and cropped at a random shift to the sample's spatial size, so masks are
smooth and not aligned to the grid. The saliency of a pixel is the
mask-weighted mean of the model's output for the target,
sum_i f(x * M_i) M_i / (n_masks * p), shared by the channels. `baselines` (default 0,
Petsiuk's black) is what masked-out values move towards: x * M + b * (1 - M).

Integer inputs (token ids) are never scaled (`ids * 0.4` is no token): each smooth mask
becomes a hard one, H = M >= 0.5, a token is kept where H is 1 and replaced by the
baseline token (`baselines`, e.g. the pad or [MASK] id) elsewhere, and the saliency of a
position is sum_i f(x_i) H_i / sum_i H_i, the mean output when that token is kept.

Reproducible by contract, on every framework: with
`rng = numpy.random.default_rng(seed)`, the grids are
`rng.random((n_masks, *[cell] * d)) < p` and the shifts
`rng.integers(0, cell_size, (n_masks, d))`, with d spatial dimensions
(images: H, W; a (N, features) batch: one) and `cell_size = ceil(size / cell)`.
"""

from __future__ import annotations

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.errors import OptionError
from xai_core.explainer import check_held, check_number, check_positive_int, resolve_seed
from xai_core.outputs import at_target
from xai_core.validation import broadcast_baselines
from xai_core_explainers.grad_cam import resize_bilinear


def spatial_axes(shape: tuple[int, ...], channels_last: bool) -> tuple[int, ...]:
    """The per-sample axes masks vary over (channels excluded)."""
    if len(shape) == 1:  # (features,)
        return (0,)
    if len(shape) == 2:  # (H, W) grayscale or (tokens, features): both axes
        return (0, 1)
    if len(shape) == 3:
        return (0, 1) if channels_last else (1, 2)
    raise OptionError(f"rise explains images or feature vectors, not samples of shape {shape}.")


class Rise(Explainer):
    name = "rise"
    defaults = {"n_masks": 2000, "cell": 7, "p": 0.5, "seed": None, "baselines": 0.0}

    def validate(self) -> None:
        check_positive_int("n_masks", self.options["n_masks"])
        check_positive_int("cell", self.options["cell"])
        check_number("p", self.options["p"], minimum=1e-6)
        if self.options["p"] > 1:
            raise OptionError(f"p is a keep probability in (0, 1], got {self.options['p']!r}.")
        if self.options["seed"] is not None:
            resolve_seed(self.options["seed"])

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        seed = resolve_seed(self.options["seed"])
        n_masks, cell, p = self.options["n_masks"], self.options["cell"], self.options["p"]
        sample = inputs.shape[1:]
        axes = spatial_axes(sample, model.channels_last)
        size = [sample[a] for a in axes]
        if any(cell > s for s in size):
            raise OptionError(f"cell={cell} is finer than the sample's size {tuple(size)}.")
        cell_size = [int(np.ceil(s / cell)) for s in size]
        check_held("n_masks", n_masks, 12 * cell ** len(axes) + 16 * len(axes), "the mask grids")
        rng = np.random.default_rng(seed)
        grids = (rng.random((n_masks, *[cell] * len(axes))) < p).astype(np.float32)
        shifts = rng.integers(0, cell_size, (n_masks, len(axes)))
        view = [1] * len(sample)  # a mask over the spatial axes, broadcast over channels
        for a, s in zip(axes, size):
            view[a] = s
        current: dict[str, np.ndarray] = {}

        def masks(start: int, stop: int) -> np.ndarray:
            grid = grids[start:stop]
            if len(axes) == 1:
                grid = grid[:, None, :]
            up = [(cell + 1) * c for c in cell_size]
            big = resize_bilinear(grid, (1, up[0]) if len(axes) == 1 else tuple(up))
            out = np.empty((stop - start, *size), np.float32)
            for k, shift in enumerate(shifts[start:stop]):
                if len(axes) == 1:
                    out[k] = big[k, 0, shift[0] : shift[0] + size[0]]
                else:
                    out[k] = big[k, shift[0] : shift[0] + size[0], shift[1] : shift[1] + size[1]]
            return out

        baselines = broadcast_baselines(self.options["baselines"], inputs)
        hard = model.integer_features is not None  # token ids: keep or replace, never scale

        def perturbed(start: int, stop: int) -> np.ndarray:
            current["masks"] = masks(start, stop)
            if hard:
                current["masks"] = (current["masks"] >= 0.5).astype(np.float32)
            shaped = current["masks"].reshape(stop - start, 1, *view)
            if hard:
                return np.where(shaped > 0, inputs[None], baselines[None])
            return (inputs[None] * shaped + baselines[None] * (1 - shaped)).astype(inputs.dtype)

        saliency = np.zeros((len(inputs), *size), np.float64)
        kept = np.zeros(tuple(size), np.float64)
        for _, _, outputs in model.forward_groups(n_masks, perturbed, like=inputs):
            scores = at_target(outputs, target)  # (k, n)
            saliency += np.einsum("kn,k...->n...", scores, current["masks"].astype(np.float64))
            kept += current["masks"].sum(axis=0)
        saliency /= np.maximum(kept, 1) if hard else n_masks * p
        attributions = np.broadcast_to(saliency.reshape(len(inputs), *view), inputs.shape)
        return Attribution(
            attributions=np.array(attributions, np.float64),
            extras={"saliency": saliency},
            options={"seed": seed},
        )


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [Rise]
