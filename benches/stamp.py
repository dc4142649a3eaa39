"""What a results file records about where it was measured: the commit, the date and the
machine (CPU model, cores, memory, the kind of storage the work directory is on), and the
versions of the packages a benchmark compares against.

Every ``benches/results/*.json`` written by ``make bench-report`` carries ``stamp(...)`` under
the key ``"stamp"``; ``tools/render_figures.py`` prints it beside each table.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent


def commit() -> dict:
    """The checked-out commit, and whether the code measured differed from it (uncommitted
    changes to the sources, the build files or the benchmark scripts; pages and results are
    not code: a report run rewrites them)."""
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    changed = subprocess.run(
        [
            "git",
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            "rust",
            "python",
            "benches",
            "tests/support",
            "Cargo.toml",
            "Cargo.lock",
            "pyproject.toml",
            "Makefile",
            "requirements-bench.txt",
            ":!benches/results",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {"commit": head or None, "dirty": bool(changed)}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> Optional[float]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def storage_kind(path: Path) -> str:
    """'SSD', 'rotational disk', 'memory (tmpfs)', ... for the device holding ``path``; the
    kind only, never the device's or the mount's name."""
    try:
        with open("/proc/mounts") as f:
            mounts = [line.split()[:3] for line in f]
        real = os.path.realpath(path)
        best = max(
            (m for m in mounts if real == m[1] or real.startswith(m[1].rstrip("/") + "/")),
            key=lambda m: len(m[1]),
        )
        if best[2] in ("tmpfs", "ramfs"):
            return "memory (tmpfs)"
        if best[2] in ("overlay",):
            fs = "overlay file system on "
        else:
            fs = ""
        st = os.stat(real)
        sysdir = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
        if not sysdir.exists():
            return f"{fs}{best[2]} file system"
        queue = sysdir / "queue"
        if not queue.exists():  # a partition: the disk's queue is its parent's
            queue = sysdir.resolve().parent / "queue"
        rotational = (queue / "rotational").read_text().strip() == "1"
        virtual = "virtio" in str(sysdir.resolve())
        if virtual:  # virtio disks report rotational whatever backs them
            kind = "virtual block device (virtio)"
        else:
            kind = "rotational disk" if rotational else "SSD (non-rotational)"
        return f"{fs}{kind}, {best[2]}"
    except (OSError, ValueError, StopIteration):
        return "unknown"


def machine(work: Optional[Path] = None) -> dict:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "storage": storage_kind(work or ROOT),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release().split('-')[0]}",
    }


def versions(packages: Iterable[str]) -> dict:
    """Installed versions of ``packages`` (None where one is missing)."""
    from importlib import metadata

    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def stamp(command: str, work: Optional[Path] = None, packages: Iterable[str] = ()) -> dict:
    return {
        "command": command,
        **commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(work),
        "versions": versions(["rico-eo", "numpy", *packages]),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(stamp("python benches/stamp.py"), indent=2))
