"""Shared fixtures: the real samples in tests/data, the binary, LMDB helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import lmdb
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "data" / "samples"
RICO_BIN = ROOT / "target" / "release" / "rico"

sys.path.insert(0, str(ROOT / "benches"))


@pytest.fixture(scope="session")
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.fail(f"the real samples are missing: expected {SAMPLES} (part of the repository)")
    return SAMPLES


@pytest.fixture(scope="session")
def rico_bin() -> Path:
    if not RICO_BIN.is_file():
        pytest.fail(f"{RICO_BIN} is missing: run `make build`")
    return RICO_BIN


def read_lmdb(path: Path) -> dict[bytes, bytes]:
    """Every record of the LMDB database at ``path``, through the Python ``lmdb`` package."""
    with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
        return {bytes(k): bytes(v) for k, v in txn.cursor()}
