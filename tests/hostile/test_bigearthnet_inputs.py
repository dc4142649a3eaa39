"""``rico.BigEarthNet`` given what a careless user or a hand-edited table gives it: every bad
column, row, statistic and argument is an error that names the file and column (and row or
patch), or the argument, and says what to give; none is silently accepted. The errors are
``rico.UsageError``s that are also a ``ValueError`` or a ``TypeError``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rico
from rico.bigearthnet import CLASSES, InputTypeError, InputValueError
from support.bigearthnet import convert
from support.trees import make_bigearthnet


@pytest.fixture(scope="module")
def ben(tmp_path_factory) -> tuple[Path, Path, list[dict]]:
    """(database, metadata.parquet, its rows) of 12 patches, every row in the train split and
    unmarked, so that each case changes one thing."""
    root = tmp_path_factory.mktemp("ben")
    metadata = make_bigearthnet(root / "src", 12)
    db = root / "ben.lmdb"
    convert(root / "src", db, progress=False)
    rows = [
        dict(r, split="train", contains_seasonal_snow=False, contains_cloud_or_shadow=False)
        for r in pq.read_table(metadata).to_pylist()
    ]
    pq.write_table(pa.Table.from_pylist(rows), metadata)
    return db, metadata, rows


def table(path: Path, columns: dict[str, Any]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def columns_of(rows: list[dict], **changed: Any) -> dict[str, Any]:
    """The table's columns, with ``changed`` ones replaced (a list or a pyarrow array)."""
    out: dict[str, Any] = {k: [r[k] for r in rows] for k in rows[0]}
    out.update(changed)
    return out


def open_ben(db: Path, metadata: Path, **kw: Any) -> rico.BigEarthNet:
    kw = {"split": "train", "bands": "ALL", **kw}
    return rico.BigEarthNet(db, metadata=metadata, **kw)


# -- columns of the wrong type or with nulls ---------------------------------------------------


def test_a_text_labels_column_names_the_file_and_column(ben, tmp_path):
    db, _, rows = ben
    bad = table(
        tmp_path / "t.parquet", columns_of(rows, labels=["; ".join(r["labels"]) for r in rows])
    )
    with pytest.raises(InputTypeError, match=r"column 'labels' of .*t.parquet holds string"):
        open_ben(db, bad)


@pytest.mark.parametrize("null", ["row", "name"])
def test_null_labels_name_the_row_and_patch(ben, tmp_path, null):
    db, _, rows = ben
    labels = [list(r["labels"]) for r in rows]
    labels[3] = None if null == "row" else labels[3] + [None]
    bad = table(
        tmp_path / "t.parquet",
        columns_of(rows, labels=pa.array(labels, type=pa.list_(pa.string()))),
    )
    with pytest.raises(InputValueError) as e:
        open_ben(db, bad)
    msg = str(e.value)
    assert f"row 3 (patch {rows[3]['patch_id']})" in msg and "t.parquet" in msg, msg
    assert isinstance(e.value, rico.UsageError) and isinstance(e.value, ValueError)


def test_booleans_stored_as_text_name_the_column(ben, tmp_path):
    db, _, rows = ben
    # "False" as text: truthy, so that all rows would have been left out as snow, silently.
    bad = table(
        tmp_path / "t.parquet",
        columns_of(rows, contains_seasonal_snow=[str(r["contains_seasonal_snow"]) for r in rows]),
    )
    with pytest.raises(
        InputTypeError, match=r"column 'contains_seasonal_snow' of .*t.parquet holds string"
    ):
        open_ben(db, bad)


@pytest.mark.parametrize("on_missing", ["raise", "drop"])
def test_integer_or_null_patch_ids_name_the_column(ben, tmp_path, on_missing):
    db, _, rows = ben
    numbered = table(tmp_path / "n.parquet", columns_of(rows, patch_id=list(range(len(rows)))))
    with pytest.raises(InputTypeError, match=r"column 'patch_id' of .*n.parquet holds int64"):
        open_ben(db, numbered, on_missing=on_missing)
    ids = [r["patch_id"] for r in rows]
    ids[5] = None
    nulled = table(tmp_path / "z.parquet", columns_of(rows, patch_id=ids))
    with pytest.raises(InputValueError, match=r"column 'patch_id' of .*z.parquet is null in row 5"):
        open_ben(db, nulled, on_missing=on_missing)
    names = [r["s1_name"] for r in rows]
    names[2] = None
    no_s1 = table(tmp_path / "s.parquet", columns_of(rows, s1_name=names))
    with pytest.raises(InputValueError, match=r"'s1_name' of .*s.parquet is null in row 2 \(patch"):
        open_ben(db, no_s1, on_missing=on_missing)
    assert len(open_ben(db, no_s1, bands="S2")) == len(rows)  # s1_name is not needed there


def test_duplicate_patch_ids_and_an_empty_table_are_refused(ben, tmp_path):
    db, _, rows = ben
    twice = table(tmp_path / "d.parquet", columns_of(rows + rows[4:6]))
    with pytest.raises(InputValueError) as e:
        open_ben(db, twice)
    assert f"patch_id {rows[4]['patch_id']!r} appears in 2 rows of" in str(e.value)
    assert "2 patch_ids appear in more than one row" in str(e.value)
    empty = pq.read_table(ben[1]).slice(0, 0)
    pq.write_table(empty, tmp_path / "e.parquet")
    for split in ("train", None):
        with pytest.raises(InputValueError, match=r"e.parquet has no rows"):
            open_ben(db, tmp_path / "e.parquet", split=split)


