"""The ``rico`` binary (or any command) run as a subprocess, as a test checks it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any


def run(
    binary: object, *args: object, timeout: float = 120, **kw: Any
) -> subprocess.CompletedProcess:
    """Runs ``binary`` with ``args`` (each turned into a string) and returns the finished
    process with its stdout and stderr as text; more ``subprocess.run`` options in ``kw``."""
    return subprocess.run(
        [str(binary), *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw
    )


def run_script(
    script: str, *args: object, timeout: float = 120, **kw: Any
) -> subprocess.CompletedProcess:
    """Runs the Python code ``script`` (dedented) in a new interpreter, this one's, with ``args``
    as its ``sys.argv[1:]``, as :func:`run` runs a binary."""
    return run(sys.executable, "-c", textwrap.dedent(script), *args, timeout=timeout, **kw)


def kill_when(
    ready: Callable[[], bool],
    binary: object,
    *args: object,
    sig: int = signal.SIGKILL,
    timeout: float = 60,
    poll: float = 0.002,
) -> subprocess.Popen:
    """Starts ``binary`` with ``args``, sends it ``sig`` once ``ready()`` holds (or once it has
    ended, or after ``timeout`` seconds) and waits for it to end; returns the process."""
    proc = subprocess.Popen(
        [str(binary), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.time() + timeout
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(poll)
    proc.send_signal(sig)
    proc.wait()
    return proc
