"""fork() while other threads are inside rico. A ``DataLoader`` forks its workers while the
parent may be opening a database or reading records in other threads; a process-wide lock
such a thread holds at that instant would stay locked forever in the child, which then hangs
at its first use (2 forks in 100 did, before rico took its locks around ``fork()``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import run_script
from support.conversions import converted, generated_tree

FORKS = """
import os, sys, threading, time
import rico
db = sys.argv[1]
stop = False


def busy():  # opens databases and makes record views, as fast as it can
    while not stop:
        ds = rico.open(db)
        ds[ds.keys()[0]]
        ds.batch(ds.keys(bands=["Data"])[:2], ["Data"])


threads = [threading.Thread(target=busy) for _ in range(2)]
for t in threads:
    t.start()
hung = failed = 0
for i in range(300):
    pid = os.fork()
    if pid == 0:
        ds = rico.open(db)
        ok = len(ds[ds.keys()[0]]) > 0 and ds.batch(ds.keys(bands=["Data"])[:2], ["Data"]).shape[0] == 2
        os._exit(0 if ok else 3)
    deadline = time.time() + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            failed += os.waitstatus_to_exitcode(status) != 0
            break
        if time.time() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            hung += 1
            break
        time.sleep(0.001)
stop = True
for t in threads:
    t.join()
print(hung, failed)
"""


@pytest.fixture(scope="module")
def db(rico_bin, tmp_path_factory) -> Path:
    return converted(rico_bin, generated_tree(tmp_path_factory, 4), tmp_path_factory)


def test_children_forked_while_threads_open_and_read_never_hang(db):
    res = run_script(FORKS, db, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["0", "0"], (res.stdout, res.stderr[-2000:])
