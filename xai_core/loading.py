"""Load a model saved in its framework's own format, importing only that framework.

Safe by default: a file may come from anyone, so nothing in it runs unless the
user says they trust it. TorchScript, `torch.load(weights_only=True)`, Keras
with `safe_mode=True` and Paddle's static format execute no code from the
file; a fully pickled PyTorch module or a Keras file with Python lambdas needs
`trust=True` (`xai ... --trust`), and the error without it says so. ONNX files
are protobufs: reading one runs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import XaiError

FORMATS = (
    "TorchScript or torch.save'd full model (.pt, .pth), Keras (.keras, .h5), "
    "paddle.jit.save prefix (PATH.pdiparams next to PATH.json or PATH.pdmodel), ONNX (.onnx)"
)

UNTRUSTED = (
    "Loading it would run code stored in the file, which can do anything on this machine. "
    "If you made the file yourself or trust its source, pass trust=True "
    "(`xai ... --trust`); otherwise ask for a TorchScript export (torch.jit.save), "
    "a .keras file without Python lambdas, or a paddle.jit.save prefix."
)


def load_model(path: str | Path, *, trust: bool = False) -> Any:
    """The model stored at `path`, chosen by file extension; code inside runs only if `trust`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth", ".keras", ".h5", ".onnx") and not path.is_file():
        raise XaiError(f"no such file: {str(path)!r}")
    if suffix in (".pt", ".pth"):
        return _load_torch(path, trust)
    if suffix in (".keras", ".h5"):
        return _load_keras(path, trust)
    if suffix == ".onnx":
        return _load_onnx(path)
    prefix = path.with_suffix("") if suffix in (".pdiparams", ".pdmodel", ".json") else path
    if prefix.with_suffix(".pdiparams").exists():
        import paddle

        return paddle.jit.load(str(prefix))
    raise XaiError(f"cannot tell the format of {str(path)!r}. Supported: {FORMATS}.")


def _load_onnx(path: Path) -> Any:
    """An `onnx.ModelProto` (a protobuf: loading runs nothing)."""
    try:
        import onnx
    except ImportError as exc:
        raise XaiError("reading .onnx files needs onnx: pip install 'xai-core[onnx]'") from exc
    try:
        return onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise XaiError(f"{str(path)!r} is not an ONNX model onnx can read: {exc}") from exc


def _load_keras(path: Path, trust: bool) -> Any:
    import keras

    try:
        return keras.models.load_model(path, safe_mode=not trust)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "lambda" in str(exc).lower():
            raise XaiError(
                f"{str(path)!r} holds Python code (a Lambda layer). {UNTRUSTED}"
            ) from exc
        raise XaiError(f"{str(path)!r} is not a Keras model file Keras can read: {exc}") from exc
    except OSError as exc:
        raise XaiError(f"{str(path)!r} is not a Keras model file Keras can read: {exc}") from exc


def _load_torch(path: Path, trust: bool) -> Any:
    import pickle

    import torch

    try:
        return torch.jit.load(str(path), map_location="cpu")
    except RuntimeError:
        pass  # not TorchScript
    try:
        model = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if "unsupported global" in str(exc).lower():  # refused a class: pickled code
            raise XaiError(
                f"{str(path)!r} is a pickled Python object, not TorchScript. {UNTRUSTED}"
            ) from exc
        raise XaiError(f"{str(path)!r} is not a file torch can read: {exc}") from exc
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        raise XaiError(f"{str(path)!r} is not a file torch can read: {exc}") from exc
    if not isinstance(model, torch.nn.Module):
        raise XaiError(
            f"{str(path)!r} holds a {type(model).__name__}, not a model: a state_dict needs "
            "the model's class; save a TorchScript (torch.jit.save) or the full module."
        )
    return model
