"""One model summary for every framework, the network drawings, and `xai summary`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hostile_files import WritesAFile

import xai_core
from xai_core.testing.twins import cnn_weights, mlp_weights, to_layout, twin

from models import images, torch_cnn, torch_mlp


def test_torch_summary_counts_match_torch():
    model = torch_cnn()
    s = xai_core.summary(model, inputs=images(1))
    assert s.total_params == sum(p.numel() for p in model.parameters())
    shapes = {name: shape for name, _, shape, _ in s.rows()}
    assert shapes["conv2"] == "(None, 16, 4, 4)" and shapes["fc"] == "(None, 10)"
    text = str(s)
    assert "total parameters: 1,418" in text and "conv1" in text and "Conv2d" in text


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_twins_have_the_same_summary_in_every_framework(kind):
    pytest.importorskip("tensorflow")
    weights = cnn_weights() if kind == "cnn" else mlp_weights()
    x = images(1) if kind == "cnn" else np.zeros((1, 6), np.float32)
    tables, shapes = {}, {}
    for fw in ("torch", "paddle", "tensorflow"):
        s = xai_core.summary(twin(fw, kind, weights), inputs=to_layout(x, fw))
        tables[fw] = [(name, params) for name, _, _, params in s.rows()]
        channels_first = [  # Keras reports (N, H, W, C): compare in PyTorch's layout
            (d[0], d[3], d[1], d[2]) if fw == "tensorflow" and len(d) == 4 else tuple(d)
            for d in (layer.output_shape for layer in s.layers)
        ]
        shapes[fw] = channels_first
        assert s.backend == fw
    assert tables["torch"] == tables["paddle"] == tables["tensorflow"]
    # with inputs, every output shape is known (Keras's symbolic None dims filled in too)
    assert shapes["torch"] == shapes["paddle"] == shapes["tensorflow"]
    assert all(d is not None for shape in shapes["torch"] for d in shape[1:])


def test_dense_network_is_drawn_as_neurons_and_arrows():
    s = xai_core.summary(torch_mlp(), inputs=np.zeros((1, 6), np.float32))
    assert s.is_dense()
    fig = s.plot()
    columns = [len(c.get_offsets()) for c in fig.axes[0].collections]
    assert columns == [6, 10, 3]  # input 6, hidden 16 shown as 10, output 3
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert any("fc1" in t and "ReLU" in t for t in labels) and "... 16 units" in labels


def test_other_networks_are_drawn_as_layer_blocks():
    s = xai_core.summary(torch_cnn(), inputs=images(1))
    assert not s.is_dense()
    fig = s.plot()
    assert len(fig.axes[0].patches) == 8
    assert any("conv2" in t.get_text() for t in fig.axes[0].texts)


HEAVY = ("torch", "tensorflow", "keras", "paddle")


def summary_cli(path: str, *args: str) -> tuple[str, list[str]]:
    code = (
        "import sys, json, io, contextlib\n"
        "from xai_core.cli import main\n"
        "buf = io.StringIO()\n"
        f"with contextlib.redirect_stdout(buf): rc = main(['summary', {path!r}, *{list(args)!r}])\n"
        "assert rc == 0\n"
        f"print(json.dumps([buf.getvalue(), [m for m in {HEAVY!r} if m in sys.modules]]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return tuple(json.loads(result.stdout.strip().splitlines()[-1]))


def test_cli_summary_of_torchscript_and_full_torch_models(tmp_path):
    scripted = tmp_path / "cnn.pt"
    torch.jit.script(torch_cnn()).save(str(scripted))
    text, loaded = summary_cli(str(scripted), "--trust")  # TorchScript is a program
    assert "CNN (torch)" in text and "total parameters: 1,418" in text and loaded == ["torch"]
    full = tmp_path / "mlp.pth"
    torch.save(torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU()), full)
    text, _ = summary_cli(
        str(full), "--trust", "--input-shape", "6", "--plot", str(tmp_path / "d.png")
    )
    assert "(None, 4)" in text and "total parameters: 28" in text
    assert (tmp_path / "d.png").stat().st_size > 5000


def test_cli_summary_of_a_keras_file_imports_only_tensorflow(tmp_path):
    pytest.importorskip("tensorflow")
    code = (
        "from xai_core.testing.twins import keras_cnn, cnn_weights\n"
        f"keras_cnn(cnn_weights()).save({str(tmp_path / 'cnn.keras')!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    text, loaded = summary_cli(str(tmp_path / "cnn.keras"))
    assert "total parameters: 1,418" in text and "conv2" in text
    assert sorted(loaded) == ["keras", "tensorflow"]


def test_cli_summary_of_a_paddle_jit_model_imports_only_paddle(tmp_path):
    pytest.importorskip("paddle")
    prefix = tmp_path / "mlp"
    code = (
        "import paddle\n"
        "from xai_core.testing.twins import paddle_mlp, mlp_weights\n"
        "model = paddle_mlp(mlp_weights())\n"
        f"paddle.jit.save(model, {str(prefix)!r}, "
        "input_spec=[paddle.static.InputSpec([None, 6], 'float32')])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    text, loaded = summary_cli(str(prefix))
    assert "(paddle)" in text and loaded == ["paddle"]


def test_cli_summary_of_an_unknown_format_is_a_clear_error(tmp_path):
    bogus = tmp_path / "model.bin"
    bogus.write_bytes(b"x")
    result = subprocess.run(
        [sys.executable, "-m", "xai_core.cli", "summary", str(bogus)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "cannot tell the format" in result.stderr


def test_a_pickled_file_runs_no_code_without_trust(tmp_path):
    evil, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    torch.save({"model": WritesAFile(str(marker))}, evil)
    result = subprocess.run(
        [sys.executable, "-m", "xai_core.cli", "summary", str(evil)], capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert "--trust" in result.stderr and "run code" in result.stderr
    assert not marker.exists()
    with pytest.raises(xai_core.XaiError, match="trust=True"):
        xai_core.load_model(evil)
    assert not marker.exists()


def test_a_full_torch_module_loads_only_with_trust(tmp_path):
    full = tmp_path / "mlp.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(6, 4)), full)
    with pytest.raises(xai_core.XaiError, match="trust=True"):
        xai_core.load_model(full)
    assert isinstance(xai_core.load_model(full, trust=True), torch.nn.Module)
    weights = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(6, 4).state_dict(), weights)  # safe to read, but not a model
    with pytest.raises(xai_core.XaiError, match="state_dict"):
        xai_core.load_model(weights)


def test_missing_and_text_files_are_clear_errors(tmp_path):
    with pytest.raises(xai_core.XaiError, match="no such file"):
        xai_core.load_model(tmp_path / "absent.keras")
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    with pytest.raises(xai_core.XaiError, match="not a file torch can read"):
        xai_core.load_model(text)


def test_a_keras_lambda_needs_trust(tmp_path):
    pytest.importorskip("tensorflow")
    path = tmp_path / "lam.keras"
    code = (
        "import keras\n"
        "m = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])\n"
        f"m.save({str(path)!r})\n"
        "import xai_core\n"
        "try:\n"
        f"    xai_core.load_model({str(path)!r})\n"
        "except xai_core.XaiError as e:\n"
        "    assert 'trust=True' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('loaded a lambda without trust')\n"
        f"assert xai_core.load_model({str(path)!r}, trust=True) is not None\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
