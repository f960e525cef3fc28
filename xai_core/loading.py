"""Load a model saved in its framework's own format, importing only that framework.

Safe by default: a file may come from anyone, so nothing in it runs unless the
user says they trust it. Without `trust` only formats that are data load: ONNX
(a protobuf), `.keras` and `.h5` files under Keras' `safe_mode` (a JSON config of
built-in layers and the weights; Keras refuses a Lambda's marshalled bytecode and
a TFSMLayer there) and a `paddle.jit.save`
prefix under Paddle's PIR format (a JSON program of operators and a parameter
file; its pickled `.pdiparams.info` is never read). Everything that carries a
program needs `trust=True` (`xai ... --trust`): TorchScript (its `__setstate__`
and methods are TorchScript code that runs at load and can read and write files),
pickled PyTorch modules, Keras files with Lambda layers or TFSMLayers, and
Paddle's legacy (non-PIR) loader, which unpickles `.pdiparams.info`.
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
    "(`xai ... --trust`); otherwise ask for a format that is only data: an ONNX export, a "
    ".keras file without Python lambdas, or a paddle.jit.save prefix (PIR format)."
)


def load_model(path: str | Path, *, trust: bool = False) -> Any:
    """The model stored at `path`, chosen by file extension; code inside runs only if `trust`."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth", ".keras", ".h5", ".onnx"):
        if not path.is_file():
            raise XaiError(f"no such file: {str(path)!r}")
        if path.stat().st_size == 0:
            raise XaiError(f"{str(path)!r} is empty (0 bytes): it holds no model.")
    if suffix in (".pt", ".pth"):
        return _load_torch(path, trust)
    if suffix in (".keras", ".h5"):
        return _load_keras(path, trust)
    if suffix == ".onnx":
        return _load_onnx(path)
    prefix = path.with_suffix("") if suffix in (".pdiparams", ".pdmodel", ".json") else path
    if prefix.with_suffix(".pdiparams").exists():
        return _load_paddle(prefix, trust)
    raise XaiError(f"cannot tell the format of {str(path)!r}. Supported: {FORMATS}.")


def _load_onnx(path: Path) -> Any:
    """An `onnx.ModelProto` (a protobuf: loading runs nothing)."""
    try:
        import onnx
    except ImportError as exc:
        raise XaiError("reading .onnx files needs onnx: pip install 'xai-core[onnx]'") from exc
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise XaiError(f"{str(path)!r} is not an ONNX model onnx can read: {exc}") from exc
    if not model.graph.node or not model.graph.output:
        raise XaiError(
            f"{str(path)!r} parses as ONNX but holds no graph (no nodes or no outputs): it is "
            "not an exported model. Export it again (torch.onnx.export, tf2onnx, paddle2onnx)."
        )
    return model


def _load_keras(path: Path, trust: bool) -> Any:
    import keras

    unreadable = f"{str(path)!r} is not a Keras model file Keras can read"
    try:
        return keras.models.load_model(path, safe_mode=not trust)
    except RecursionError as exc:
        raise XaiError(f"{unreadable}: its config is nested too deeply.") from exc
    except Exception as exc:  # noqa: BLE001 - Keras raises ValueError, TypeError, OSError...
        text = str(exc)
        if not trust and "TFSMLayer" in text:
            raise XaiError(
                f"{str(path)!r} holds a TFSMLayer, which loads a TensorFlow SavedModel (a "
                f"program) from disk. {UNTRUSTED}"
            ) from exc
        if not trust and ("safe_mode" in text or "lambda" in text.lower()):
            raise XaiError(
                f"{str(path)!r} holds Python code (a Lambda layer). {UNTRUSTED}"
            ) from exc
        raise XaiError(f"{unreadable}: {type(exc).__name__}: {text[:300]}") from exc


