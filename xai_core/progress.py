"""A progress bar for long explanations: tqdm on stderr, shown only after two seconds.

Short calls (most of them) print nothing and create no bar at all (a tqdm object
costs ~50 us, 15% of a small explanation); an explanation still running after
`DELAY` seconds shows how far it is (rows of an expanded batch, samples of a
per-sample method), its rate and an ETA. `progress=False` switches it off.
"""

from __future__ import annotations

import time
from typing import Any

#: seconds before a bar appears
DELAY = 2.0


class Progress:
    """One lazily created tqdm bar per explanation."""

    def __init__(self, enabled: bool = True, description: str = "") -> None:
        self.enabled = enabled
        self.description = description
        self._bar: Any = None
        self._total = 0
        self._unit = ""
        self._done = 0
        self._started = 0.0

    def start(self, total: int, unit: str) -> None:
        """(Re)start counting `total` units of work; the bar itself comes later, if ever."""
        self.close()
        self._total, self._unit, self._done = total, unit, 0
        self._started = time.perf_counter()

    def update(self, n: int = 1) -> None:
        if not self.enabled:
            return
        self._done += n
        if self._bar is None and time.perf_counter() - self._started >= DELAY:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self._total,
                unit=self._unit,
                desc=self.description,
                leave=False,
                initial=self._done - n,
            )
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
