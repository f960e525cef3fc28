"""engine="ray" on a local Ray with 2 CPUs: the store equals the local engine's bit for
bit, seeded methods included (a batch's seed comes from the run's seed and its index)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import xai_core
from xai_core.testing.twins import cnn_weights, twin

pytest.importorskip("zarr")
ray = pytest.importorskip("ray")


#: what each Ray worker calls once: a factory, so the model is built where it runs. Workers
#: import it by name, so it lives in an installed module (a test module is not importable
#: there; `functools.partial` of an installed function is)
build_model = functools.partial(twin, "torch", "cnn", cnn_weights(channels=1, seed=3))


@pytest.fixture(scope="module")
def local_ray():
    # address="local": a new cluster even if one is running on this machine
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("ray") / "x.npy"
    np.save(path, np.random.default_rng(0).normal(size=(45, 1, 10, 10)).astype(np.float32))
    return path


def _store(tmp_path, name, data, engine, **options):
    return xai_core.explain_dataset(
        build_model,
        data,
        "smoothgrad",
        out=tmp_path / name,
        batch_size=8,
        n_samples=3,
        seed=7,
        progress=False,
        engine=engine,
        **options,
    )


def test_ray_equals_local_bit_for_bit(local_ray, data, tmp_path):
    local = _store(tmp_path, "local", data, "local")
    distributed = _store(tmp_path, "ray", data, "ray", engine_options={"num_workers": 2})
    assert distributed.complete
    for name in ("attributions", "predictions", "target", "_done"):
        np.testing.assert_array_equal(distributed.group[name][:], local.group[name][:])


def test_ray_with_a_sequential_source_and_resume(local_ray, data, tmp_path):
    x = np.load(data)

    def batches():
        for i in range(0, len(x), 5):
            yield x[i : i + 5]

    local = _store(tmp_path, "local", x, "local")
    streamed = _store(tmp_path, "stream", batches(), "ray", engine_options={"num_workers": 2})
    np.testing.assert_array_equal(streamed.attributions[:], local.attributions[:])
    # a store half done by the local engine is finished by Ray, identically
    flags = local.group["_done"]
    partial = _store(tmp_path, "partial", data, "local")
    partial.group["_done"][2:] = False
    partial.group["attributions"][16:] = 0
    finished = _store(tmp_path, "partial", data, "ray")
    np.testing.assert_array_equal(finished.attributions[:], local.attributions[:])
    assert flags[:].all()


class _KillsTheProcessThatUnpicklesIt:
    """A constant forward argument whose unpickling ends the process: the driver never
    unpickles it, every Ray worker does (the job travels pickled)."""

    def __reduce__(self):
        import os

        return (os._exit, (1,))


def test_a_dead_ray_worker_is_an_xai_error(local_ray, data, tmp_path):
    def batches():
        x = np.load(data)
        for start in range(0, len(x), 8):
            yield x[start : start + 8]

    with pytest.raises(xai_core.XaiError, match="Ray worker failed or died.*resume"):
        _store(
            tmp_path,
            "dead",
            batches(),
            "ray",
            forward_kwargs={"poison": _KillsTheProcessThatUnpicklesIt()},
            engine_options={"num_workers": 1},
        )
