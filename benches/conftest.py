"""Fixtures of the pytest-benchmark suites: a small BigEarthNet-shaped tree and its database.

The suites are off in `make test` (pyproject's `--benchmark-disable`, and `make test` collects
`tests/` only); `make bench` runs them with `--benchmark-enable --benchmark-only`.
"""

from __future__ import annotations

from pathlib import Path

import baselines
import make_dataset
import pytest
import rico

PATCHES = 40


@pytest.fixture(scope="session")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    make_dataset.make_dataset(root, PATCHES, workers=1)
    return root


@pytest.fixture(scope="session")
def one_patch_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("one")
    make_dataset.make_dataset(root, 1, workers=1)
    return root


def bigearthnet_sources(tree: Path) -> dict[str, str]:
    dirs = baselines.source_dirs(tree)
    return {
        "bigearthnet_s1_dir": str(dirs["s1"]),
        "bigearthnet_s2_dir": str(dirs["s2"]),
        "bigearthnet_reference_maps_dir": str(dirs["maps"]),
    }


@pytest.fixture(scope="session")
def database(tree, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("db") / "ben.lmdb"
    rico.convert("bigearthnet", path, threads=1, progress=False, **bigearthnet_sources(tree))
    return path


@pytest.fixture(scope="session")
def s2_keys(database) -> list[bytes]:
    return baselines.s2_keys(database)
