"""Absurd arguments, as a careless user gives them: a loader that would yield nothing says why
when it is made (bands no record has, bands no single record holds together, no keys, more
ranks than rows), and an absurd count of threads is refused by every entry point that takes
one (the loaders, ``ds.batch``, the converter, ``verify``, ``stats``, ``bench``) before any
thread starts, with an error naming the argument and the allowed range."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import rico
from rico import _rico
from support.bigearthnet import convert, flags, sources
from support.cli import run
from support.conversions import tree_fixture

#: What every refused thread count says.
RANGE = f"threads must be between 1 and {_rico.MAX_THREADS}"


tree = tree_fixture(patches=6)


@pytest.fixture(scope="module")
def db(tree, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("db") / "db"
    convert(tree, target)
    return target


@pytest.fixture()
def ds(db):
    with rico.open(db) as ds:
        yield ds


def threads_now() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


# -- a loader with nothing to yield says why ----------------------------------------------------


def test_loader_with_a_band_no_record_has_says_which_and_what_there_is(ds):
    with pytest.raises(rico.UsageError) as e:
        rico.Loader(ds, bands=["B8a"])
    msg = str(e.value)
    assert "would yield nothing" in msg and ds.path in msg
    assert "holds the band B8a" in msg and "B8a is B8A" in msg  # the case-sensitive hint
    assert "B02" in msg and "VV" in msg  # the bands the records hold


def test_loader_with_bands_of_different_records_says_no_record_holds_them_together(ds):
    with pytest.raises(rico.UsageError) as e:
        rico.Loader(ds, bands=["B02", "VV"])
    msg = str(e.value)
    assert "holds all of the bands B02, VV together" in msg
    assert "VH, VV (6 records)" in msg and "B01, B02" in msg


def test_torch_loader_with_bands_of_different_records_says_why(ds):
    pytest.importorskip("torch")
    import rico.torch

    with pytest.raises(rico.UsageError, match="B02, VV together"):
        rico.torch.Loader(ds, bands=["B02", "VV"])


def test_loader_with_no_keys_or_more_ranks_than_rows_says_why(ds):
    with pytest.raises(ValueError, match="keys is empty"):
        rico.Loader(ds, keys=[], bands=["B02"])
    with pytest.raises(ValueError, match="6 rows cannot be shared among world_size=7"):
        rico.Loader(ds, bands=["B02"], world_size=7)
    with pytest.raises(ValueError, match="drop_last=True drops the only batch"):
        rico.Loader(ds, bands=["B02"], batch_size=7, drop_last=True)
    # A band given as a string is one band, as ds.keys takes it.
    assert len(rico.Loader(ds, bands="B02", batch_size=2)) == 3


# -- absurd thread counts are refused before any thread starts -----------------------------------


@pytest.mark.parametrize("threads", [100_000, _rico.MAX_THREADS + 1, 0, -1])
def test_loader_refuses_an_absurd_thread_count_when_made(ds, threads):
    before, start = threads_now(), time.monotonic()
    with pytest.raises(rico.UsageError, match=f"{RANGE}, not {threads}"):
        rico.Loader(ds, bands=["B02"], threads=threads)
    assert time.monotonic() - start < 5 and threads_now() <= before + 1


def test_loader_and_ring_refuse_absurd_prefetch_and_keep(ds):
    with pytest.raises(ValueError, match="prefetch between 1 and 1024"):
        rico.Loader(ds, bands=["B02"], prefetch=10**9)
    with pytest.raises(ValueError, match="keep must be between 0 and 1024"):
        rico.Loader(ds, bands=["B02"], keep=-1)
    with pytest.raises(rico.UsageError, match="at most 4096 batches"):
        _rico.BatchRing(10**8)


def test_batch_refuses_an_absurd_thread_count(ds):
    keys = ds.keys(bands=["B02"])
    before = threads_now()
    for threads in (100_000, 0):
        for some in (keys[:1], keys):
            with pytest.raises(rico.UsageError, match=f"{RANGE}, not {threads}"):
                ds.batch(some, ["B02"], threads=threads)
    assert threads_now() <= before + 1
    assert ds.batch(keys, ["B02"], threads=_rico.MAX_THREADS // 512).shape[0] == len(keys)


def test_bigearthnet_loader_torch_loader_and_batch_refuse_an_absurd_thread_count(ds):
    pytest.importorskip("torch")
    import rico.torch

    with pytest.raises(rico.UsageError, match=RANGE):
        rico.torch.Loader(ds, bands=["B02"], threads=100_000)


def test_thread_count_is_one_rule(ds):
    assert _rico.thread_count(7) == 7
    assert 1 <= _rico.thread_count() <= _rico.MAX_THREADS
    with pytest.raises(rico.UsageError, match=f"{RANGE}, not -5"):
        _rico.thread_count(-5)


def test_convert_and_verify_refuse_absurd_counts_before_touching_the_target(tree, tmp_path):
    target = tmp_path / "db"
    with pytest.raises(rico.UsageError, match=f"{RANGE}, not 5000"):
        convert(tree, target, threads=5000)
    with pytest.raises(rico.UsageError, match="io_depth must be between 1 and 1024, not 0"):
        convert(tree, target, io_depth=0)
    assert not target.exists()
    with pytest.raises(rico.UsageError, match=RANGE):
        rico.verify("bigearthnet", target, **sources(tree), threads=100_000)


def test_cli_refuses_absurd_thread_counts(rico_bin, tree, db, tmp_path):
    target = tmp_path / "db"
    commands = [
        ["bigearthnet", *flags(tree), "--target-dir", target, "--threads", 100_000],
        ["bigearthnet", *flags(tree), "--target-dir", target, "--io-depth", 100_000],
        ["verify", "bigearthnet", *flags(tree), "--target-dir", db, "--threads", 100_000],
        ["stats", db, "--bands", "B02", "--threads", 100_000],
        ["bench", db, "--threads", 100_000, "--seconds", 0.1],
    ]
    for args in commands:
        start = time.monotonic()
        res = run(rico_bin, *args, timeout=30)
        assert res.returncode == 2, (args, res.stderr)
        assert "must be between 1 and 1024, not 100000" in res.stderr, (args, res.stderr)
        assert time.monotonic() - start < 10
    assert not target.exists()


def test_python_stats_and_bench_refuse_an_absurd_thread_count(db):
    with pytest.raises(rico.UsageError, match=RANGE):
        _rico.stats(os.fspath(db), ["B02"], threads=100_000)
    with pytest.raises(rico.UsageError, match=RANGE):
        rico.bench(db, threads=100_000, seconds=0.1)