# -- statistics and arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "says"),
    [
        ("438.3", InputTypeError, "B02 mean must be a number, not '438.3'"),
        (None, InputTypeError, "B02 mean must be a number, not None"),
        (True, InputTypeError, "B02 mean must be a number, not True"),
    ],
)
def test_a_statistics_file_with_a_bad_mean_names_the_file_and_band(
    ben, tmp_path, value, error, says
):
    db, metadata, _ = ben
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"bands": {"B02": {"mean": value, "std": 600.0}}}))
    with pytest.raises(error) as e:
        open_ben(db, metadata, bands=["B02"], normalize=stats)
    assert str(stats) in str(e.value) and says in str(e.value)


def test_a_statistics_file_with_nan_or_a_zero_std_or_no_std_is_refused(ben, tmp_path):
    db, metadata, _ = ben
    stats = tmp_path / "stats.json"
    for entry, says in [
        ({"mean": math.nan, "std": 1.0}, "B02 mean must be a finite number, not nan"),
        ({"mean": 1.0, "std": 0.0}, "B02 std must be a finite number above 0, not 0.0"),
        ({"mean": 1.0}, "band B02 has no 'std'"),
    ]:
        stats.write_text(json.dumps({"bands": {"B02": entry}}))
        with pytest.raises(InputValueError, match=says):
            open_ben(db, metadata, bands=["B02"], normalize=stats)


def test_normalize_of_the_wrong_shape_or_with_nan_names_the_argument(ben):
    db, metadata, _ = ben
    two = ["B02", "B03"]
    with pytest.raises(InputTypeError, match=r"normalize.*mean must be a list of 2 numbers.*1\.0"):
        open_ben(db, metadata, bands=two, normalize=(1.0, 2.0))
    with pytest.raises(InputValueError, match=r"normalize=\{\.\.\.\} has no 'std'"):
        open_ben(db, metadata, bands=two, normalize={"mean": [1.0, 2.0]})
    with pytest.raises(InputValueError, match=r"mean\[1\] must be a finite number, not nan"):
        open_ben(db, metadata, bands=two, normalize=([1.0, math.nan], [1.0, 1.0]))
    with pytest.raises(InputValueError, match=r"std has 1 values for 2 bands"):
        open_ben(db, metadata, bands=two, normalize=([1.0, 2.0], [1.0]))
    with pytest.raises(InputTypeError, match=r"normalize must be None, \"bigearthnet-v2\""):
        open_ben(db, metadata, bands=two, normalize=5)
    ok = open_ben(db, metadata, bands=two, normalize=(np.array([1.0, 2.0]), (3, 4)))
    assert ok.mean == [1.0, 2.0] and ok.std == [3.0, 4.0]


@pytest.mark.parametrize(
    ("size", "error", "says"),
    [
        (120.7, InputTypeError, "size must be a whole number of pixels .*, not 120.7"),
        (1e6, InputTypeError, "size must be a whole number of pixels .*, not 1000000.0"),
        (10**6, InputValueError, "size must be between 1 and 65536 pixels, not 1000000"),
        (0, InputValueError, "size must be between 1 and 65536 pixels, not 0"),
        (True, InputTypeError, "size must be a whole number"),
    ],
)
def test_a_size_that_is_not_a_whole_number_of_pixels_in_range_is_refused(ben, size, error, says):
    db, metadata, _ = ben
    with pytest.raises(error, match=says):
        open_ben(db, metadata, size=size)


def test_absurd_thread_counts_are_refused_when_made(ben):
    db, metadata, _ = ben
    with pytest.raises(rico.UsageError, match="threads must be between 1 and 1024"):
        open_ben(db, metadata, threads=100_000)
    good = open_ben(db, metadata, bands="RGB")
    with pytest.raises(rico.UsageError, match="threads must be between 1 and 1024"):
        good.loader(threads=100_000)
    with pytest.raises(rico.UsageError, match="threads must be between 1 and 1024"):
        good.batch([0], threads=0)


def test_an_empty_batch_has_the_shapes_of_a_batch(ben):
    db, metadata, rows = ben
    good = open_ben(db, metadata, size=60)
    empty = good.batch([])
    assert empty["image"].shape == (0, 14, 60, 60) and empty["image"].dtype == np.float32
    assert empty["label"].shape == (0, len(CLASSES)) and empty["label"].dtype == np.float32
    assert empty["mask"].shape == (0, 60, 60) and empty["mask"].dtype == np.uint8
    assert empty["key"] == []
    full = good.batch([0, -1])
    assert full["key"] == [good.keys[0], good.keys[-1]]
    with pytest.raises(IndexError, match=f"index {len(rows)} is out of range for {len(rows)} rows"):
        good.batch([len(rows)])
    with pytest.raises(TypeError, match="whole numbers, not 1.5"):
        good.batch([1.5])
