"""The module fixtures most conversion tests share: a generated BigEarthNet tree, and the
records of its clean conversion by the ``rico`` binary (what every interrupted, resumed or
hostile run must end up with)."""

from __future__ import annotations

from pathlib import Path

from .bigearthnet import flags
from .cli import run
from .lmdb_records import read_lmdb
from .trees import make_dataset


def generated_tree(tmp_path_factory, patches: int) -> Path:
    """A generated BigEarthNet tree of ``patches`` patches in a new temporary directory."""
    root = tmp_path_factory.mktemp("ben")
    make_dataset(root, patches=patches, workers=1)
    return root


def clean_records(rico_bin: Path, tree: Path, tmp_path_factory) -> dict[bytes, bytes]:
    """``key -> value`` of ``tree`` converted by ``rico bigearthnet`` in one clean run."""
    target = tmp_path_factory.mktemp("clean") / "db"
    res = run(rico_bin, "bigearthnet", *flags(tree), "--target-dir", target)
    assert res.returncode == 0, res.stderr
    return read_lmdb(target)
