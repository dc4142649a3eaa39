"""A reader maps what ``data.mdb`` holds (plus room to grow only where address space is not
limited), not a fixed reservation: under ``ulimit -v`` of a few GB (as many clusters set)
databases open, read, and pass ``rico info`` and ``rico verify``, and a database of hundreds of
shards opens. Each case runs in a child process with ``RLIMIT_AS`` set, so the limit never
touches pytest."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest
from support.bigearthnet import cli_args, flags
from support.cli import run, run_script
from support.conversions import converted, tree_fixture

#: ``ulimit -v 4000000`` (KiB), about 3.8 GiB.
LIMIT = 4_000_000 * 1024


def limited(limit: int = LIMIT):
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return set_limit


tree = tree_fixture(patches=40)


@pytest.fixture(scope="module")
def dbs(rico_bin, tree, tmp_path_factory) -> dict[str, Path]:
    """The tree converted plainly and into 64 and 300 shards (most of the 300 are empty)."""
    made = {"plain": converted(rico_bin, tree, tmp_path_factory, name="plain")}
    for shards in (64, 300):
        made[f"shards{shards}"] = converted(
            rico_bin, tree, tmp_path_factory, "--shards", shards, name=f"shards{shards}"
        )
    return made


READ_ALL = """
import json, sys
import numpy as np
import rico
ds = rico.open(sys.argv[1])
keys = ds.keys()
total = 0.0
for k in keys:
    for v in ds[k].values():
        total += float(np.asarray(v, dtype=np.float64).sum())
maps = [k for k in keys if k.endswith("reference_map")]
batch = ds.batch(maps[:16], bands=["Data"])
print(json.dumps({"records": len(ds), "keys": len(keys), "total": total,
                  "batch": list(batch.shape), "info": ds.info()["records"]}))
"""


def read_all(db: Path, limit: int | None) -> dict:
    res = run_script(
        READ_ALL, db, timeout=300, preexec_fn=None if limit is None else limited(limit)
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["plain", "shards64", "shards300"])
def test_databases_open_and_read_every_record_under_ulimit_v_4gb(dbs, name):
    free = read_all(dbs[name], None)
    assert free["records"] == free["keys"] == 120
    assert read_all(dbs[name], LIMIT) == free


def test_under_ulimit_v_1gb_a_plain_database_still_reads(dbs):
    free = read_all(dbs["plain"], None)
    assert read_all(dbs["plain"], 1 << 30) == free


@pytest.mark.parametrize("name", ["plain", "shards64"])
def test_info_verify_and_bench_pass_under_ulimit_v_4gb(rico_bin, tree, dbs, name):
    db = dbs[name]
    res = run(rico_bin, "info", db, preexec_fn=limited())
    assert res.returncode == 0 and "records: 120" in res.stdout, res.stderr
    res = run(
        rico_bin, "verify", "bigearthnet", *flags(tree), "--target-dir", db, preexec_fn=limited()
    )
    assert res.returncode == 0, res.stdout + res.stderr
    res = run(rico_bin, "bench", db, "--seconds", "0.1", "--threads", "1", preexec_fn=limited())
    assert res.returncode == 0, res.stderr


MAPPED = """
import os, sys
import rico
ds = rico.open(sys.argv[1])
ds[ds.keys()[0]]
path = os.path.realpath(os.path.join(sys.argv[1], "data.mdb"))
sizes = []
for line in open("/proc/self/maps"):
    fields = line.split()
    if fields[-1] == path and fields[1].endswith("s"):
        start, end = (int(x, 16) for x in fields[0].split("-"))
        sizes.append(end - start)
print(sum(sizes), os.path.getsize(path))
"""


@pytest.mark.parametrize("limit", [None, LIMIT])
def test_a_reader_maps_the_file_and_room_to_grow_only_where_address_space_is_free(dbs, limit):
    res = run_script(MAPPED, dbs["plain"], preexec_fn=None if limit is None else limited(limit))
    assert res.returncode == 0, res.stderr
    mapped, size = map(int, res.stdout.split())
    room = 0 if limit else 64 << 30
    assert size + room <= mapped < size + room + 65536, (mapped, size)


GROW = """
import gc, json, subprocess, sys
import rico
db, cmd = sys.argv[1], json.loads(sys.argv[2])
ds = rico.open(db)
before = len(ds)
view = ds[ds.keys()[-1]]
subprocess.run(cmd, check=True)
still = len(ds), len(ds.keys())
try:
    second = len(rico.open(db))
except rico.UsageError as e:
    second = str(e)
del ds, view
gc.collect()
after = rico.open(db)
print(json.dumps({"before": before, "still": still, "second": second, "after": len(after),
                  "read": sum(1 for k in after.keys() if after[k])}))
"""


@pytest.mark.parametrize("limit", [None, LIMIT])
def test_a_database_that_grew_since_it_was_opened_reads_its_new_records(
    rico_bin, tree, tmp_path, limit
):
    """A conversion grows the file while a handle is open: that handle keeps its snapshot; a
    second one sees the new records (under ``ulimit -v`` the file outgrows the first handle's
    map: the second is told to close the first); once the first is closed, every record."""
    db = tmp_path / "db"
    s1 = ["--bigearthnet-s1-dir", tree / "BigEarthNet-S1"]
    assert run(rico_bin, "bigearthnet", *s1, "--target-dir", db).returncode == 0
    cmd = [str(rico_bin), "bigearthnet", *map(str, flags(tree)), "--target-dir", str(db)]
    cmd += ["--resume", "--quiet"]
    res = run_script(
        GROW, db, json.dumps(cmd), timeout=300, preexec_fn=None if limit is None else limited(limit)
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["before"] == 40 and out["still"] == [40, 40]
    if limit is None:
        assert out["second"] == 120, out
    else:
        assert "close the other handles" in out["second"], out
    assert out["after"] == out["read"] == 120


def test_a_database_of_2100_shards_opens_and_reads(rico_bin, tree, tmp_path):
    """Each shard's map once reserved 64 GiB: the 128 TiB of address space ran out at shard
    2046. Now only the first shards get room to grow (32 TiB in all), the others map their
    files."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 8192:
        pytest.skip(f"2100 shards need 2 descriptors each; the hard limit is {hard}")
    db = tmp_path / "db"
    res = run(rico_bin, "bigearthnet", *flags(tree), "--target-dir", db, "--shards", 2100)
    assert res.returncode == 0, res.stderr

    def more_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (8192, hard))

    res = run(rico_bin, "info", db, preexec_fn=more_files)
    assert res.returncode == 0 and "records: 120" in res.stdout, res.stderr
    res = run_script(READ_ALL, db, timeout=300, preexec_fn=more_files)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.strip().splitlines()[-1])["records"] == 120


@pytest.mark.parametrize("threads", [2, 16])
def test_a_conversion_under_ulimit_v_1gb_gives_the_records_of_an_unlimited_one(
    rico_bin, tree, dbs, tmp_path, threads
):
    """The converter's in-flight reads and records are bounded by bytes (``--buffer-mb``), and
    its map grows only into address space that a reservation proves free: under ``ulimit -v
    1048576`` it finishes, even with 16 decoder threads, byte for byte as without a limit."""
    target = tmp_path / "db"
    res = run(rico_bin, *cli_args(tree, target, "--threads", threads), preexec_fn=limited(1024**3))
    assert res.returncode == 0, res.stderr
    import rico

    got, want = rico.open(target), rico.open(dbs["plain"])
    assert got.keys() == want.keys() and len(want) == 40 * 3
    assert all(got.raw(k) == want.raw(k) for k in want.keys())