def _load_paddle(prefix: Path, trust: bool) -> Any:
    """A `paddle.jit.save` prefix. Paddle's PIR loader reads a JSON program and the
    parameter file; the legacy loader (`FLAGS_enable_pir_api=0`) also unpickles
    `PREFIX.pdiparams.info`, so it needs trust."""
    import paddle

    if not trust and not paddle.framework.use_pir_api():
        raise XaiError(
            f"{str(prefix)!r}: Paddle's legacy program format is loaded (FLAGS_enable_pir_api "
            f"is off), and that loader unpickles {prefix.name}.pdiparams.info. {UNTRUSTED}"
        )
    try:
        return paddle.jit.load(str(prefix))
    except Exception as exc:  # noqa: BLE001 - Paddle raises RuntimeError, ValueError, OSError...
        reason = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
        raise XaiError(
            f"{str(prefix)!r} is not a paddle.jit.save model Paddle can read: {reason[0][:300]}"
        ) from exc


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a `code/` folder (the program) and
    `constants.pkl`; torch.save's archives have neither."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def _load_torch(path: Path, trust: bool) -> Any:
    import pickle

    import torch

    if _is_torchscript(path):
        if not trust:
            raise XaiError(
                f"{str(path)!r} is TorchScript: a program whose methods (and __setstate__) "
                f"run when it is loaded. {UNTRUSTED}"
            )
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError and friends
            raise XaiError(f"{str(path)!r} is not TorchScript torch can read: {_why(exc)}") from exc
    try:
        model = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        if "unsupported global" in str(exc).lower():  # refused a class: pickled code
            raise XaiError(
                f"{str(path)!r} is a pickled Python object, not TorchScript. {UNTRUSTED}"
            ) from exc
        raise XaiError(f"{str(path)!r} is not a file torch can read: {_why(exc)}") from exc
    except Exception as exc:  # noqa: BLE001 - RuntimeError, EOFError, ValueError, OSError...
        raise XaiError(f"{str(path)!r} is not a file torch can read: {_why(exc)}") from exc
    if not isinstance(model, torch.nn.Module):
        raise XaiError(
            f"{str(path)!r} holds a {type(model).__name__}, not a model: a state_dict needs "
            "the model's class; build the model and load_state_dict it, or export it to ONNX."
        )
    return model


def _why(exc: BaseException) -> str:
    """A one-line reason, never empty (some torch errors have no message)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def load_text_model(folder: str | Path, *, trust: bool = False) -> tuple[Any, Any]:
    """(model, tokenizer) from a HuggingFace model folder (`save_pretrained`), PyTorch
    weights: a causal language model or a sequence classifier, by the config's
    architecture. Only from the folder (nothing downloaded); without `trust` only
    safetensors weights load and the folder's own model code never runs (pickled
    `pytorch_model.bin` weights and `trust_remote_code` both run code)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise XaiError(
            f"{str(folder)!r} is not a HuggingFace model folder (no config.json): save one "
            "with model.save_pretrained(folder) and tokenizer.save_pretrained(folder)."
        )
    try:
        import transformers
    except ImportError as exc:
        raise XaiError("explain-text needs transformers: pip install transformers") from exc
    options = {"local_files_only": True, "trust_remote_code": trust}
    config = transformers.AutoConfig.from_pretrained(folder, **options)
    architectures = " ".join(getattr(config, "architectures", None) or [])
    if "SequenceClassification" in architectures:
        cls = transformers.AutoModelForSequenceClassification
    elif "CausalLM" in architectures or "LMHead" in architectures:
        cls = transformers.AutoModelForCausalLM
    else:
        raise XaiError(
            f"the model in {str(folder)!r} is a {architectures or 'model of unknown kind'}; "
            "explain-text explains sequence classifiers and causal language models."
        )
    if not trust and not any(folder.glob("*.safetensors")):
        raise XaiError(f"{str(folder)!r} holds no safetensors weights. {UNTRUSTED}")
    try:
        model = cls.from_pretrained(folder, use_safetensors=not trust or None, **options)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **options)
    except (OSError, ValueError) as exc:
        raise XaiError(f"cannot load the model and tokenizer in {str(folder)!r}: {exc}") from exc
    return model.eval(), tokenizer
