"""`explain_dataset`: a store equal to explaining every batch by hand, for every kind of
data and every framework; resumable after a kill; refusing to mix runs; bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xai_core
from xai_core.engine import DatasetJob, batch_seed
from xai_core.testing.twins import cnn_weights, mlp_weights, to_layout, twin

from models import export_twin_cnn_to_onnx

pytest.importorskip("zarr")

N, BATCH = 37, 8


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """N images with values k/255, so that PNG files hold them exactly."""
    rng = np.random.default_rng(0)
    return (rng.integers(0, 256, (N, 1, 10, 10)) / 255.0).astype(np.float32)


@pytest.fixture(scope="module")
def cnn():
    return twin("torch", "cnn", cnn_weights(channels=1, seed=3))


def _by_hand(model, x, method, seed=None, target=None, **options):
    """The reference: `explain` on each batch, with the documented per-batch seed."""
    parts = []
    for index, start in enumerate(range(0, len(x), BATCH)):
        extra = {} if seed is None else {"seed": batch_seed(seed, index)}
        t = target[start : start + BATCH] if isinstance(target, np.ndarray) else target
        parts.append(
            xai_core.explain(model, x[start : start + BATCH], method, target=t, **options, **extra)
        )
    return (
        np.concatenate([p.attributions for p in parts]),
        np.concatenate([p.predictions for p in parts]),
        np.concatenate([p.target for p in parts]),
    )


def _check(results, reference, rtol=1e-6, what=""):
    attributions, predictions, target = reference
    assert results.complete and len(results) == len(attributions), what
    np.testing.assert_array_equal(results.target[:], target, err_msg=what)
    np.testing.assert_allclose(
        results.attributions[:], attributions, rtol=rtol, atol=1e-7, err_msg=what
    )
    np.testing.assert_allclose(
        results.predictions[:], predictions, rtol=rtol, atol=1e-7, err_msg=what
    )


def test_a_seeded_method_equals_explaining_each_batch_with_its_seed(cnn, images, tmp_path):
    results = xai_core.explain_dataset(
        cnn,
        images,
        "smoothgrad",
        out=tmp_path / "s",
        batch_size=BATCH,
        n_samples=3,
        seed=11,
        progress=False,
    )
    _check(results, _by_hand(cnn, images, "smoothgrad", seed=11, n_samples=3), rtol=0)
    assert results.attrs["run_seed"] == 11 and results.attrs["method"] == "smoothgrad"
    assert results.attributions.chunks[0] == BATCH  # one chunk per batch
    e = results[5:9]
    assert isinstance(e, xai_core.Explanation) and e.attributions.shape == (4, 1, 10, 10)
    np.testing.assert_array_equal(e.attributions, results.attributions[5:9])


def _write_png_folder(folder: Path, images: np.ndarray) -> None:
    from PIL import Image

    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(np.round(image[0] * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")


def _data_kinds(images: np.ndarray, labels: np.ndarray, tmp: Path, framework: str = "torch"):
    """Every kind of data holding `images` (NCHW; in the framework's layout where the data
    is arrays, as PNG files in the folder)."""
    pngs = tmp / "pngs"
    _write_png_folder(pngs, images)
    images = to_layout(images, framework)
    np.save(tmp / "x.npy", images)
    np.savez(tmp / "xy.npz", x=images, y=labels)
    np.savez_compressed(tmp / "xyc.npz", x=images, y=labels)

    def pairs():
        for i in range(0, N, 5):  # batches of another size than the store's
            yield images[i : i + 5], labels[i : i + 5]

    import torch

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(images), torch.from_numpy(labels)),
        batch_size=6,
    )
    return {
        "array": (images, labels),
        "npy": (tmp / "x.npy", labels),
        "npz": (tmp / "xy.npz", None),
        "npz_compressed": (tmp / "xyc.npz", None),
        "image_folder": (pngs, labels),
        "generator_pairs": (pairs(), None),
        "torch_dataloader": (loader, None),
    }


def test_every_data_kind_gives_the_same_store(cnn, images, tmp_path):
    labels = np.random.default_rng(1).integers(0, 10, N)
    reference = _by_hand(cnn, images, "integrated_gradients", target=labels, n_steps=8)
    for kind, (data, target) in _data_kinds(images, labels, tmp_path).items():
        results = xai_core.explain_dataset(
            cnn,
            data,
            "integrated_gradients",
            out=tmp_path / f"store_{kind}",
            target=target,
            batch_size=BATCH,
            n_steps=8,
            progress=False,
        )
        _check(results, reference, rtol=1e-5, what=kind)
        assert results.attrs["data"]["rows"] in (N, None), kind


@pytest.mark.parametrize("framework", ["torch", "tensorflow", "paddle"])
def test_parquet_table_with_a_target_column(framework, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pytest.importorskip(framework)
    import pyarrow.parquet as pq

    model = twin(framework, "mlp", mlp_weights())
    x = np.random.default_rng(2).normal(size=(N, 6)).astype(np.float32)
    y = np.random.default_rng(3).integers(0, 3, N)
    table = {f"f{i}": x[:, i] for i in range(6)}
    table["label"] = y
    table["name"] = np.array([f"row{i}" for i in range(N)])  # not numeric: left out
    pq.write_table(pa.table(table), tmp_path / "t.parquet", row_group_size=10)
    results = xai_core.explain_dataset(
        model,
        tmp_path / "t.parquet",
        "saliency",
        out=tmp_path / "s",
        target="label",
        batch_size=BATCH,
        progress=False,
    )
    _check(results, _by_hand(model, x, "saliency", target=y))
    assert results.attrs["data"]["columns"] == [f"f{i}" for i in range(6)]


@pytest.mark.parametrize("framework", ["tensorflow", "paddle"])
def test_every_data_kind_on_keras_and_paddle(framework, images, tmp_path):
    pytest.importorskip(framework)
    model = twin(framework, "cnn", cnn_weights(channels=1, seed=3))
    labels = np.random.default_rng(1).integers(0, 10, N)
    x = to_layout(images, framework)
    reference = _by_hand(model, x, "saliency", target=labels)
    for kind, (data, target) in _data_kinds(images, labels, tmp_path, framework).items():
        results = xai_core.explain_dataset(
            model,
            data,
            "saliency",
            out=tmp_path / f"store_{kind}",
            target=target,
            batch_size=BATCH,
            progress=False,
        )
        _check(results, reference, rtol=1e-5, what=f"{framework} {kind}")


@pytest.mark.parametrize("framework", ["tensorflow", "paddle"])
def test_keras_and_paddle_models_and_their_data_loaders(framework, images, tmp_path):
    pytest.importorskip(framework)
    model = twin(framework, "cnn", cnn_weights(channels=1, seed=3))
    x = to_layout(images, framework)
    labels = np.random.default_rng(4).integers(0, 10, N)
    if framework == "tensorflow":
        import tensorflow as tf

        loader = tf.data.Dataset.from_tensor_slices((x, labels)).batch(5)
    else:
        import paddle

        dataset = paddle.io.TensorDataset([paddle.to_tensor(x), paddle.to_tensor(labels)])
        loader = paddle.io.DataLoader(dataset, batch_size=5, shuffle=False)
    reference = _by_hand(model, x, "integrated_gradients", target=labels, n_steps=8)
    results = xai_core.explain_dataset(
        model,
        loader,
        "integrated_gradients",
        out=tmp_path / "s",
        batch_size=BATCH,
        n_steps=8,
        progress=False,
    )
    _check(results, reference, rtol=1e-5)
    _write_png_folder(tmp_path / "pngs", images)  # images in the framework's layout
    from_folder = xai_core.explain_dataset(
        model,
        tmp_path / "pngs",
        "integrated_gradients",
        out=tmp_path / "f",
        target=labels,
        batch_size=BATCH,
        n_steps=8,
        progress=False,
    )
    _check(from_folder, reference, rtol=1e-5)


def test_several_inputs_and_a_saved_onnx_model(tmp_path):
    model = twin("torch", "two_input", xai_core.testing.twins.two_input_weights())
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(N, 4)).astype(np.float32), rng.normal(size=(N, 3)).astype(np.float32)
    results = xai_core.explain_dataset(
        model,
        (a, b),
        "integrated_gradients",
        out=tmp_path / "s",
        batch_size=BATCH,
        progress=False,
    )
    whole = xai_core.explain(model, (a, b), "integrated_gradients")
    got = results[0:N].attributions
    for part, expected in zip(got, whole.attributions, strict=True):
        np.testing.assert_allclose(part, expected, rtol=1e-5, atol=1e-7)

    def two_inputs():  # an iterable of several inputs: tuples whose second part is not labels
        for i in range(0, N, 6):
            yield a[i : i + 6], b[i : i + 6]

    def with_labels():  # ((a, b), labels) pairs
        for i in range(0, N, 6):
            yield (a[i : i + 6], b[i : i + 6]), whole.target[i : i + 6]

    for name, data in (("tuples", two_inputs()), ("pairs", with_labels())):
        streamed = xai_core.explain_dataset(
            model,
            data,
            "integrated_gradients",
            out=tmp_path / name,
            batch_size=BATCH,
            progress=False,
        )
        for part, expected in zip(streamed[0:N].attributions, whole.attributions, strict=True):
            np.testing.assert_allclose(part, expected, rtol=1e-5, atol=1e-7, err_msg=name)

    pytest.importorskip("onnxruntime")
    path = tmp_path / "cnn.onnx"
    export_twin_cnn_to_onnx(path, channels=1, seed=3)
    x = np.random.default_rng(6).normal(size=(N, 1, 10, 10)).astype(np.float32)
    onnx_results = xai_core.explain_dataset(
        path,
        x,
        "occlusion",
        out=tmp_path / "o",
        window=(1, 3, 3),
        batch_size=BATCH,
        progress=False,
    )
    torch_model = twin("torch", "cnn", cnn_weights(channels=1, seed=3))
    np.testing.assert_allclose(
        onnx_results.attributions[:],
        xai_core.explain(torch_model, x, "occlusion", window=(1, 3, 3)).attributions,
        rtol=1e-4,
        atol=1e-6,
    )


def test_another_run_into_the_same_store_is_refused(cnn, images, tmp_path):
    out = tmp_path / "s"
    xai_core.explain_dataset(cnn, images, "saliency", out=out, batch_size=BATCH, progress=False)
    with pytest.raises(xai_core.XaiError, match="different options.*overwrite=True"):
        xai_core.explain_dataset(
            cnn, images, "saliency", out=out, batch_size=BATCH, abs=False, progress=False
        )
    with pytest.raises(xai_core.XaiError, match="different data"):
        xai_core.explain_dataset(
            cnn, images[:-1], "saliency", out=out, batch_size=BATCH, progress=False
        )
    again = xai_core.explain_dataset(
        cnn, images[:-1], "saliency", out=out, batch_size=BATCH, progress=False, overwrite=True
    )
    assert len(again) == N - 1
    with pytest.raises(xai_core.XaiError, match="not a Zarr store written by explain_dataset"):
        xai_core.open_results(tmp_path / "nothing")
    with pytest.raises(xai_core.OptionError):
        xai_core.explain_dataset(cnn, images, "saliency", out=tmp_path / "t", batch_size=0)
    with pytest.raises(xai_core.UnknownMethodError, match="engine"):
        xai_core.explain_dataset(cnn, images, "saliency", out=tmp_path / "t", engine="spark")


CHILD = """
import os, signal, sys, numpy as np, torch, xai_core
from xai_core.testing.twins import cnn_weights, twin

