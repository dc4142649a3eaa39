"""The generic image-folder mode: <class>/<image>.{tif,tiff,jpg,jpeg,png}, one record per image,
the class folder in labels.csv; JPEG/PNG equal to Pillow, TIFF to rasterio."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import rico
from PIL import Image
from support.cli import run
from support.expected_records import file_record, layout, pillow_record
from support.geotiff import write_tif
from support.lmdb_records import read_lmdb


def read_table(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_eurosat_rgb_samples(samples, tmp_path):
    root = samples / "EuroSAT_RGB"
    summary = rico.convert("image-folder", tmp_path / "db", dataset_dir=root)
    got = read_lmdb(tmp_path / "db")
    assert sorted(got) == [b"AnnualCrop_1", b"Pasture_300"]
    for key, path in [
        (b"AnnualCrop_1", root / "AnnualCrop" / "AnnualCrop_1.jpg"),
        (b"Pasture_300", root / "Pasture" / "Pasture_300.jpg"),
    ]:
        assert got[key] == pillow_record(path, ["B1", "B2", "B3"])
        assert layout(got[key]) == {b: ("uint8", (64, 64)) for b in ("B1", "B2", "B3")}
    assert read_table(tmp_path / "db" / "labels.csv") == [
        ["key", "AnnualCrop", "Pasture"],
        ["AnnualCrop_1", "1", "0"],
        ["Pasture_300", "0", "1"],
    ]
    assert summary.labels_table == str(tmp_path / "db" / "labels.csv")
    named = rico.convert(
        "image-folder", tmp_path / "db2", dataset_dir=root, band_names=["Red", "Green", "Blue"]
    )
    assert named.records == 2
    assert read_lmdb(tmp_path / "db2")[b"Pasture_300"] == pillow_record(
        root / "Pasture" / "Pasture_300.jpg", ["Red", "Green", "Blue"]
    )


def test_uc_merced_samples_as_an_image_folder(samples, tmp_path):
    root = samples / "UCMerced_LandUse"
    rico.convert("image-folder", tmp_path / "db", dataset_dir=root, band_names="Red,Green,Blue")
    got = read_lmdb(tmp_path / "db")
    path = root / "Images" / "forest" / "forest10.tif"
    assert got[b"forest10"] == file_record(path, ["Red", "Green", "Blue"])
    assert read_table(tmp_path / "db" / "labels.csv")[0] == ["key", "airplane", "forest"]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """Classes of JPEG, PNG and SEN12MS-style 13-band uint16 TIFFs, extensions in any case."""
    root = tmp_path_factory.mktemp("folder")
    rng = np.random.default_rng(0)
    (root / "river").mkdir()
    (root / "forest").mkdir()
    Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(
        root / "river" / "r1.jpg", quality=90
    )
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        root / "river" / "r2.JPEG", quality=70, subsampling="4:4:4"
    )
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(
        root / "river" / "r3.png"
    )
    for n in (1, 2):
        write_tif(
            root / "forest" / f"ROIs1158_spring_s2_{n}_p{n}.tif",
            rng.integers(0, 10000, (13, 16, 16), dtype=np.uint16),
            interleave="pixel",
        )
    write_tif(
        root / "forest" / "ROIs1158_spring_s2_3_p3.TIFF",
        rng.integers(0, 10000, (13, 17, 16), dtype=np.uint16),
        interleave="pixel",
    )
    (root / "forest" / "readme.txt").write_text("not an image")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
        root / "top_level.png"
    )  # no class: skipped
    return root


def test_mixed_formats_each_equal_their_reference_reader(mixed, tmp_path):
    summary = rico.convert("image-folder", tmp_path / "db", dataset_dir=mixed, threads=2)
    got = read_lmdb(tmp_path / "db")
    assert sorted(got) == sorted(
        [
            b"r1",
            b"r2",
            b"r3",
            b"ROIs1158_spring_s2_1_p1",
            b"ROIs1158_spring_s2_2_p2",
            b"ROIs1158_spring_s2_3_p3",
        ]
    )
    three = ["B1", "B2", "B3"]
    assert got[b"r1"] == pillow_record(mixed / "river" / "r1.jpg", three)
    assert got[b"r2"] == pillow_record(mixed / "river" / "r2.JPEG", three)
    assert got[b"r3"] == pillow_record(mixed / "river" / "r3.png", three)
    thirteen = [f"B{i}" for i in range(1, 14)]
    for n, ext in [(1, "tif"), (2, "tif"), (3, "TIFF")]:
        key = f"ROIs1158_spring_s2_{n}_p{n}"
        assert got[key.encode()] == file_record(mixed / "forest" / f"{key}.{ext}", thirteen)
    assert layout(got[b"ROIs1158_spring_s2_3_p3"])["B13"] == ("uint16", (17, 16))
    assert summary.records == 6
    table = read_table(tmp_path / "db" / "labels.csv")
    assert table[0] == [
        "key",
        "forest",
        "river",
    ]  # classes in order of first appearance (sorted paths)
    assert {r[0]: r[1:] for r in table[1:]} == {
        "ROIs1158_spring_s2_1_p1": ["1", "0"],
        "ROIs1158_spring_s2_2_p2": ["1", "0"],
        "ROIs1158_spring_s2_3_p3": ["1", "0"],
        "r1": ["0", "1"],
        "r2": ["0", "1"],
        "r3": ["0", "1"],
    }
    assert [r[0] for r in table[1:]] == sorted(r[0] for r in table[1:])


def test_band_names_must_fit_every_image(mixed, tmp_path):
    with pytest.raises(rico.DataError, match=r"expected 3 bands \(Red Green Blue\), found 13"):
        rico.convert(
            "image-folder", tmp_path / "db", dataset_dir=mixed, band_names="Red,Green,Blue"
        )
    with pytest.raises(rico.UsageError, match="--band-names"):
        rico.convert("image-folder", tmp_path / "db", dataset_dir=mixed, band_names="Red,,Blue")


def test_same_image_name_in_two_classes_names_both_files_and_key_parents_resolves_it(tmp_path):
    root = tmp_path / "src"
    rng = np.random.default_rng(1)
    for cls in ("forest", "river"):
        (root / "train" / cls).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
            root / "train" / cls / "img_1.png"
        )
    (root / "val" / "forest").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
        root / "val" / "forest" / "img_1.png"
    )
    with pytest.raises(rico.DataError, match='duplicate key "img_1"') as err:
        rico.convert("image-folder", tmp_path / "db", dataset_dir=root)
    message = str(err.value)
    assert (
        str(root / "train" / "forest" / "img_1.png") in message
        and str(root / "train" / "river" / "img_1.png") in message
    )
    assert "--key-parents" in message
    assert not (tmp_path / "db" / "data.mdb").exists()
    # One parent folder is not enough (train/forest and val/forest), two are.
    with pytest.raises(rico.DataError, match='duplicate key "forest/img_1"'):
        rico.convert("image-folder", tmp_path / "db", dataset_dir=root, key_parents=1)
    rico.convert("image-folder", tmp_path / "db", dataset_dir=root, key_parents=2)
    got = read_lmdb(tmp_path / "db")
    assert sorted(got) == [b"train/forest/img_1", b"train/river/img_1", b"val/forest/img_1"]
    assert got[b"val/forest/img_1"] == pillow_record(
        root / "val" / "forest" / "img_1.png", ["B1", "B2", "B3"]
    )
    table = read_table(tmp_path / "db" / "labels.csv")
    assert table == [
        ["key", "forest", "river"],
        ["train/forest/img_1", "1", "0"],
        ["train/river/img_1", "0", "1"],
        ["val/forest/img_1", "1", "0"],
    ]


def test_cli_takes_band_names_and_key_parents(rico_bin, mixed, tmp_path):
    res = run(
        rico_bin, "image-folder", "--dataset-dir", mixed, "--key-parents", 1,
        "--target-dir", tmp_path / "db",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert b"river/r1" in read_lmdb(tmp_path / "db") and "labels in" in res.stderr
    bad = run(
        rico_bin, "image-folder", "--dataset-dir", mixed, "--key-parents", "two",
        "--target-dir", tmp_path / "db2",
    )  # fmt: skip
    assert bad.returncode == 2 and "--key-parents" in bad.stderr
    assert not (tmp_path / "db2").exists()
    bad = run(
        rico_bin, "image-folder", "--dataset-dir", mixed, "--band-names", "R,G,B",
        "--target-dir", tmp_path / "db3",
    )  # fmt: skip
    assert bad.returncode == 1 and "expected 3 bands (R G B), found 13" in bad.stderr


def test_unknown_value_option_is_a_usage_error(mixed, tmp_path):
    with pytest.raises(rico.UsageError, match='image-folder has no value option "pattern"'):
        rico.convert("image-folder", tmp_path / "db", dataset_dir=mixed, pattern="x")
