"""How time and peak memory grow with the batch, `n_steps`, the image side and the model's
depth, for integrated gradients and occlusion, in xai_core (defaults) and Captum
(defaults) side by side (issue 21). Each point runs in a fresh process, so that its peak
resident memory (above what the process held before the call) is its own.

Expected: every column grows about linearly in the growing quantity (time), and
xai_core's memory stays within its per-call budget (`XAI_CORE_CALL_BYTES`, 1 MiB of
model inputs per call) times what the model makes of them, whatever the size; Captum's
defaults run all `n_steps` x batch rows, or all occlusion windows, in one call.

    .venv/bin/python benchmarks/bench_scaling.py            # the table (a few minutes)
    .venv/bin/python benchmarks/bench_scaling.py point ...  # one point (used by the table)
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

#: (axis, values); the other quantities stay at BASE
AXES = {
    "batch": [4, 16, 64],
    "n_steps": [16, 64, 256],
    "side": [16, 32, 64],
    "depth": [1, 2, 4],
}
BASE = {"batch": 16, "n_steps": 32, "side": 32, "depth": 2}
#: runs per point (in one process, after a first 1-row call); the median time is kept
REPEATS = 3


def model(depth: int):
    import torch

    layers, channels = [], 1
    for _ in range(depth):
        layers += [torch.nn.Conv2d(channels, 16, 3, padding=1), torch.nn.ReLU()]
        channels = 16
    torch.manual_seed(0)
    return torch.nn.Sequential(
        *layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(16, 10)
    ).eval()


def point(library: str, method: str, batch: int, n_steps: int, side: int, depth: int) -> dict:
    import numpy as np
    import torch

    net = model(depth)
    x = np.random.default_rng(0).normal(size=(batch, 1, side, side)).astype(np.float32)
    xt = torch.from_numpy(x)
    window = max(2, side // 8)

    def run(rows):
        if library == "xai_core":
            import xai_core

            patch = (1, window, window)
            options = (
                {"n_steps": n_steps}
                if method == "integrated_gradients"
                else {"window": patch, "strides": patch}
            )
            return xai_core.explain(net, rows, method, target=0, progress=False, **options)
        from captum.attr import IntegratedGradients, Occlusion

        t = torch.from_numpy(rows)
        if method == "integrated_gradients":
            return IntegratedGradients(net).attribute(t, target=0, n_steps=n_steps)
        return Occlusion(net).attribute(
            t, sliding_window_shapes=(1, window, window), strides=(1, window, window), target=0
        )

    run(x[:1])  # imports, first-call set-up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - start)
    seconds = sorted(times)[len(times) // 2]  # the median
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del xt
    return {"seconds": seconds, "peak_mib": max(0, peak - before) / 1024}


def table() -> None:
    rows = []
    for method in ("integrated_gradients", "occlusion"):
        for axis, values in AXES.items():
            if method == "occlusion" and axis == "n_steps":
                continue
            for value in values:
                config = {**BASE, axis: value}
                cells = {}
                for library in ("xai_core", "captum"):
                    args = [str(config[k]) for k in ("batch", "n_steps", "side", "depth")]
                    out = subprocess.run(
                        [sys.executable, __file__, "point", library, method, *args],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    cells[library] = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append((method, axis, value, cells))
                print(
                    f"| {method} | {axis}={value} | {cells['xai_core']['seconds']:.3f} | "
                    f"{cells['captum']['seconds']:.3f} | "
                    f"{cells['xai_core']['seconds'] / cells['captum']['seconds']:.2f} | "
                    f"{cells['xai_core']['peak_mib']:.0f} | {cells['captum']['peak_mib']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    if sys.argv[1:2] == ["point"]:
        library, method, *numbers = sys.argv[2:]
        print(json.dumps(point(library, method, *map(int, numbers))))
    else:
        print(f"base: {BASE} (one quantity varied at a time)")
        print("| method | varied | xai_core s | captum s | ratio | xai_core MiB | captum MiB |")  # noqa: E501
        print("|---|---|---|---|---|---|---|")
        table()