class DiesAfter(torch.nn.Module):
    def __init__(self, calls):
        super().__init__()
        self.inner = twin("torch", "cnn", cnn_weights(channels=1, seed=3))
        self.calls = calls
    def forward(self, x):
        self.calls -= 1
        if self.calls < 0:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: a real crash
        return self.inner(x)

images = np.load(sys.argv[1])
xai_core.explain_dataset(DiesAfter(int(sys.argv[3])), images, "smoothgrad", out=sys.argv[2],
                         batch_size=8, n_samples=3, seed=5, progress=False)
"""


def test_a_killed_run_resumes_to_the_store_of_an_uninterrupted_one(
    cnn, images, tmp_path, monkeypatch
):
    np.save(tmp_path / "x.npy", images)
    out = tmp_path / "crashed"
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "x.npy"), str(out), "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == -9, child.stderr  # SIGKILL
    partial = xai_core.open_results(out)
    done = set(np.nonzero(partial.group["_done"][:])[0])
    assert 0 < len(done) < 5 and not partial.complete

    computed = []
    original = DatasetJob.explain_batch

    def counting(self, model, batch):
        computed.append(batch.index)
        return original(self, model, batch)

    monkeypatch.setattr(DatasetJob, "explain_batch", counting)
    resumed = xai_core.explain_dataset(
        cnn,
        images,
        "smoothgrad",
        out=out,
        batch_size=BATCH,
        n_samples=3,
        seed=5,
        progress=False,
    )
    assert sorted(computed) == sorted(set(range(5)) - done)  # only the missing batches
    uninterrupted = xai_core.explain_dataset(
        cnn,
        images,
        "smoothgrad",
        out=tmp_path / "whole",
        batch_size=BATCH,
        n_samples=3,
        seed=5,
        progress=False,
    )
    for name in ("attributions", "predictions", "target", "_done"):
        np.testing.assert_array_equal(resumed.group[name][:], uninterrupted.group[name][:])
    assert resumed.complete


MEMORY_CHILD = """
import sys, numpy as np, torch, xai_core

