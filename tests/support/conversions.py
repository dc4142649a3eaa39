"""The module fixtures most conversion tests share: a generated BigEarthNet tree, its conversion
by the ``rico`` binary, and the records of that clean conversion (what every interrupted,
resumed or hostile run must end up with)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .bigearthnet import cli_args
from .cli import run
from .lmdb_records import read_lmdb, read_shards
from .trees import make_dataset


def generated_tree(tmp_path_factory, patches: int, workers: int | None = 1) -> Path:
    """A generated BigEarthNet tree of ``patches`` patches in a new temporary directory
    (``workers=None``: written by a process pool where it is large)."""
    root = tmp_path_factory.mktemp("ben")
    make_dataset(root, patches=patches, workers=workers)
    return root


def converted(
    rico_bin: Path,
    tree: Path,
    tmp_path_factory,
    *more: object,
    name: str = "db",
    timeout: float = 120,
) -> Path:
    """``tree`` converted by ``rico bigearthnet`` (with the flags ``more``) into a new
    temporary directory, which it returns; the run must succeed within ``timeout`` seconds."""
    target = tmp_path_factory.mktemp(name) / "db"
    res = run(rico_bin, *cli_args(tree, target, *more), timeout=timeout)
    assert res.returncode == 0, res.stderr
    return target


def clean_records(
    rico_bin: Path, tree: Path, tmp_path_factory, *more: object, timeout: float = 120
) -> dict[bytes, bytes]:
    """``key -> value`` of ``tree`` converted by ``rico bigearthnet`` (with the flags ``more``)
    in one clean run."""
    target = converted(rico_bin, tree, tmp_path_factory, *more, name="clean", timeout=timeout)
    return read_lmdb(target)


def tree_fixture(patches: int, workers: int | None = 1) -> Any:
    """A module fixture of a generated tree of ``patches`` patches, named by what it is
    assigned to: ``tree = tree_fixture(40)`` at the top of a test module."""

    @pytest.fixture(scope="module")
    def tree(tmp_path_factory) -> Path:
        return generated_tree(tmp_path_factory, patches, workers)

    return tree


def tree_fixtures(patches: int) -> tuple[Any, Any]:
    """The module fixtures ``tree`` (a generated tree of ``patches`` patches) and ``clean``
    (the records of its clean conversion): ``tree, clean = tree_fixtures(40)``."""

    @pytest.fixture(scope="module")
    def clean(rico_bin, tree, tmp_path_factory) -> dict[bytes, bytes]:
        return clean_records(rico_bin, tree, tmp_path_factory)

    return tree_fixture(patches), clean


def sharded_args(tree: Path, target: Path, shards: int, *more: object) -> list[object]:
    """The arguments of ``rico`` converting ``tree`` into ``shards`` shards at ``target``."""
    return cli_args(tree, target, "--shards", shards, *more)


def resumes_exactly(rico_bin: Path, tree: Path, target: Path, clean, shards: int) -> str:
    """Asserts that ``--resume`` of the conversion of ``tree`` into ``shards`` shards at
    ``target`` succeeds with exactly the records ``clean``, each in one shard only; returns
    what it wrote to stderr."""
    res = run(rico_bin, *sharded_args(tree, target, shards, "--resume", "--quiet"))
    assert res.returncode == 0, res.stderr
    parts = read_shards(target)
    assert len(parts) == shards
    merged: dict[bytes, bytes] = {}
    for part in parts:
        assert not set(part) & set(merged)
        merged.update(part)
    assert merged == clean
    return res.stderr
