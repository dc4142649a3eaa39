"""`rico bench` and `rico.bench`: the report's structure and sane figures (never timings)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import lmdb
import numpy as np
import pytest
import rico
from support.bands import S1_BANDS
from support.cli import run
from support.lmdb_records import write_records

S2 = {"B02": 120, "B03": 120, "B04": 120, "B05": 60, "B11": 60}
MEASUREMENTS = ("sequential", "random", "batches")
SECONDS = 0.05


@pytest.fixture(scope="module")
def mixed_db(tmp_path_factory) -> Path:
    """12 S2-like records and 6 S1-like ones (other bands), as a BigEarthNet database mixes them."""
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("bench") / "db"
    records = {}
    for i in range(12):
        bands = {b: rng.integers(0, 12000, (s, s), dtype=np.uint16) for b, s in S2.items()}
        records[f"S2A_patch_{i:02d}"] = bands
    for i in range(6):
        bands = {b: rng.normal(size=(120, 120)).astype(np.float32) for b in S1_BANDS}
        records[f"S1A_patch_{i:02d}"] = bands
    return write_records(path, records)


def check_measurements(report: dict, records_in_db: int, batch_records: int) -> None:
    for name in MEASUREMENTS:
        m = report[name]
        assert set(m) >= {
            "records",
            "bytes",
            "seconds",
            "records_per_second",
            "mb_per_second",
            "passes",
        }
        assert m["records"] >= 1 and m["bytes"] > 0 and m["seconds"] > 0
        assert m["records_per_second"] == pytest.approx(m["records"] / m["seconds"], rel=1e-6)
        assert m["mb_per_second"] == pytest.approx(m["bytes"] / 1e6 / m["seconds"], rel=1e-6)
        available = batch_records if name == "batches" else records_in_db
        assert m["passes"] == pytest.approx(m["records"] / available, rel=1e-6)


def test_python_report_structure_with_defaults(mixed_db):
    report = rico.bench(mixed_db, seconds=SECONDS, threads=1)
    assert report["records"] == 18 and report["bytes"] > 0 and report["threads"] == 1
    # Default bands: the first record's (keys sort S1 before S2), at their own shape.
    assert report["bands"] == ["VH", "VV"] and tuple(report["size"]) == (120, 120)
    assert report["batch"] == 32 and report["batch_count"] >= 1
    check_measurements(report, 18, 6)
    # Whole records: every read counts the record's full value.
    with lmdb.open(str(mixed_db), readonly=True, lock=False) as env, env.begin() as txn:
        sizes = [len(v) for _, v in txn.cursor()]
    for name in ("sequential", "random"):
        m = report[name]
        assert min(sizes) * m["records"] <= m["bytes"] <= max(sizes) * m["records"]
    assert "sequential reads" in report["text"] and "random reads" in report["text"]


def test_batches_skip_records_without_the_bands(mixed_db):
    report = rico.bench(
        mixed_db, bands=["B04", "B03", "B02"], size=120, batch=4, threads=2, seconds=SECONDS
    )
    assert report["bands"] == ["B04", "B03", "B02"] and tuple(report["size"]) == (120, 120)
    assert report["threads"] == 2
    check_measurements(report, 18, 12)
    batches = report["batches"]
    # Only S2 records are batched: the bytes are exactly those of the three 120x120 uint16 bands.
    assert batches["bytes"] == batches["records"] * 3 * 120 * 120 * 2
    assert batches["records"] == report["batch_count"] * 4


def test_mixed_shapes_default_to_the_largest_side(mixed_db):
    report = rico.bench(mixed_db, bands=["B05", "B02"], seconds=SECONDS, threads=1)
    assert tuple(report["size"]) == (120, 120)
    assert report["batches"]["bytes"] == report["batches"]["records"] * (60 * 60 + 120 * 120) * 2


def test_unknown_band_is_a_usage_error(mixed_db):
    with pytest.raises(rico.UsageError, match="B99"):
        rico.bench(mixed_db, bands=["B99"], seconds=SECONDS)


def test_binary_json_and_text(mixed_db, rico_bin):
    out = run(
        rico_bin, "bench", mixed_db, "--bands", "B02,B03", "--batch", 5, "--threads", 1,
        "--seconds", SECONDS, "--json", check=True,
    )  # fmt: skip
    report = json.loads(out.stdout)
    assert (
        report["path"] == str(mixed_db)
        and report["bands"] == ["B02", "B03"]
        and report["batch"] == 5
    )
    check_measurements(report, 18, 12)

    text = run(
        sys.executable, "-m", "rico", "bench", mixed_db, "--bands", "B02", "B03",
        "--seconds", SECONDS, check=True,
    ).stdout  # fmt: skip
    for line in ("sequential reads", "random reads", "batches of 32 (B02,B03 at 120x120 float32)"):
        assert line in text

    bad = run(rico_bin, "bench", mixed_db, "--bands", "nope", "--seconds", 0)
    assert bad.returncode == 2 and "nope" in bad.stderr
