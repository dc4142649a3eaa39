"""Sharded conversion, locally and on a real dask.distributed cluster on loopback."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import rico
from support.bigearthnet import flags, sources
from support.cli import run
from support.cluster import local_cluster
from support.conversions import tree_fixture
from support.lmdb_records import read_lmdb, read_shards
from support.trees import make_dataset

distributed = pytest.importorskip("distributed")


tree = tree_fixture(patches=60, workers=None)


@pytest.fixture(scope="module")
def unsharded(tree, tmp_path_factory) -> dict[bytes, bytes]:
    target = tmp_path_factory.mktemp("flat") / "db"
    rico.convert("bigearthnet", target, **sources(tree))
    return read_lmdb(target)


@pytest.fixture(scope="module")
def cluster():
    with local_cluster() as (c, client):
        yield c, client


def test_local_shards_are_contiguous_sorted_ranges_whose_union_is_the_unsharded_db(
    tree, unsharded, tmp_path
):
    target = tmp_path / "sharded"
    summary = rico.convert("bigearthnet", target, shards=4, **sources(tree))
    assert summary.records == len(unsharded) == 180
    manifest = json.loads((target / "rico-manifest.json").read_text())
    assert manifest["dataset"] == "bigearthnet" and manifest["rico_version"] == rico.__version__
    assert [s["path"] for s in manifest["shards"]] == [f"shard-{i:05d}" for i in range(4)]
    parts = read_shards(target)
    assert [len(p) for p in parts] == [s["records"] for s in manifest["shards"]] == [45, 45, 45, 45]
    merged: dict[bytes, bytes] = {}
    for part, meta in zip(parts, manifest["shards"]):
        keys = sorted(part)
        assert meta["first_key"] == keys[0].decode() and meta["last_key"] == keys[-1].decode()
        assert not set(part) & set(merged)
        merged.update(part)
    assert merged == unsharded


def test_the_names_python_uses_are_those_the_engine_writes(tree, tmp_path):
    from rico import _rico
    from rico.distributed import MANIFEST, SHARD_MARKER, shard_dir

    target = tmp_path / "sharded"
    rico.convert("bigearthnet", target, shards=2, **sources(tree))
    assert (MANIFEST, SHARD_MARKER) == ("rico-manifest.json", "rico-shard.json")
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [_rico.MANIFEST, _rico.PLAN, _rico.shard_name(0), _rico.shard_name(1)]
    )
    for i in range(2):
        assert shard_dir(target, i) == target / f"shard-{i:05d}"
        assert (shard_dir(target, i) / SHARD_MARKER).is_file()
        assert (shard_dir(target, i) / _rico.SHARD_PLAN).is_file()


def test_sharded_dataset_opens_as_one_database(tree, unsharded, tmp_path):
    target = tmp_path / "sharded"
    rico.convert("bigearthnet", target, shards=3, **sources(tree))
    with rico.open(target) as ds, rico.open(_flat(tree, tmp_path)) as flat:
        assert len(ds) == len(unsharded)
        assert ds.keys() == sorted(k.decode() for k in unsharded)
        for key in ds.keys():
            assert ds.raw(key) == unsharded[key.encode()]
            assert ds[key].keys() == flat[key].keys()
        s2 = [k for k in ds.keys() if k.startswith("S2") and not k.endswith("reference_map")]
        assert (
            ds.batch(s2, ["B02", "B01"], size=120).tobytes()
            == flat.batch(s2, ["B02", "B01"], size=120).tobytes()
        )
        loader = rico.Loader(ds, keys=s2, bands=["B04"], batch_size=7, seed=1)
        flat_loader = rico.Loader(flat, keys=s2, bands=["B04"], batch_size=7, seed=1)
        for a, b in zip(loader, flat_loader):
            assert a.tobytes() == b.tobytes()
        info = ds.info()
        assert info["sharded"] and info["records"] == 180


def _flat(tree: Path, tmp_path: Path) -> Path:
    target = tmp_path / "flat"
    if not target.exists():
        rico.convert("bigearthnet", target, **sources(tree))
    return target


def test_cluster_shards_equal_local_shards(cluster, tree, unsharded, tmp_path):
    _, client = cluster
    local = tmp_path / "local"
    remote = tmp_path / "remote"
    rico.convert("bigearthnet", local, shards=5, **sources(tree))
    summary = rico.convert("bigearthnet", remote, shards=5, client=client, **sources(tree))
    assert summary.records == 180
    assert read_shards(remote) == read_shards(local)
    assert (
        json.loads((remote / "rico-manifest.json").read_text())["shards"]
        == json.loads((local / "rico-manifest.json").read_text())["shards"]
    )


def test_killing_a_worker_mid_run_gives_the_identical_result(cluster, tmp_path_factory, tmp_path):
    c, client = cluster
    root = tmp_path_factory.mktemp("bigger")
    make_dataset(root, patches=300)
    reference = tmp_path / "reference"
    rico.convert("bigearthnet", reference, shards=4, **sources(root))
    target = tmp_path / "killed"
    pids = client.run(os.getpid)
    done = {}

    def convert_killed():
        done["summary"] = rico.convert(
            "bigearthnet", target, shards=4, client=client, threads=1, **sources(root)
        )

    import threading

    t = threading.Thread(target=convert_killed)
    t.start()
    deadline = time.time() + 60
    while time.time() < deadline and not any(
        (target / f"shard-{i:05d}" / "data.mdb").exists() for i in range(4)
    ):
        time.sleep(0.01)
    victim = next(iter(pids.values()))
    os.kill(victim, signal.SIGKILL)
    t.join(timeout=300)
    assert not t.is_alive()
    assert read_shards(target) == read_shards(reference)


def test_resume_finishes_only_incomplete_shards(tree, tmp_path):
    target = tmp_path / "sharded"
    rico.convert("bigearthnet", target, shards=3, **sources(tree))
    before = read_shards(target)
    stamps = {i: (target / f"shard-{i:05d}" / "data.mdb").stat().st_mtime_ns for i in range(3)}
    # Shard 1 was interrupted: its completion marker is missing and it holds only some records.
    (target / "shard-00001" / "rico-shard.json").unlink()
    (target / "rico-manifest.json").unlink()
    import lmdb

    env = lmdb.open(str(target / "shard-00001"), map_size=1 << 30)
    with env.begin(write=True) as txn:
        for k, _ in list(txn.cursor())[10:]:
            txn.delete(k)
    env.close()
    with pytest.raises(rico.UsageError, match="resume"):
        rico.convert("bigearthnet", target, shards=3, **sources(tree))
    summary = rico.convert("bigearthnet", target, shards=3, resume=True, **sources(tree))
    assert summary.records == len(before[1]) - 10
    assert read_shards(target) == before
    for i in (0, 2):
        assert (target / f"shard-{i:05d}" / "data.mdb").stat().st_mtime_ns == stamps[i]


def test_cli_shards_and_scheduler(cluster, rico_bin, tree, unsharded, tmp_path):
    c, _ = cluster
    args = ["bigearthnet", *flags(tree), "--shards", 2]
    res = run(rico_bin, *args, "--target-dir", tmp_path / "a")
    assert res.returncode == 0, res.stderr
    assert sum(map(len, read_shards(tmp_path / "a"))) == len(unsharded)
    res = run(rico_bin, *args, "--target-dir", tmp_path / "b", "--scheduler", c.scheduler_address)
    assert res.returncode == 2 and "python -m rico" in res.stderr
    res = run(
        sys.executable, "-m", "rico", *args, "--target-dir", tmp_path / "c",
        "--scheduler", c.scheduler_address, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert read_shards(tmp_path / "c") == read_shards(tmp_path / "a")


def test_resume_with_another_shard_count_is_refused(tree, tmp_path):
    target = tmp_path / "sharded"
    rico.convert("bigearthnet", target, shards=3, **sources(tree))
    (target / "rico-manifest.json").unlink()
    (target / "rico-manifest.json.tmp").write_text("{")  # a run killed while writing it
    with pytest.raises(rico.UsageError, match="3 shards, not 4"):
        rico.convert("bigearthnet", target, shards=4, resume=True, **sources(tree))
    summary = rico.convert("bigearthnet", target, shards=3, resume=True, **sources(tree))
    assert summary.records == 0 and summary.already_present == 180
    assert json.loads((target / "rico-manifest.json").read_text())["records"] == 180
