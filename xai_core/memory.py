"""How much memory is left: what counts and sizes are checked against before allocating."""

from __future__ import annotations

import os


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping (Linux's MemAvailable),
    else the machine's physical memory, else None (no check)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None
