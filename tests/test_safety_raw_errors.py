"""Every path that ended in a raw exception or an unclear message (issue 18, items 7 and
8) is now an XaiError that says what is wrong. Each case is built the way a careless
user or an attacker would build it."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

import xai_core

from models import tabular

pytest.importorskip("zarr")


def linear():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3)


def run(data, tmp_path, **options):
    return xai_core.explain_dataset(
        linear(), data, "saliency", out=tmp_path / "out", progress=False, **options
    )


def _npy_with_header(path, header: bytes, payload: bytes) -> None:
    header = header.ljust(118) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload)


def _data_cases(tmp_path):
    ones = np.ones((10, 4), np.float32)
    np.save(tmp_path / "good.npy", ones)
    good = (tmp_path / "good.npy").read_bytes()
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object))
    (tmp_path / "truncated.npy").write_bytes(good[:200])
    (tmp_path / "garbage.npy").write_bytes(b"garbage" * 30)
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04garbage" * 30)
    _npy_with_header(
        tmp_path / "overflow.npy",
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999999999999, 4), }",
        b"\0" * 64,
    )
    _npy_with_header(
        tmp_path / "claims_more.npy",
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999, 4), }",
        b"\0" * 64,
    )
    with zipfile.ZipFile(tmp_path / "short_member.npz", "w") as zf:  # stored, cut short
        zf.writestr("x.npy", good[:-40])
    (tmp_path / "garbage.parquet").write_bytes(b"PAR1garbagePAR1")
    (tmp_path / "not_images").mkdir()
    (tmp_path / "not_images" / "a.png").write_bytes(b"not a png")
    return {
        "object .npy": (str(tmp_path / "objects.npy"), "Python objects"),
        "truncated .npy": (str(tmp_path / "truncated.npy"), "truncated or damaged"),
        "garbage .npy": (str(tmp_path / "garbage.npy"), "cannot read the data"),
        "garbage .npz": (str(tmp_path / "garbage.npz"), "cannot read the data"),
        "overflowing header": (str(tmp_path / "overflow.npy"), "truncated or damaged"),
        "header claims more rows": (str(tmp_path / "claims_more.npy"), "truncated or damaged"),
        "short .npz member": (str(tmp_path / "short_member.npz"), "truncated or damaged"),
        "garbage parquet": (str(tmp_path / "garbage.parquet"), "cannot read the data"),
        "not an image": (str(tmp_path / "not_images"), "cannot identify image"),
        "bytes": (b"\x00\x01", "not a dataset"),
        "a string of text as rows": ({"x": np.array(["a", "b"])}, "not rows of numbers"),
    }


CASES = [
    "object .npy",
    "truncated .npy",
    "garbage .npy",
    "garbage .npz",
    "overflowing header",
    "header claims more rows",
    "short .npz member",
    "garbage parquet",
    "not an image",
    "bytes",
    "a string of text as rows",
]


@pytest.mark.parametrize("case", CASES)
def test_damaged_or_odd_data_is_an_input_error(tmp_path, case):
    data, message = _data_cases(tmp_path)[case]
    with pytest.raises(xai_core.InputError, match=message):
        run(data, tmp_path)


def test_a_decompression_bomb_png_is_an_input_error(tmp_path):
    from PIL import Image

    folder = tmp_path / "bomb"
    folder.mkdir()
    Image.new("L", (20000, 20000)).save(folder / "b.png")  # 400 Mpx, 400 KB on disk
    with pytest.raises(xai_core.InputError, match="DecompressionBomb"):
        run(str(folder), tmp_path)


def test_a_ragged_iterable_is_an_input_error(tmp_path):
    def ragged():
        yield np.ones((2, 4), np.float32)
        yield np.ones((2, 5), np.float32)

    with pytest.raises(xai_core.InputError, match="cannot read the data"):
        run(ragged(), tmp_path, batch_size=4)


def test_option_types_are_option_errors(tmp_path):
    x = tabular(3, d=4)
    with pytest.raises(xai_core.OptionError, match="forward_kwargs must be a dict"):
        run(x, tmp_path, forward_kwargs=[1])
    with pytest.raises(xai_core.OptionError, match="engine_options must be a dict"):
        run(x, tmp_path, engine_options=[1])
    with pytest.raises(xai_core.OptionError, match="out= must be"):
        xai_core.explain_dataset(linear(), x, "saliency", out=3, progress=False)


def test_names_with_slashes_and_dots_are_stored_under_safe_keys(tmp_path):
    class TwoNamed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, **inputs):
            return self.fc(inputs["../evil"] + inputs["a/b"])

    x = {"../evil": tabular(3, d=4), "a/b": tabular(3, d=4, seed=2)}
    results = xai_core.explain_dataset(
        TwoNamed(), x, "saliency", out=tmp_path / "s", progress=False, store_inputs=True
    )
    assert sorted(results[0:3].inputs) == ["../evil", "a/b"]
    np.testing.assert_array_equal(results[0:3].inputs["../evil"], x["../evil"])
    assert not (tmp_path / "evil").exists()  # nothing written outside the store
    assert all(p.is_relative_to(tmp_path / "s") for p in (tmp_path / "s").rglob("*"))


def test_an_onnx_model_onnxruntime_rejects_names_onnxruntime(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
    )
    onnx.save(helper.make_model(graph), tmp_path / "bad.onnx")
    with pytest.raises(xai_core.UnsupportedModelError, match="onnxruntime .*NoSuchOp"):
        xai_core.explain(xai_core.load_model(tmp_path / "bad.onnx"), tabular(2, d=3), "lime")
    from xai_core.registry import REGISTRY

    assert not [r for r in REGISTRY.backend_failures() if "onnx" in str(r)]  # not marked failed


def test_a_huge_float_target_says_its_value():
    with pytest.raises(xai_core.TargetError, match=r"target 1e\+300 out of range"):
        xai_core.explain(linear(), tabular(2, d=4), "saliency", target=1e300)


def _saved_explanation(tmp_path):
    path = tmp_path / "e.npz"
    xai_core.explain(linear(), tabular(2, d=4), "saliency").save(path)
    return path


def test_explanation_load_refuses_type_confused_metadata(tmp_path):
    path = _saved_explanation(tmp_path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta["activations"] = {"not": "a list"}
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "confused.npz", **arrays)
    with pytest.raises(xai_core.XaiError, match="'activations' is a dict"):
        xai_core.Explanation.load(tmp_path / "confused.npz")


def test_explanation_load_refuses_a_zip_bomb(tmp_path, monkeypatch):
    import xai_core.memory

    path = _saved_explanation(tmp_path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["extra_0"] = np.zeros(2**28, np.uint8)  # 256 MiB of zeros, ~0.3 MB compressed
    np.savez_compressed(tmp_path / "bomb.npz", **arrays)
    monkeypatch.setattr(xai_core.memory, "available_memory", lambda: 256 * 2**20)
    with pytest.raises(xai_core.XaiError, match="would decompress to"):
        xai_core.Explanation.load(tmp_path / "bomb.npz")


def _cli(*argv):
    return subprocess.run(
        [sys.executable, "-m", "xai_core.cli", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _saved_onnx(tmp_path):
    from models import export_twin_cnn_to_onnx

    pytest.importorskip("onnx")
    path = tmp_path / "cnn.onnx"
    export_twin_cnn_to_onnx(path)
    return path


@pytest.mark.parametrize("shape", ["-1,28,28", "0", "100000,100000,100000"])
def test_xai_summary_refuses_shapes_that_are_not_a_sample(tmp_path, shape):
    result = _cli("summary", _saved_onnx(tmp_path), f"--input-shape={shape}")
    assert result.returncode == 2, result.stderr[-1500:]
    assert "is not the shape of one sample" in result.stderr


def test_xai_compare_checks_the_plot_folder_before_the_run(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    result = _cli(
        "compare",
        _saved_onnx(tmp_path),
        tmp_path / "x.npy",
        "--methods",
        "occlusion",
        "--metrics",
        "sparseness",
        "--plot",
        tmp_path / "missing" / "c.png",
    )
    assert result.returncode == 2 and "does not exist" in result.stderr, result.stderr[-1500:]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_an_xai_error(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(xai_core.XaiError, match="cannot"):
            run(tabular(3, d=4), folder)
    finally:
        folder.chmod(0o700)


def test_a_file_size_limit_is_an_xai_error_and_the_same_call_resumes(tmp_path):
    """RLIMIT_FSIZE stands for a full disk: a chunk's write fails (EFBIG). The error says
    so; once space is back the same call completes the store, equal to a run that never
    failed."""
    code = """
