"""The cold read path gives the batches of the warm one, byte for byte.

A loader reads records that are not in the page cache whole, with ``pread`` into staging
buffers (``O_DIRECT`` where the filesystem has it), and reads resident records in place from
the memory map. Which path a record takes must never show in a batch: the same loader epochs
are read with every record forced through the cold path, with none, and (in a fresh process,
after the file's pages were dropped from the cache) with the path chosen per record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rico
from rico import _rico
from support.lmdb_records import write_records

BANDS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    """Records of several sizes: overflow values of one to many pages (each at its own page
    offset), and small ones that LMDB keeps inside a leaf page."""
    rng = np.random.default_rng(5)
    records = {}
    for i in range(40):
        side = [120, 60, 20, 7][i % 4]
        records[f"patch_{i:03d}"] = {
            "a": rng.integers(0, 10000, (side, side), dtype=np.uint16),
            "b": rng.normal(0, 50, (side, side)).astype(np.float32),
            "c": rng.integers(0, 255, (side, side), dtype=np.uint8),
        }
    path = tmp_path_factory.mktemp("cold") / "db"
    return write_records(path, records)


def epochs(path: Path, batch_size: int, n: int = 2) -> tuple[list[np.ndarray], dict]:
    """``n`` shuffled epochs' batches, and what the cold path did meanwhile."""
    ds = rico.open(path)
    loader = rico.Loader(
        ds, bands=BANDS, size=40, resample="bilinear", batch_size=batch_size, seed=7, threads=2
    )
    out = []
    for epoch in range(n):
        loader.set_epoch(epoch)
        out.extend(x.copy() for x in loader)
    return out, ds.db._cold_stats()


@pytest.mark.parametrize("batch_size", [1, 6, 64])
def test_cold_path_batches_equal_warm_ones(db, batch_size):
    try:
        _rico._force_cold_path(True)
        cold, stats = epochs(db, batch_size)
        _rico._force_cold_path(False)
        warm, _ = epochs(db, batch_size)
    finally:
        _rico._force_cold_path(None)
    # Every record went through the cold path.
    assert stats["staged"] >= 40 and stats["fallback"] == 0, stats
    assert len(cold) == len(warm) and len(cold) > 0
    for c, w in zip(cold, warm):
        assert c.dtype == w.dtype and c.shape == w.shape
        assert c.tobytes() == w.tobytes()


CHILD = """
import json, os, sys
import rico
path = sys.argv[1]
fd = os.open(os.path.join(path, "data.mdb"), os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)
sys.path.insert(0, sys.argv[2])
from test_loader_cold import epochs
batches, stats = epochs(path, 6)
np_bytes = [b.tobytes().hex() for b in batches]
print(json.dumps({"stats": stats, "batches": np_bytes}))
"""


def test_dropped_pages_take_the_cold_path_and_read_the_same(db):
    """In a fresh process (no page of the file mapped), after the file's pages were dropped
    from the cache: the path is chosen per record, and the batches are the warm ones."""
    here = str(Path(__file__).resolve().parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([here, *sys.path]))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(db), here],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    child = json.loads(out.strip().splitlines()[-1])
    stats = child["stats"]
    # Two epochs of 40 records (the last batch of each short): every record's path was
    # chosen, once per read-ahead; the second epoch's first batch was read ahead at the end
    # of the first.
    assert stats["staged"] + stats["resident"] >= 80 and stats["fallback"] == 0, stats
    try:
        _rico._force_cold_path(False)
        warm, _ = epochs(db, 6)
    finally:
        _rico._force_cold_path(None)
    assert [bytes.fromhex(b) for b in child["batches"]] == [w.tobytes() for w in warm]
