"""Every path of nearest batch assembly gives the numpy reference, value for value.

The assembler takes shortcuts (identity normalisation, per-source-pixel normalisation, row
copies, unrolled repeats for factors 2, 3, 4 and 6, a general gather otherwise); whichever it
takes, the batch must equal ``(a[rows][:, cols] - mean) * (1 / std)`` computed in float64.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rico
from support.lmdb_records import write_records

SHAPES = {
    "u16_120": (np.uint16, 120),
    "u16_60": (np.uint16, 60),
    "u16_20": (np.uint16, 20),
    "f32_40": (np.float32, 40),
    "i16_30": (np.int16, 30),
    "u8_7": (np.uint8, 7),
}


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    rng = np.random.default_rng(11)
    records = {}
    for i in range(6):
        bands = {}
        for name, (dtype, side) in SHAPES.items():
            if np.issubdtype(dtype, np.floating):
                bands[name] = rng.normal(0, 100, (side, side)).astype(dtype)
            else:
                info = np.iinfo(dtype)
                bands[name] = rng.integers(
                    info.min, info.max, (side, side), dtype=dtype, endpoint=True
                )
        records[f"patch_{i}"] = bands
    path = tmp_path_factory.mktemp("paths") / "db"
    write_records(path, records)
    return path, records


def reference(band: np.ndarray, size: int, mean: float, std: float, dtype) -> np.ndarray:
    h, w = band.shape
    rows = (np.arange(size) * h) // size
    cols = (np.arange(size) * w) // size
    picked = band[rows][:, cols].astype(np.float64)
    return ((picked - mean) * (1.0 / std)).astype(dtype)


@pytest.mark.parametrize("size", [120, 240, 180, 77, 50, 7, 1, 250])
@pytest.mark.parametrize("normalise", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nearest_equals_numpy(db, size, normalise, dtype):
    path, records = db
    bands = list(SHAPES)
    mean = [3.5, -1.0, 0.0, 2.25, 10.0, -0.0] if normalise else None
    std = [2.0, 0.5, 3.0, 1.5, 7.0, 1.0] if normalise else None
    keys = sorted(records)
    with rico.open(path) as ds:
        for threads in (1, 2):
            # Most of these ratios are uneven: "nearest" refuses them, "nearest-any" takes them.
            got = ds.batch(keys, bands, size, "nearest-any", dtype, mean, std, threads=threads)
            assert got.shape == (len(keys), len(bands), size, size) and got.dtype == np.dtype(dtype)
            for n, key in enumerate(keys):
                for c, band in enumerate(bands):
                    want = reference(
                        records[key][band],
                        size,
                        mean[c] if mean else 0.0,
                        std[c] if std else 1.0,
                        dtype,
                    )
                    np.testing.assert_array_equal(
                        got[n, c], want, err_msg=f"{key} {band} size={size}"
                    )


def test_same_shape_without_size_and_extreme_values(db):
    path, records = db
    keys = sorted(records)
    with rico.open(path) as ds:
        got = ds.batch(keys, ["u16_60", "u16_60"], dtype="float64", threads=1)
    for n, key in enumerate(keys):
        np.testing.assert_array_equal(got[n, 0], records[key]["u16_60"].astype(np.float64))
        np.testing.assert_array_equal(got[n, 1], got[n, 0])
