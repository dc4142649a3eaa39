"""A symbolic link that leads back to a directory holding it (a link loop) never hangs the
converter or makes false duplicates: the conversion stops at once naming the link, or with
``--skip-invalid`` leaves it out, lists it in ``rico-skipped.tsv`` and converts the rest."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from support.bigearthnet import flags
from support.cli import run
from support.conversions import tree_fixtures
from support.lmdb_records import read_lmdb

tree, clean = tree_fixtures(patches=8)


def looped(tree: Path, tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """A copy of ``tree`` with a link loop in its S2 folder; returns the root and the link."""
    root = tmp_path / "src"
    shutil.copytree(tree, root, symlinks=True)
    s2 = root / "BigEarthNet-S2"
    if kind == "two links to their own folder":
        (s2 / "junk").mkdir()
        os.symlink(".", s2 / "junk" / "a")
        os.symlink(".", s2 / "junk" / "b")
        return root, s2 / "junk" / "a"
    patch = sorted(p for p in s2.glob("*/*") if p.is_dir())[0]
    os.symlink("..", patch / "up")
    return root, patch / "up"


@pytest.mark.parametrize("kind", ["two links to their own folder", "a link up to the parent"])
def test_a_link_loop_stops_the_conversion_at_once_naming_the_link(rico_bin, tree, tmp_path, kind):
    root, link = looped(tree, tmp_path, kind)
    started = time.monotonic()
    res = run(rico_bin, "bigearthnet", *flags(root), "--target-dir", tmp_path / "db", timeout=30)
    assert time.monotonic() - started < 30
    assert res.returncode == 1, res.stderr
    assert "symbolic link loop" in res.stderr and str(link) in res.stderr, res.stderr
    assert "--skip-invalid" in res.stderr and "duplicate" not in res.stderr


@pytest.mark.parametrize("kind", ["two links to their own folder", "a link up to the parent"])
def test_skip_invalid_leaves_the_loop_out_and_converts_every_patch(
    rico_bin, tree, clean, tmp_path, kind
):
    root, link = looped(tree, tmp_path, kind)
    target = tmp_path / "db"
    res = run(
        rico_bin, "bigearthnet", *flags(root), "--target-dir", target, "--skip-invalid", timeout=30
    )
    assert res.returncode == 0, res.stderr
    assert read_lmdb(target) == clean
    assert str(link) in (target / "rico-skipped.tsv").read_text()
