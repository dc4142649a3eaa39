"""Fixtures of the pytest-benchmark suites: a small BigEarthNet-shaped tree and its database.

The suites are off in `make test` (pyproject's `--benchmark-disable`, and `make test` collects
`tests/` only); `make bench` runs them with `--benchmark-enable --benchmark-only`.
"""

from __future__ import annotations

from pathlib import Path

import _tests_path  # noqa: F401  (first: tests/ on sys.path)
import baselines
import pytest
from support.bigearthnet import convert
from support.trees import make_dataset

PATCHES = 40


@pytest.fixture(scope="session")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    make_dataset(root, PATCHES, workers=1)
    return root


@pytest.fixture(scope="session")
def one_patch_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("one")
    make_dataset(root, 1, workers=1)
    return root


@pytest.fixture(scope="session")
def database(tree, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("db") / "ben.lmdb"
    convert(tree, path, threads=1, progress=False)
    return path


@pytest.fixture(scope="session")
def s2_keys(database) -> list[bytes]:
    return baselines.s2_keys(database)
