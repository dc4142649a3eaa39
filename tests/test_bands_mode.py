"""The generic one-file-per-band mode on a SEN12MS-style tree: files grouped into patches by a
user's regular expression with named groups `key` and `band`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rico
from support.cli import run
from support.expected_records import bands_record, layout
from support.geotiff import write_tif
from support.lmdb_records import read_lmdb

PATTERN = r"(?P<key>[^/]+)_(?P<band>B\d+A?)\.tif$"
BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


def make_tree(root: Path, seed: int = 0) -> dict[bytes, dict[str, Path]]:
    """ROIs<n>_<season>/s2_<scene>/ROIs<n>_<season>_s2_<scene>_p<patch>_<band>.tif"""
    rng = np.random.default_rng(seed)
    patches: dict[bytes, dict[str, Path]] = {}
    for roi, scene, patch in [
        ("ROIs1158_spring", 1, 30),
        ("ROIs1158_spring", 1, 31),
        ("ROIs2017_winter", 7, 2),
    ]:
        key = f"{roi}_s2_{scene}_p{patch}"
        files = {}
        for band in BANDS:
            side = 16 if band in ("B02", "B03", "B04", "B08") else 8
            array = rng.integers(0, 10000, (side, side), dtype=np.uint16)
            files[band] = write_tif(
                root / roi / f"s2_{scene}" / f"{key}_{band}.tif",
                array,
                compress="lzw" if patch % 2 else None,
            )
        patches[key.encode()] = files
    (root / "ROIs1158_spring" / "s2_1" / "ROIs1158_spring_s2_1_p30.json").write_text("{}")
    return patches


def test_files_group_by_key_and_values_equal_rasterio(tmp_path):
    patches = make_tree(tmp_path / "sen12ms")
    summary = rico.convert(
        "bands", tmp_path / "db", dataset_dir=tmp_path / "sen12ms", pattern=PATTERN, threads=2
    )
    got = read_lmdb(tmp_path / "db")
    assert sorted(got) == sorted(patches)
    for key, files in patches.items():
        assert got[key] == bands_record(files), key
    assert layout(got[b"ROIs2017_winter_s2_7_p2"])["B02"] == ("uint16", (16, 16))
    assert layout(got[b"ROIs2017_winter_s2_7_p2"])["B8A"] == ("uint16", (8, 8))
    assert summary.files == 3 * 13 and summary.labels_table is None


def test_a_band_missing_from_one_patch_is_an_error(tmp_path):
    patches = make_tree(tmp_path / "sen12ms")
    patches[b"ROIs1158_spring_s2_1_p31"]["B8A"].unlink()
    with pytest.raises(rico.DataError, match="ROIs1158_spring_s2_1_p31 has no file for band B8A"):
        rico.convert("bands", tmp_path / "db", dataset_dir=tmp_path / "sen12ms", pattern=PATTERN)
    assert not (tmp_path / "db" / "data.mdb").exists()


def test_the_same_band_of_a_key_twice_names_both_files(tmp_path):
    patches = make_tree(tmp_path / "sen12ms")
    original = patches[b"ROIs2017_winter_s2_7_p2"]["B03"]
    copy = tmp_path / "sen12ms" / "elsewhere" / original.name
    copy.parent.mkdir()
    shutil.copy(original, copy)
    with pytest.raises(rico.DataError, match="duplicate key") as err:
        rico.convert("bands", tmp_path / "db", dataset_dir=tmp_path / "sen12ms", pattern=PATTERN)
    assert str(original) in str(err.value) and str(copy) in str(err.value)
    assert not (tmp_path / "db" / "data.mdb").exists()


@pytest.mark.parametrize(
    "pattern, message",
    [
        (r"(?P<key>[^/]+_(?P<band>B\d+)\.tif$", "not a valid regular expression"),
        (r"(?P<name>[^/]+)_(?P<band>B\d+)\.tif$", "no named group `key`"),
        (r"(?P<key>[^/]+)_B\d+\.tif$", "no named group `band`"),
    ],
)
def test_a_bad_pattern_is_a_usage_error_naming_the_option(tmp_path, pattern, message):
    (tmp_path / "src").mkdir()
    with pytest.raises(rico.UsageError, match=message) as err:
        rico.convert("bands", tmp_path / "db", dataset_dir=tmp_path / "src", pattern=pattern)
    assert "--pattern" in str(err.value)
    assert not (tmp_path / "db").exists()


def test_pattern_is_required_and_must_match_something(tmp_path):
    make_tree(tmp_path / "sen12ms")
    with pytest.raises(rico.UsageError, match="bands needs --pattern"):
        rico.convert("bands", tmp_path / "db", dataset_dir=tmp_path / "sen12ms")
    with pytest.raises(rico.UsageError, match="no patch found"):
        rico.convert(
            "bands",
            tmp_path / "db",
            dataset_dir=tmp_path / "sen12ms",
            pattern=r"(?P<key>x)(?P<band>y)\.png$",
        )


def test_cli(rico_bin, tmp_path):
    patches = make_tree(tmp_path / "sen12ms")
    res = run(
        rico_bin, "bands", "--dataset-dir", tmp_path / "sen12ms", "--pattern", PATTERN,
        "--target-dir", tmp_path / "db",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert read_lmdb(tmp_path / "db") == {k: bands_record(f) for k, f in patches.items()}
    missing = run(
        rico_bin, "bands", "--dataset-dir", tmp_path / "sen12ms", "--target-dir", tmp_path / "db2"
    )
    assert missing.returncode == 2 and "--pattern" in missing.stderr
    bad = run(
        rico_bin, "bands", "--dataset-dir", tmp_path / "sen12ms", "--pattern", "(?P<key>",
        "--target-dir", tmp_path / "db3",
    )  # fmt: skip
    assert bad.returncode == 2 and "--pattern" in bad.stderr
