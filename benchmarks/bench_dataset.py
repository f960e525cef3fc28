"""explain_dataset's throughput: the local engine vs a hand-written loop over `explain`,
and the Ray engine with 1 and 2 workers (its fixed start-up cost measured apart).

Same model (digits-size CNN, 28 x 28), same rows from a .npy file, same batches of 256,
integrated gradients (16 steps). The hand-written loop writes nothing; the engine also
commits every batch to a Zarr store. Run: .venv/bin/python benchmarks/bench_dataset.py
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import xai_core  # noqa: E402
from xai_core.testing.twins import cnn_weights, twin  # noqa: E402

from timing import interleaved, report  # noqa: E402

ROWS, BATCH = 2048, 256


def main() -> None:
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "x.npy")
    np.save(path, np.random.default_rng(0).normal(size=(ROWS, 1, 28, 28)).astype(np.float32))
    model = twin("torch", "cnn", cnn_weights(channels=1))

    def hand_written():
        data = np.load(path, mmap_mode="r")
        for start in range(0, ROWS, BATCH):
            xai_core.explain(
                model,
                np.array(data[start : start + BATCH]),
                "integrated_gradients",
                n_steps=16,
                progress=False,
            )

    def engine_local():
        out = os.path.join(tmp, "local")
        xai_core.explain_dataset(
            model,
            path,
            "integrated_gradients",
            out=out,
            batch_size=BATCH,
            n_steps=16,
            progress=False,
            overwrite=True,
        )

    medians = interleaved(
        {"explain_dataset local": engine_local, "hand-written loop": hand_written},
        repeats=7,
        warmup=1,
    )
    report(f"{ROWS} rows, IG 16 steps, batches of {BATCH}", medians, "hand-written loop")
    print(f"  hand-written loop: {ROWS / medians['hand-written loop']:.0f} rows/s")

    import ray

    factory = functools.partial(twin, "torch", "cnn", cnn_weights(channels=1))
    started = time.perf_counter()
    # address="local": a new cluster even if one is running on this machine
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )
    init = time.perf_counter() - started
    print(f"\nray.init (local, 2 CPUs): {init:.1f} s")
    for workers in (1, 2):
        timings = []
        for _repeat in range(3):
            out = os.path.join(tmp, f"ray{workers}")
            started = time.perf_counter()
            xai_core.explain_dataset(
                factory,
                path,
                "integrated_gradients",
                out=out,
                batch_size=BATCH,
                n_steps=16,
                progress=False,
                overwrite=True,
                engine="ray",
                engine_options={"num_workers": workers},
            )
            timings.append(time.perf_counter() - started)
        # the fixed cost: the same call on one batch (actors start, model built, one batch)
        started = time.perf_counter()
        xai_core.explain_dataset(
            factory,
            np.load(path)[:BATCH],
            "integrated_gradients",
            out=os.path.join(tmp, "one"),
            batch_size=BATCH,
            n_steps=16,
            progress=False,
            overwrite=True,
            engine="ray",
            engine_options={"num_workers": workers},
        )
        fixed = time.perf_counter() - started
        best = float(np.median(timings))
        print(
            f"ray, {workers} worker(s): {ROWS / best:.0f} rows/s end to end "
            f"(median of 3: {best:.2f} s; one-batch call {fixed:.2f} s = start-up + 1 batch)"
        )
    ray.shutdown()
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