def peak_rss():  # this process's own high-water mark (ru_maxrss would carry the parent's
    # across fork + exec, and pytest's 600 MB hid any growth below it)
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024

model = torch.nn.Sequential(torch.nn.Linear(2000, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
warm = np.zeros((512, 2000), np.float32)
xai_core.explain(model, warm, "saliency")
before = peak_rss()
results = xai_core.explain_dataset(model, sys.argv[1], "saliency", out=sys.argv[2],
                                   batch_size=512, progress=False)
print(len(results), peak_rss() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memory_stays_bounded_on_a_npy_file_larger_than_the_budget(tmp_path):
    """200 MB of rows, a budget of 64 MB of growth: only a batch is ever in memory.
    (Failed at 185 MB with the .npy memory-mapped: a map's touched pages are resident.)"""
    rows = 25_000
    data = np.lib.format.open_memmap(tmp_path / "big.npy", "w+", np.float32, (rows, 2000))
    for start in range(0, rows, 5000):
        data[start : start + 5000] = np.random.default_rng(start).normal(size=(5000, 2000))
    data.flush()
    del data
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(tmp_path / "big.npy"), str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    n, growth = map(int, out.stdout.split())
    assert n == rows
    print(f"peak RSS growth {growth / 2**20:.1f} MiB")
    assert growth < 64 * 2**20, f"peak RSS grew by {growth / 2**20:.0f} MB"


def test_xai_explain_from_the_shell(cnn, images, tmp_path):
    import torch

    torch.jit.save(
        torch.jit.trace(cnn.eval(), torch.from_numpy(images[:2])), str(tmp_path / "m.pt")
    )
    np.save(tmp_path / "x.npy", images)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "xai_core.cli",
            "explain",
            str(tmp_path / "m.pt"),
            str(tmp_path / "x.npy"),
            "--method",
            "smoothgrad",
            "--out",
            str(tmp_path / "s"),
            "--option",
            "seed=2",
            "--option",
            "n_samples=3",
            "--batch-size",
            str(BATCH),
            "--trust",  # TorchScript is a program: our own file
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "s") in result.stdout and f"{N} rows" in result.stdout
    assert "row/s" in result.stderr  # one progress bar: rows, rate, ETA
    stored = xai_core.open_results(tmp_path / "s")
    _check(stored, _by_hand(cnn, images, "smoothgrad", seed=2, n_samples=3), rtol=1e-6)
    assert json.loads(json.dumps(stored.attrs["options"])) == {"n_samples": 3, "seed": 2}


def test_an_fsspec_url_store_resumes_too(cnn, images):
    pytest.importorskip("fsspec")
    url = "memory://xai-core-test-store"
    first = xai_core.explain_dataset(
        cnn, images, "saliency", out=url, batch_size=BATCH, progress=False, overwrite=True
    )
    first.group["_done"][1] = False  # as if the run had stopped before batch 1's commit
    again = xai_core.explain_dataset(
        cnn, images, "saliency", out=url, batch_size=BATCH, progress=False
    )
    assert again.complete
    _check(xai_core.open_results(url), _by_hand(cnn, images, "saliency"))


def test_captured_activations_and_convergence_deltas_are_stored(cnn, images, tmp_path):
    captured = xai_core.explain_dataset(
        cnn,
        images,
        "activations",
        out=tmp_path / "a",
        layers=["conv2"],
        batch_size=BATCH,
        progress=False,
    )
    whole = xai_core.explain(cnn, images, "activations", layers=["conv2"])
    np.testing.assert_allclose(
        captured.activations["conv2"][:], whole.activations["conv2"], rtol=1e-6, atol=1e-7
    )
    assert captured.attributions is None
    ig = xai_core.explain_dataset(
        cnn,
        images,
        "integrated_gradients",
        out=tmp_path / "ig",
        batch_size=BATCH,
        progress=False,
    )
    reference = xai_core.explain(cnn, images, "integrated_gradients")
    np.testing.assert_allclose(
        ig.convergence_delta[:], reference.convergence_delta, rtol=1e-4, atol=1e-6
    )
    assert ig[3:5].convergence_delta.shape == (2,)

    def unseeded():
        return xai_core.explain_dataset(
            cnn,
            images,
            "smoothgrad",
            out=tmp_path / "s",
            n_samples=2,
            batch_size=BATCH,
            progress=False,
        )

    seeded = unseeded()
    drawn = seeded.attrs["run_seed"]
    assert seeded.attrs["options"] == {"n_samples": 2, "seed": drawn}
    # a rerun without a seed resumes with the drawn one instead of refusing or redrawing
    seeded.group["_done"][0] = False
    seeded.group["attributions"][0:BATCH] = 0
    again = unseeded()
    _check(again, _by_hand(cnn, images, "smoothgrad", seed=drawn, n_samples=2), rtol=0)
