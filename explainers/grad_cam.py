"""Grad-CAM (Selvaraju et al., 2017): where a convolutional layer sees the target class.

cam = ReLU(sum_c w_c A_c) with w_c the spatial mean of d f_target / d A_c, at
the layer's resolution (kept in `extras["layer_attributions"]`, (N, h, w), equal
to Captum's `LayerGradCam` there), then bilinearly upsampled to the input's
spatial size and repeated over the input's channels, so `attributions` has the
inputs' shape and layout like every other method. A vision transformer's token
layer (N, tokens, dim) is mapped with `token_grid=(rows, cols)`: the last
rows * cols tokens are the patches on their grid, `dim` plays the channels.

A 1-D feature map (N, C, T) — audio (wav2vec2's feature encoder), time series — gives
a map over time, upsampled linearly to (N, T) or (N, C, T) inputs. Where the inputs
have no axes the map can follow (several inputs, token ids), `attributions` stay at
the layer's resolution (`Explanation.layer` is set), as Captum's LayerGradCam returns
them before `LayerAttribution.interpolate`.
"""

from __future__ import annotations

import numpy as np

from xai_core import Attribution, BatchedModel, Explainer, hookimpl
from xai_core.errors import OptionError
from xai_core.explainer import check_bool, chosen_layer


def resize_bilinear(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w) -> (N, H, W), bilinear with half-pixel centres (align_corners=False)."""
    n, h, w = maps.shape
    H, W = size

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, pos - lo

    y0, y1, fy = axis(h, H)
    x0, x1, fx = axis(w, W)
    top = maps[:, y0][:, :, x0] * (1 - fx) + maps[:, y0][:, :, x1] * fx
    bottom = maps[:, y1][:, :, x0] * (1 - fx) + maps[:, y1][:, :, x1] * fx
    return top * (1 - fy)[None, :, None] + bottom * fy[None, :, None]


def tokens_to_grid(tokens: np.ndarray, grid: tuple[int, int], layer: str) -> np.ndarray:
    """(N, tokens, dim) -> (N, rows, cols, dim): a vision transformer's patch tokens on their
    grid, leading tokens beyond rows * cols (class, distillation) dropped, as
    pytorch-grad-cam's `reshape_transform` does."""
    rows, cols = grid
    if tokens.ndim != 3 or tokens.shape[1] < rows * cols:
        raise OptionError(
            f"token_grid={tuple(grid)} needs a layer output (N, tokens, dim) with at least "
            f"{rows * cols} tokens; layer {layer!r} outputs {tokens.shape}."
        )
    patches = tokens[:, tokens.shape[1] - rows * cols :]
    return patches.reshape(len(tokens), rows, cols, tokens.shape[2])


class GradCAM(Explainer):
    name = "grad_cam"
    defaults = {
        "layer": None,
        "attribute_to_layer_input": False,
        "relu_attributions": True,
        "token_grid": None,
    }
    requires = ("gradients at a layer",)
    target_from_first_pass = True

    def validate(self) -> None:
        if not isinstance(self.options["layer"], str):
            raise OptionError(
                "grad_cam needs layer=<name of a convolutional layer>, e.g. the last one; "
                "xai_core.adapt(model).layers() lists the names."
            )
        check_bool("relu_attributions", self.options["relu_attributions"])
        grid = self.options["token_grid"]
        if grid is not None and not (
            isinstance(grid, (tuple, list))
            and len(grid) == 2
            and all(isinstance(g, int) and g > 0 for g in grid)
        ):
            raise OptionError(
                f"token_grid must be (rows, cols) of the patch grid, e.g. (14, 14), got {grid!r}."
            )

    def explain(self, model: BatchedModel, inputs: np.ndarray, target: np.ndarray) -> Attribution:
        layer = chosen_layer(self.options)
        model.check_layers([layer])
        activation, grads = model.layer_gradients(inputs, target, layer)
        channels_last = model.channels_last
        if self.options["token_grid"] is not None:
            activation, grads = (
                tokens_to_grid(activation, self.options["token_grid"], layer),
                (tokens_to_grid(grads, self.options["token_grid"], layer)),
            )
            channels_last = True  # (N, h, w, dim)
        images = inputs.ndim == 4 and not (model.layout is not None and model.layout.packed)
        if activation.ndim < 3 or (images and activation.ndim == 3):
            raise OptionError(
                f"layer {layer!r} has output shape {activation.shape}, with no spatial "
                "or time axis for Grad-CAM to map; pick a convolutional layer"
                + _suggestions(model)
                + ", or for a vision transformer's (N, tokens, dim) layer pass "
                "token_grid=(rows, cols) of its patch grid."
            )
        if channels_last:  # to (N, C, h, w) or (N, C, t)
            activation = np.moveaxis(activation, -1, 1)
            grads = np.moveaxis(grads, -1, 1)
        weights = grads.mean(axis=tuple(range(2, grads.ndim)), keepdims=True)
        cam = (weights * activation).sum(axis=1)
        if self.options["relu_attributions"]:
            cam = np.maximum(cam, 0)
        attributions = _to_inputs(cam, inputs, model)
        if attributions is None:  # several inputs, or no input axes the map can follow
            return Attribution(
                attributions=cam.astype(np.float64),
                extras={"layer_attributions": cam.astype(np.float64)},
                layer=layer,
            )
        return Attribution(
            attributions=attributions.astype(_float(inputs)),
            extras={"layer_attributions": cam.astype(_float(inputs))},
        )


def _float(inputs: np.ndarray) -> np.dtype:
    return inputs.dtype if inputs.dtype.kind == "f" else np.dtype(np.float64)


def _suggestions(model: BatchedModel) -> str:
    """Convolutional layers to suggest. transformers' `Conv1D` (GPT-2's `c_attn`) is a
    linear layer under that name, and is not one of them."""
    convolutional = [
        i.name
        for i in model.layers()
        if "conv" in i.kind.lower() and not (model.backend == "torch" and i.kind == "Conv1D")
    ]
    return f" such as {', '.join(convolutional[-3:])}" if convolutional else ""


def _to_inputs(cam: np.ndarray, inputs: np.ndarray, model: BatchedModel) -> np.ndarray | None:
    """The layer's map upsampled to the inputs (bilinear for images, linear for (N, C, T)
    sequences and (N, T) waveforms) and repeated over their channels; None where the
    inputs have no such axes (several inputs packed, or a map of other dimensions)."""
    if model.layout is not None and model.layout.packed:
        return None
    channel_axis = -1 if model.channels_last else 1
    if cam.ndim == 3 and inputs.ndim == 4:  # images
        spatial = inputs.shape[1:-1] if model.channels_last else inputs.shape[2:]
        upsampled = resize_bilinear(cam.astype(np.float64), tuple(spatial))
    elif cam.ndim == 2 and inputs.ndim in (2, 3):  # time series: (N, T) or (N, C, T)
        length = inputs.shape[1] if inputs.ndim == 2 or model.channels_last else inputs.shape[2]
        upsampled = resize_bilinear(cam[:, None, :].astype(np.float64), (1, length))[:, 0]
        if inputs.ndim == 2:
            return upsampled
    else:
        return None
    return np.repeat(
        np.expand_dims(upsampled, channel_axis), inputs.shape[channel_axis], channel_axis
    )


@hookimpl
def xai_explainers() -> list[type[Explainer]]:
    return [GradCAM]