import resource, sys, numpy as np, torch, xai_core
torch.manual_seed(0)
model = torch.nn.Linear(64, 3)
x = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
if sys.argv[1] == "limited":
    resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000))  # metadata fits, a chunk not
try:
    r = xai_core.explain_dataset(model, x, "saliency", out=sys.argv[2], batch_size=32,
                                 store_inputs=True, progress=False)  # 8 KB of noise a chunk
    np.save(sys.argv[2] + ".npy", r.attributions[:])
    print("complete", r.complete)
except xai_core.XaiError as e:
    print("refused:", str(e)[:80])
"""
    out, whole = tmp_path / "s", tmp_path / "whole"

    def child(mode, where):
        result = subprocess.run(
            [sys.executable, "-c", code, mode, str(where)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    assert "refused: cannot write batch 0" in child("limited", out)
    assert "complete True" in child("free", out)
    assert "complete True" in child("free", whole)
    np.testing.assert_array_equal(np.load(f"{out}.npy"), np.load(f"{whole}.npy"))


def test_zero_rows_are_an_input_error(tmp_path):
    with pytest.raises(xai_core.InputError, match="no rows"):
        run(np.zeros((0, 4), np.float32), tmp_path)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_an_unwritable_location_is_an_xai_error_even_for_root(tmp_path):
    """/proc refuses new entries whoever asks: a read-only place that root cannot write."""
    with pytest.raises(xai_core.XaiError, match="cannot"):
        xai_core.explain_dataset(
            linear(), tabular(3, d=4), "saliency", out="/proc/self/xai_store", progress=False
        )


@pytest.mark.parametrize("layer, message", [([1, 2], "other than layer names"), (7, "is a int")])
def test_explanation_load_refuses_layer_metadata_that_names_no_layers(tmp_path, layer, message):
    path = _saved_explanation(tmp_path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays["meta"]))
    meta["layer"] = layer  # a list is several layers' names (integrated_gradients, a list)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "layers.npz", **arrays)
    with pytest.raises(xai_core.XaiError, match=message):
        xai_core.Explanation.load(tmp_path / "layers.npz")
