"""Side-by-side timing: candidates run interleaved in one process, medians compared.

Interleaving (A, B, A, B, ...) makes a noisy, shared machine slow both down
alike, so the ratio of medians is meaningful even when seconds are not.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def interleaved(
    candidates: dict[str, Callable[[], object]], repeats: int = 15, warmup: int = 2
) -> dict[str, float]:
    """Median seconds per candidate over `repeats` interleaved rounds (order rotates)."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            candidates[name]()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, medians: dict[str, float], baseline: str) -> list[tuple[str, float]]:
    """Print each candidate's median relative to `baseline`; returns (name, ratio) rows."""
    print(f"\n{title}")
    rows = []
    for name, value in medians.items():
        ratio = value / medians[baseline]
        rows.append((name, ratio))
        print(f"  {name:<40} {ratio:6.3f} x {baseline}   (median {value * 1e3:8.2f} ms)")
    return rows


def per_framework(bench: Callable[[str], None], script: str, argv: list[str]) -> None:
    """Run `bench(framework)` here for one framework, or each in its own process for several
    (tensorflow then paddle in one process segfaults)."""
    frameworks = argv or ["torch", "tensorflow", "paddle"]
    if len(frameworks) == 1:
        bench(frameworks[0])
        return
    for framework in frameworks:
        subprocess.run([sys.executable, script, framework], check=True)
