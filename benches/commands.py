"""Commands timed as a benchmark row: wall seconds and the command's own peak RSS."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], **kw) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of a command, which must succeed. The peak is GNU time's (the
    child's own high-water mark: ``ru_maxrss`` of a child forked from this Python process would
    start from this process's resident set)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        start = time.perf_counter()
        status = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd], **kw
        ).returncode
        seconds = time.perf_counter() - start
        if status != 0:
            raise SystemExit(f"failed: {' '.join(cmd)}")
        text = Path(rss.name).read_text().split()
    return seconds, (int(text[-1]) / 1024 if text else float("nan"))


def shell(script: str) -> float:
    """Seconds of a bash script, which must succeed."""
    return timed(["bash", "-c", script])[0]
