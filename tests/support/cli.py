"""The ``rico`` binary (or any command) run as a subprocess, as a test checks it."""

from __future__ import annotations

import subprocess
from typing import Any


def run(
    binary: object, *args: object, timeout: float = 120, **kw: Any
) -> subprocess.CompletedProcess:
    """Runs ``binary`` with ``args`` (each turned into a string) and returns the finished
    process with its stdout and stderr as text; more ``subprocess.run`` options in ``kw``."""
    return subprocess.run(
        [str(binary), *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw
    )
