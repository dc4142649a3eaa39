"""The page cache, emptied before a cold-cache figure."""

from __future__ import annotations

import os


def drop_caches() -> bool:
    """Drops the page cache (needs root); False where this process may not (not root,
    read-only /proc)."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False
