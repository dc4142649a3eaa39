"""Small edges, each with the error a user can act on: a key no record can have is absent, not
damage; an empty ``data.mdb`` is not a database; ``--skip-invalid`` skips a patch directory it
cannot list and reports it; a target path that is not UTF-8 converts and opens."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import rico
from support.bigearthnet import flags
from support.cli import run
from support.conversions import converted, tree_fixture
from support.lmdb_records import read_lmdb

tree = tree_fixture(patches=6)


@pytest.fixture(scope="module")
def db(rico_bin, tree, tmp_path_factory) -> Path:
    return converted(rico_bin, tree, tmp_path_factory)


@pytest.mark.parametrize("key", ["", b"", "k" * 512])
def test_a_key_no_record_can_have_is_absent_not_damage(db, key):
    ds = rico.open(db)
    with pytest.raises(KeyError):
        ds[key]
    assert key not in ds and ds.get(key) is None and ds.raw(key) is None
    with pytest.raises(rico.UsageError, match="no record with key"):
        ds.batch([key], bands=["B02"])


def test_an_empty_data_mdb_is_not_a_database(rico_bin, tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "data.mdb").write_bytes(b"")
    with pytest.raises(rico.DataError, match="empty") as err:
        rico.open(tmp_path / "db")
    assert "Bad file descriptor" not in str(err.value)
    res = run(rico_bin, "info", tmp_path / "db")
    assert res.returncode == 1 and "empty (0 bytes)" in res.stderr, res.stderr


def test_skip_invalid_skips_and_reports_a_patch_directory_it_cannot_list(rico_bin, tree):
    # Permissions bind only an unprivileged user (root reads everything): the binary runs as
    # nobody, from a copy in a world-readable directory.
    base = Path(tempfile.mkdtemp(prefix="rico-unlistable-"))
    try:
        base.chmod(0o755)
        binary = base / "rico"
        shutil.copy(rico_bin, binary)
        binary.chmod(0o755)
        src = base / "src"
        shutil.copytree(tree, src)
        for d, _, files in os.walk(src):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        victim = sorted(p for p in (src / "BigEarthNet-S2").glob("*/*") if p.is_dir())[1]
        victim.chmod(0o000)
        out = base / "out"
        out.mkdir(mode=0o777)
        out.chmod(0o777)

        def nobody() -> None:
            if os.getuid() == 0:
                os.setgid(65534)
                os.setuid(65534)

        args = ["bigearthnet", *flags(src), "--target-dir"]
        res = run(binary, *args, out / "stop", preexec_fn=nobody)
        if os.getuid() == 0 or res.returncode != 0:
            assert res.returncode == 1 and str(victim) in res.stderr, res.stderr
            assert "--skip-invalid" in res.stderr
        res = run(binary, *args, out / "db", "--skip-invalid", preexec_fn=nobody)
        assert res.returncode == 0, res.stderr
        skipped = (out / "db" / "rico-skipped.tsv").read_text()
        assert str(victim) in skipped and "cannot list directory" in skipped
        records = read_lmdb(out / "db")
        assert len(records) == 18 - 1 and not any(victim.name.encode() == k for k in records)
    finally:
        for d, _, _ in os.walk(base):
            os.chmod(d, 0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_a_target_path_that_is_not_utf8_converts_and_opens(rico_bin, tree, tmp_path):
    target = os.fsdecode(os.fsencode(tmp_path) + b"/db-\xff\xfe")
    res = run(rico_bin, "bigearthnet", *flags(tree), "--target-dir", target)
    assert res.returncode == 0, res.stderr
    ds = rico.open(target)
    keys = ds.keys()
    assert len(keys) == 18 and all(ds[k] for k in keys)
    assert run(rico_bin, "info", target).returncode == 0


def test_a_second_sharded_run_while_a_shard_is_written_is_told_another_process_writes(
    rico_bin, tree, tmp_path
):
    target = tmp_path / "db"
    args = ["bigearthnet", *flags(tree), "--target-dir", target, "--shards", 4]
    assert run(rico_bin, *args).returncode == 0
    # As the first run leaves it while it converts shard 1: no manifest yet, the shard's
    # writer lock held.
    (target / "rico-manifest.json").unlink()
    with open(target / "shard-00001" / "data.mdb", "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        res = run(rico_bin, *args)
    assert res.returncode == 3 and "another process is writing" in res.stderr, res.stderr
    assert "not empty" not in res.stderr and "already holds" not in res.stderr
