"""The peak resident memory of one command, measured as a user would see it.

The command runs under a small Python process of its own that waits for it and reports the
child's ``ru_maxrss``: on Linux the high-water mark survives ``exec``, so a command forked
straight from a test process that holds torch and a few hundred MB would report the test
process's memory, not its own."""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, os, resource, subprocess, sys
args, limit, timeout = json.loads(sys.argv[1])
def cap():
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=cap)
try:
    _, err = proc.communicate(timeout=timeout)
except subprocess.TimeoutExpired:
    proc.kill()
    _, err = proc.communicate()
    print(json.dumps({"timeout": True, "stderr": err.decode(errors="replace")}))
    sys.exit(0)
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(json.dumps({"code": proc.returncode, "stderr": err.decode(errors="replace"), "rss": rss}))
"""


def peak_rss(
    *command: object, timeout: float = 120, address_space_mb: int = 0
) -> tuple[int, str, int]:
    """Runs ``command``; returns (exit code, stderr, peak resident memory in bytes) of that
    command alone. ``address_space_mb`` runs it under that ``ulimit -v``. A command that runs
    past ``timeout`` seconds is killed and fails the test."""
    payload = json.dumps([[str(c) for c in command], address_space_mb << 20, timeout])
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, payload],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        check=True,
    )
    out = json.loads(done.stdout)
    if out.get("timeout"):
        raise AssertionError(f"{command} ran past {timeout} s: {out['stderr'][-2000:]}")
    return out["code"], out["stderr"], out["rss"]
