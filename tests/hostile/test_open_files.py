"""Limits on open files (``ulimit -n``). A reader of many shards raises its soft limit towards
the hard one (a common ``ulimit -n 1024`` is a soft limit) and reads every record; where the
hard limit is too low for every shard at once, shards take turns (two descriptors each) and
every record is still read, with the same bytes; where it is too low for even one, it says so
at once, naming ``ulimit -n`` and how far to raise it, never that the database is damaged. The
converter out of descriptors says the same, and blames no source file."""

from __future__ import annotations

import resource
import shutil
import subprocess
from pathlib import Path

import pytest
from support.bigearthnet import flags
from support.cli import run, run_script
from support.conversions import converted, tree_fixture

SHARDS = 300


tree = tree_fixture(patches=6)


@pytest.fixture(scope="module")
def sharded(rico_bin, tree, tmp_path_factory) -> Path:
    return converted(rico_bin, tree, tmp_path_factory, "--shards", SHARDS)


def files_limit(soft: int, hard: int):
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return set_limit


READ_ALL = """
import hashlib
import sys
import rico
ds = rico.open(sys.argv[1])
keys = ds.keys()
digest = hashlib.sha256()
held = []  # views of every shard held at once, while others are read
for k in keys:
    record = ds[k]
    held.append(record)
    for band in sorted(record):
        digest.update(k.encode() + band.encode() + record[band].tobytes())
for k in reversed(keys):  # every shard opened again, in the other order
    digest.update(ds.raw(k))
s2 = ds.keys(bands=["B02", "B03"])[::-1]
batch = ds.batch(s2, bands=["B02", "B03"])
print(len(keys), sum(len(r) for r in held), len(ds), digest.hexdigest(), batch.shape)
"""


def read_all(db: Path, soft: int, hard: int) -> subprocess.CompletedProcess:
    return run_script(READ_ALL, db, timeout=60, preexec_fn=files_limit(soft, hard))


@pytest.fixture(scope="module")
def unlimited(sharded) -> list[str]:
    res = read_all(sharded, *resource.getrlimit(resource.RLIMIT_NOFILE))
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout.split()
    assert out[:3] == ["18", str(6 * 15), "18"], out
    return out


def test_a_soft_limit_below_the_shards_is_raised_and_every_record_is_read(sharded, unlimited):
    res = read_all(sharded, 256, 4096)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == unlimited


@pytest.mark.parametrize("limit", [256, 100])
def test_a_hard_limit_below_the_shards_lets_them_take_turns_with_the_same_bytes(
    rico_bin, sharded, unlimited, limit
):
    res = read_all(sharded, limit, limit)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == unlimited
    info = run(rico_bin, "info", sharded, preexec_fn=files_limit(limit, limit))
    assert info.returncode == 0, info.stderr
    assert "records: 18" in info.stdout, info.stdout


TWICE_AND_FORKED = """
import os, sys
import rico
first = rico.open(sys.argv[1])
second = rico.open(sys.argv[1])  # a val split beside a train split, say
keys = first.keys()
assert all(first.raw(k) == second.raw(k) for k in keys)
pid = os.fork()
if pid == 0:  # a fork-started DataLoader worker: inherits the parent's descriptors
    ok = all(len(first[k]) > 0 for k in keys) and second.raw(keys[-1]) == first.raw(keys[-1])
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
print(len(keys), os.waitstatus_to_exitcode(status))
"""


def test_under_a_hard_limit_a_second_handle_and_a_forked_worker_read_too(sharded):
    res = run_script(TWICE_AND_FORKED, sharded, timeout=120, preexec_fn=files_limit(256, 256))
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["18", "0"], res.stderr[-2000:]


REPLACED = """
import json, os, shutil, sys
import rico
db = sys.argv[1]
ds = rico.open(db)
keys = ds.keys()  # every shard opened in turn: the first ones are closed again
shard = next(s for s in json.load(open(os.path.join(db, "rico-manifest.json")))["shards"]
             if s["records"])
data = os.path.join(db, shard["path"], "data.mdb")
shutil.copy(data, data + ".new")
os.replace(data + ".new", data)  # same bytes, another file: not the one that was checked
try:
    ds.raw(shard["first_key"])
except rico.DataError as e:
    print("DataError", shard["path"] in str(e))
"""


def test_a_shard_replaced_while_shards_take_turns_is_a_data_error(sharded, tmp_path):
    db = tmp_path / "db"
    shutil.copytree(sharded, db)
    res = run_script(REPLACED, db, timeout=120, preexec_fn=files_limit(100, 100))
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["DataError", "True"], res.stderr[-2000:]


def test_a_hard_limit_below_one_shard_is_a_clear_limit_not_damage(rico_bin, sharded):
    info = run(rico_bin, "info", sharded, preexec_fn=files_limit(12, 12))
    assert info.returncode == 2, info.stderr
    assert "ulimit -n" in info.stderr, info.stderr
    assert "damaged" not in info.stderr and "/proc/self/maps" not in info.stderr


# 5: always out while opening the database. 6 to 8: out while reading sources or not, as the
# reads in flight happen to overlap; either the run finishes with every record, or it stops
# naming the limit, never a file.
@pytest.mark.parametrize("limit", [5, 6, 7, 8])
def test_the_converter_out_of_descriptors_names_the_limit_not_a_file(
    rico_bin, tree, tmp_path, limit
):
    res = run(
        rico_bin,
        "bigearthnet",
        *flags(tree),
        "--target-dir",
        tmp_path / "db",
        preexec_fn=files_limit(limit, limit),
    )
    if limit == 5:
        assert res.returncode != 0, res.stderr
    if res.returncode == 0:
        assert "wrote" in res.stderr and "records" in res.stderr, res.stderr
        return
    assert "too many open files" in res.stderr and "ulimit -n" in res.stderr, res.stderr
    assert "readable by this user" not in res.stderr and "LMDB code" not in res.stderr
