"""A stranger's file never runs code unless the user says they trust it (issue 18, item 1),
and a file that is not a model is a clear XaiError (items 7 and 8).

Each payload is shown to be live first (the framework's own loader runs it), so a test
that passes proves xai_core stopped it, not that the payload was harmless."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hostile_files import WritesAFile

import xai_core

HERE = Path(__file__).parent


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"0000")
    return victim


def _hostile_torchscript(tmp_path: Path) -> tuple[Path, Path]:
    torch = pytest.importorskip("torch")
    from hostile_files import OverwritesAFile

    victim = _victim(tmp_path)
    path = tmp_path / "evil.pt"
    torch.jit.save(torch.jit.script(OverwritesAFile(str(victim))), str(path))
    victim.write_bytes(b"0000")
    return path, victim


def test_torchscript_runs_code_at_load_so_it_needs_trust(tmp_path):
    import torch

    path, victim = _hostile_torchscript(tmp_path)
    torch.jit.load(str(path))  # the payload is live: torch's own loader runs it
    assert victim.read_bytes() == b"XXXX"
    victim.write_bytes(b"0000")
    with pytest.raises(xai_core.XaiError, match="TorchScript.*trust=True"):
        xai_core.load_model(path)
    renamed = path.rename(tmp_path / "evil.pth")  # the extension does not matter
    with pytest.raises(xai_core.XaiError, match="TorchScript"):
        xai_core.load_model(renamed)
    assert victim.read_bytes() == b"0000"
    assert xai_core.load_model(renamed, trust=True) is not None  # the user's own file
    assert victim.read_bytes() == b"XXXX"


@pytest.mark.parametrize("command", ["summary", "explain", "compare"])
def test_the_cli_refuses_torchscript_without_trust(tmp_path, command):
    import numpy as np

    path, victim = _hostile_torchscript(tmp_path)
    data = tmp_path / "x.npy"
    np.save(data, np.ones((2, 3), np.float32))
    argv = {
        "summary": [str(path)],
        "explain": [str(path), str(data), "--method", "saliency", "--out", str(tmp_path / "o")],
        "compare": [str(path), str(data), "--methods", "saliency", "--metrics", "sparseness"],
    }[command]
    result = subprocess.run(
        [sys.executable, "-m", "xai_core.cli", command, *argv], capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--trust" in result.stderr and "TorchScript" in result.stderr
    assert victim.read_bytes() == b"0000"
    assert not (tmp_path / "o").exists()


def test_explain_dataset_refuses_a_torchscript_path_without_trust(tmp_path):
    import numpy as np

    path, victim = _hostile_torchscript(tmp_path)
    with pytest.raises(xai_core.XaiError, match="TorchScript"):
        xai_core.explain_dataset(
            path, np.ones((2, 3), np.float32), "saliency", out=tmp_path / "o", progress=False
        )
    assert victim.read_bytes() == b"0000"


def test_paddle_legacy_loader_unpickles_so_it_needs_trust(tmp_path):
    pytest.importorskip("paddle")
    prefix, marker = tmp_path / "mlp", tmp_path / "pwned"
    save = textwrap.dedent(
        f"""
        import paddle
        paddle.jit.save(paddle.nn.Linear(6, 3), {str(prefix)!r},
                        input_spec=[paddle.static.InputSpec([None, 6], 'float32')])
        """
    )
    env = {"FLAGS_enable_pir_api": "0", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", save], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    info = Path(f"{prefix}.pdiparams.info")
    assert info.exists()
    info.write_bytes(pickle.dumps(WritesAFile(str(marker))))
    load = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(HERE)!r})
        import paddle, xai_core
        try:
            xai_core.load_model({str(prefix)!r})
        except xai_core.XaiError as e:
            assert "trust=True" in str(e) and "pdiparams.info" in str(e), e
            print("refused")
        import os
        assert not os.path.exists({str(marker)!r}), "payload ran without trust"
        try:
            paddle.jit.load({str(prefix)!r})  # Paddle's own loader runs it
        except Exception:
            pass
        print("live" if os.path.exists({str(marker)!r}) else "dead")
        """
    )
    result = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["refused", "live"]


def test_a_pir_paddle_prefix_loads_without_trust(tmp_path):
    pytest.importorskip("paddle")
    prefix = tmp_path / "mlp"
    code = textwrap.dedent(
        f"""
        import paddle, xai_core
        paddle.jit.save(paddle.nn.Linear(6, 3), {str(prefix)!r},
                        input_spec=[paddle.static.InputSpec([None, 6], 'float32')])
        model = xai_core.load_model({str(prefix)!r})
        print(tuple(model(paddle.ones([2, 6])).shape))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "(2,3)" or "(2, 3)" in result.stdout


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.pt", b"", "empty"),
        ("empty.onnx", b"", "empty"),
        ("garbage.onnx", b"\x08\x07", "holds no graph|not an ONNX model"),
        ("garbage.keras", b"PK\x03\x04 not a zip", "not a Keras model file"),
        ("garbage.h5", b"\x89HDF\r\n\x1a\n broken", "not a Keras model file"),
        ("zip.pt", b"PK\x05\x06" + b"\0" * 18, "not a file torch can read"),
    ],
)
def test_files_that_are_not_models_are_clear_errors(tmp_path, name, content, message):
    if name.endswith((".keras", ".h5")):
        pytest.importorskip("tensorflow")
    if name.endswith(".onnx"):
        pytest.importorskip("onnx")
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(xai_core.XaiError, match=message) as info:
        xai_core.load_model(path)
    assert str(info.value).strip().endswith((".", ")")) or ":" in str(info.value)


def test_garbage_paddle_files_are_clear_errors(tmp_path):
    pytest.importorskip("paddle")
    prefix = tmp_path / "model"
    Path(f"{prefix}.pdiparams").write_bytes(b"garbage")
    Path(f"{prefix}.json").write_text("{not json")
    with pytest.raises(xai_core.XaiError, match="not a paddle.jit.save model"):
        xai_core.load_model(prefix)


def test_a_keras_tfsmlayer_needs_trust_and_is_named(tmp_path):
    pytest.importorskip("tensorflow")
    import keras

    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    inner.export(str(tmp_path / "saved"), verbose=False)  # a SavedModel: a TF program
    outer = keras.Sequential([keras.Input((3,)), keras.layers.TFSMLayer(str(tmp_path / "saved"))])
    outer.save(tmp_path / "outer.keras")
    with pytest.raises(xai_core.XaiError, match="TFSMLayer.*trust=True"):
        xai_core.load_model(tmp_path / "outer.keras")


def test_a_keras_file_with_an_unknown_layer_is_a_clear_error(tmp_path):
    pytest.importorskip("tensorflow")
    import json
    import zipfile

    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][-1]["class_name"] = "NoSuchLayer"
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(xai_core.XaiError, match="not a Keras model file Keras can read"):
        xai_core.load_model(tmp_path / "bad.keras")
