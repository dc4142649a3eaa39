"""Damaged key bytes that every page header check passes: the database's own key walk would list
a key that a search for it cannot find. That is damage, found when the database is opened:
``rico.open`` raises ``DataError`` naming it, and ``rico info`` and ``rico stats`` exit 1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import rico
from support.cli import run
from support.conversions import converted, generated_tree


@pytest.fixture(scope="module")
def db(rico_bin, tmp_path_factory) -> Path:
    return converted(rico_bin, generated_tree(tmp_path_factory, 6), tmp_path_factory)


def damage_key(db: Path, tmp_path: Path, which: int) -> Path:
    """A copy of ``db`` whose key number ``which`` (in order) has its first byte overwritten
    with one that sorts after every key: its page stays well formed, its order does not."""
    copy = tmp_path / "damaged"
    shutil.copytree(db, copy)
    ds = rico.open(db)
    key = ds.keys()[which].encode()
    ds.close()
    data = bytearray((copy / "data.mdb").read_bytes())
    at = data.find(key)
    assert at >= 0 and data.find(key, at + 1) < 0
    data[at] = 0x7F
    (copy / "data.mdb").write_bytes(bytes(data))
    return copy


@pytest.mark.parametrize("which", [0, 5])
def test_a_listed_key_that_cannot_be_found_is_damage_named_at_open(db, tmp_path, which):
    damaged = damage_key(db, tmp_path, which)
    with pytest.raises(rico.DataError) as err:
        ds = rico.open(damaged)
        # Before the check: keys() listed the damaged key and ds[key] raised KeyError.
        for key in ds.keys():
            ds[key]
    assert str(damaged) in str(err.value) and "damaged" in str(err.value)


def test_info_and_stats_exit_1_on_such_damage(rico_bin, db, tmp_path):
    damaged = damage_key(db, tmp_path, 0)
    res = run(rico_bin, "info", damaged)
    assert res.returncode == 1 and "damaged" in res.stderr, res
    res = run(rico_bin, "stats", damaged, "--bands", "B02")
    assert res.returncode == 1 and "damaged" in res.stderr, res
