"""engine="ray" with address=: joining a cluster that is already running (a head node
started with `ray start --head`), as on a real cluster; the store equals the local one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("zarr")
pytest.importorskip("ray")

CHILD = """
import functools, sys, numpy as np, ray, xai_core
from xai_core.testing.twins import cnn_weights, twin
factory = functools.partial(twin, "torch", "cnn", cnn_weights(channels=1, seed=3))
x = np.random.default_rng(0).normal(size=(20, 1, 10, 10)).astype(np.float32)
joined = xai_core.explain_dataset(factory, x, "smoothgrad", out=sys.argv[2], batch_size=8,
                                  n_samples=3, seed=4, progress=False, engine="ray",
                                  engine_options={"address": sys.argv[1]})
assert not ray.is_initialized()  # the engine disconnects from a cluster it joined
local = xai_core.explain_dataset(factory, x, "smoothgrad", out=sys.argv[3], batch_size=8,
                                 n_samples=3, seed=4, progress=False)
assert np.array_equal(joined.attributions[:], local.attributions[:])
print("equal", len(joined))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_joining_a_running_cluster(tmp_path: Path):
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}  # a throwaway local cluster
    port = _free_port()
    ray_cli = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen(
        [
            ray_cli,
            "start",
            "--head",
            "--block",
            "--num-cpus",
            "2",
            "--port",
            str(port),
            "--node-ip-address",
            "127.0.0.1",
            "--include-dashboard",
            "false",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                f"127.0.0.1:{port}",
                str(tmp_path / "ray"),
                str(tmp_path / "local"),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert "equal 20" in out.stdout
    finally:
        head.terminate()
        head.wait(timeout=60)
