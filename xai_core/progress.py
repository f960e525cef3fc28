"""A progress bar for long explanations: tqdm on stderr, shown only after two seconds.

Short calls (most of them) print nothing; an explanation that runs longer shows
how far it is (steps of an expansion, samples of a per-sample method), its rate
and an ETA. `progress=False` switches it off.
"""

from __future__ import annotations

from typing import Any

#: seconds before a bar appears
DELAY = 2.0


class Progress:
    """One lazily created tqdm bar per explanation."""

    def __init__(self, enabled: bool = True, description: str = "") -> None:
        self.enabled = enabled
        self.description = description
        self._bar: Any = None

    def start(self, total: int, unit: str) -> None:
        """(Re)start the bar for `total` units of work."""
        self.close()
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, unit=unit, desc=self.description, delay=DELAY, leave=False)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
