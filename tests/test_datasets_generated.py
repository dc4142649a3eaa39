"""Named datasets on trees written with rasterio, for what the real samples do not cover:
SpectralEarth, Major-TOM's Sentinel-1 part, patches whose shape differs from the rest, files
that are not image data, and missing band files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rico
from support.expected_records import bands_record, layout, numbered_record
from support.geotiff import write_tif
from support.lmdb_records import read_lmdb


def test_spectral_earth_keys_keep_the_tif_suffix_and_shapes_are_kept(tmp_path):
    rng = np.random.default_rng(0)
    enmap = tmp_path / "enmap"
    files = {
        "1234_00017.tif": write_tif(
            enmap / "1234" / "00017.tif", rng.integers(-100, 9000, (202, 16, 16), dtype=np.int16)
        ),
        "1234_00018.tif": write_tif(
            enmap / "1234" / "00018.tif",
            rng.integers(-100, 9000, (202, 16, 16), dtype=np.int16),
            compress="deflate",
            interleave="band",
        ),
        # A patch one row larger than the rest: converted as it is.
        "77_00001.tif": write_tif(
            enmap / "77" / "00001.tif", rng.integers(-100, 9000, (202, 17, 16), dtype=np.int16)
        ),
    }
    (enmap / "1234" / "notes.txt").write_text("not image data")
    write_tif(
        enmap / "1234" / "thumb" / "00019.tif", np.zeros((1, 4, 4), np.uint8)
    )  # three levels down: skipped
    write_tif(enmap / "00020.tif", np.zeros((1, 4, 4), np.uint8))  # one level down: skipped
    summary = rico.convert("spectral-earth-enmap", tmp_path / "db", dataset_dir=enmap)
    got = read_lmdb(tmp_path / "db")
    assert sorted(got) == sorted(k.encode() for k in files)
    for key, path in files.items():
        assert got[key.encode()] == numbered_record(path), key
    assert layout(got[b"77_00001.tif"])["B202"] == ("int16", (17, 16))
    assert sorted(layout(got[b"1234_00017.tif"])) == sorted(f"B{i}" for i in range(1, 203))
    assert summary.files == 3


def major_tom_s1(root: Path, rng) -> dict[bytes, bytes]:
    want = {}
    for cell, product in [
        ("1U/1U_2R", "S1A_IW_GRDH_1SDV_20200101T000000_20200101T000025_030000_037000_ABCD_rtc"),
        ("1U/1U_3R", "S1B_IW_GRDH_1SDV_20200102T000000_20200102T000025_030001_037001_ABCE_rtc"),
    ]:
        product_dir = root / cell / product
        files = {
            b: write_tif(product_dir / f"{b}.tif", rng.random((1, 12, 12), dtype=np.float32))
            for b in ("vh", "vv")
        }
        (product_dir / "thumbnail.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        want[f"{cell.split('/')[1]}_{product}".encode()] = bands_record(files)
    return want


def test_major_tom_s1_keeps_lower_case_band_names_and_goes_with_s2(samples, tmp_path):
    rng = np.random.default_rng(1)
    want = major_tom_s1(tmp_path / "S1RTC", rng)
    summary = rico.convert(
        "major-tom-core",
        tmp_path / "db",
        s1_dir=tmp_path / "S1RTC",
        s2_dir=samples / "Major-TOM-Core" / "S2L2A",
    )
    got = read_lmdb(tmp_path / "db")
    assert len(got) == 3 and summary.records == 3
    for key, value in want.items():
        assert got[key] == value, key
        assert layout(value) == {"vh": ("float32", (12, 12)), "vv": ("float32", (12, 12))}


def test_major_tom_missing_band_names_patch_and_band(tmp_path):
    rng = np.random.default_rng(2)
    major_tom_s1(tmp_path / "S1RTC", rng)
    victim = next((tmp_path / "S1RTC").glob("1U/1U_3R/*_rtc"))
    (victim / "vv.tif").unlink()
    with pytest.raises(rico.DataError, match=rf"1U_3R_{victim.name} has no file for band vv"):
        rico.convert("major-tom-core", tmp_path / "db", s1_dir=tmp_path / "S1RTC")
    # Planning streams: patches before it may be committed (kept for --resume), never it.
    if (tmp_path / "db" / "data.mdb").exists():
        assert f"1U_3R_{victim.name}".encode() not in read_lmdb(tmp_path / "db")


def ssl4eo_tree(root: Path, rng, bands, sizes) -> None:
    for location, acquisition in [
        ("0000001", "20200101T000000_20200101T000001_T31ABC"),
        ("0000002", "20200202T000000_20200202T000001_T31ABD"),
    ]:
        patch = root / location / acquisition
        for band in bands:
            side = sizes.get(band, 132)
            if location == "0000002" and band == "B2":
                side += 1  # some real patches are one row and column larger
            write_tif(patch / f"{band}.tif", rng.integers(0, 10000, (side, side), dtype=np.uint16))
        (patch / "metadata.json").write_text("{}")


L1C = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12"]


def test_ssl4eo_keeps_odd_sized_patches_and_reports_a_missing_band(tmp_path):
    rng = np.random.default_rng(3)
    ssl4eo_tree(tmp_path / "s2c", rng, L1C, {"B2": 264, "B1": 44})
    rico.convert("ssl4eo-s12", tmp_path / "db", s2_l1c_dir=tmp_path / "s2c")
    got = read_lmdb(tmp_path / "db")
    key = b"s2c_0000002_20200202T000000_20200202T000001_T31ABD"
    patch = tmp_path / "s2c" / "0000002" / "20200202T000000_20200202T000001_T31ABD"
    assert got[key] == bands_record({b: patch / f"{b}.tif" for b in L1C})
    assert layout(got[key])["B2"] == ("uint16", (265, 265))
    (patch / "B10.tif").unlink()
    with pytest.raises(
        rico.DataError,
        match=r"s2c_0000002_20200202T000000_20200202T000001_T31ABD has no file for band B10",
    ) as err:
        rico.convert("ssl4eo-s12", tmp_path / "db2", s2_l1c_dir=tmp_path / "s2c")
    assert str(patch) in str(err.value)
    # Planning streams: the patch before it is committed (kept for --resume), never it.
    assert set(read_lmdb(tmp_path / "db2")) == {
        b"s2c_0000001_20200101T000000_20200101T000001_T31ABC"
    }


def test_hydro_and_eurosat_refuse_a_file_with_the_wrong_band_count(tmp_path):
    write_tif(tmp_path / "hydro" / "patch_1.tif", np.zeros((11, 8, 8), np.uint16))
    with pytest.raises(rico.DataError, match=r"expected 12 bands .*found 11") as err:
        rico.convert("hydro", tmp_path / "db", dataset_dir=tmp_path / "hydro")
    assert "patch_1.tif" in str(err.value)


def test_dataset_dir_without_patches_is_a_usage_error_naming_the_option(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    for name in [
        "hyspecnet-11k",
        "uc-merced",
        "eurosat-multi-spectral",
        "hydro",
        "spectral-earth-enmap",
    ]:
        with pytest.raises(rico.UsageError, match="no patch found .*--dataset-dir"):
            rico.convert(name, tmp_path / "db", dataset_dir=tmp_path / "empty")
    with pytest.raises(rico.UsageError, match="no source option"):
        rico.convert("hydro", tmp_path / "db", s2_dir=tmp_path / "empty")
