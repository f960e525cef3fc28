"""Load a model saved in its framework's own format, importing only that framework."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import XaiError

FORMATS = (
    "TorchScript or torch.save'd full model (.pt, .pth), Keras (.keras, .h5), "
    "paddle.jit.save prefix (PATH.pdiparams next to PATH.json or PATH.pdmodel)"
)


def load_model(path: str | Path) -> Any:
    """The model stored at `path`, chosen by file extension."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth"):
        return _load_torch(path)
    if suffix in (".keras", ".h5"):
        import keras

        return keras.models.load_model(path)
    prefix = path.with_suffix("") if suffix in (".pdiparams", ".pdmodel", ".json") else path
    if prefix.with_suffix(".pdiparams").exists():
        import paddle

        return paddle.jit.load(str(prefix))
    raise XaiError(f"cannot tell the format of {str(path)!r}. Supported: {FORMATS}.")


def _load_torch(path: Path) -> Any:
    import torch

    if not path.exists():
        raise XaiError(f"no such file: {str(path)!r}")
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except RuntimeError:  # not TorchScript: a full pickled module (trusted files only)
        model = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(model, torch.nn.Module):
        raise XaiError(
            f"{str(path)!r} holds a {type(model).__name__}, not a model: a state_dict needs "
            "the model's class; save the full module or a TorchScript instead."
        )
    return model
