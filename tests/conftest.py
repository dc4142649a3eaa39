"""Shared fixtures: the real samples in tests/data, the binary. Helpers live in tests/support/
(``from support.lmdb_records import read_lmdb``, ...)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.lmdb_records import read_lmdb as read_lmdb  # `from conftest import read_lmdb`

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "tests" / "data" / "samples"
RICO_BIN = ROOT / "target" / "release" / "rico"


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
