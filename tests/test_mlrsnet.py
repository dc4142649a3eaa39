"""MLRSNet on a tree in the real layout (Images/<category>/<name>.jpg, labels/<category>.csv),
JPEGs written with Pillow: records equal to Pillow's decode, labels to labels.csv."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import rico
from PIL import Image
from support.cli import run
from support.expected_records import pillow_record
from support.lmdb_records import read_lmdb

# The 60 labels, spelled and ordered as in the real tables' header.
LABELS = [
    "airplane",
    "airport",
    "bare soil",
    "baseball diamond",
    "basketball court",
    "beach",
    "bridge",
    "buildings",
    "cars",
    "chaparral",
    "cloud",
    "containers",
    "crosswalk",
    "dense residential area",
    "desert",
    "dock",
    "factory",
    "field",
    "football field",
    "forest",
    "freeway",
    "golf course",
    "grass",
    "greenhouse",
    "gully",
    "habor",
    "intersection",
    "island",
    "lake",
    "mobile home",
    "mountain",
    "overpass",
    "park",
    "parking lot",
    "parkway",
    "pavement",
    "railway",
    "railway station",
    "river",
    "road",
    "roundabout",
    "runway",
    "sand",
    "sea",
    "ships",
    "snow",
    "snowberg",
    "sparse residential area",
    "stadium",
    "swimming pool",
    "tanks",
    "tennis court",
    "terrace",
    "track",
    "trail",
    "transmission tower",
    "trees",
    "water",
    "wetland",
    "wind turbine",
]
assert len(LABELS) == 60

# (image folder, table name): the real dataset misspells one table ("swimmimg_pool.csv").
CATEGORIES = [
    ("airplane", "airplane"),
    ("harbor&port", "harbor&port"),
    ("swimming_pool", "swimmimg_pool"),
]


def make_mlrsnet(root: Path, per_category: int = 3, seed: int = 0) -> dict[str, list[int]]:
    """Writes the tree; returns image key -> its 60 labels."""
    rng = np.random.default_rng(seed)
    labels: dict[str, list[int]] = {}
    (root / "labels").mkdir(parents=True)
    for folder, table in CATEGORIES:
        (root / "Images" / folder).mkdir(parents=True)
        rows = []
        for n in range(1, per_category + 1):
            name = f"{folder}_{n:05d}"
            pixels = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
            pixels[::2] //= 2  # some structure, so that chroma subsampling matters
            Image.fromarray(pixels).save(
                root / "Images" / folder / f"{name}.jpg", quality=int(rng.integers(60, 96))
            )
            row = [int(v) for v in rng.integers(0, 2, 60)]
            labels[name] = row
            rows.append([f"{name}.jpg", *row])
        with open(root / "labels" / f"{table}.csv", "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\r\n")
            writer.writerow(["image", *LABELS])
            writer.writerows(rows)
    (root / "Categories_names.xlsx").write_bytes(b"PK")  # shipped beside the images; not image data
    return labels


@pytest.fixture(scope="module")
def mlrsnet(tmp_path_factory) -> tuple[Path, dict[str, list[int]]]:
    root = tmp_path_factory.mktemp("MLRSNet")
    return root, make_mlrsnet(root)


def read_table(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_records_equal_pillow_and_keys_are_image_names(mlrsnet, tmp_path):
    root, labels = mlrsnet
    summary = rico.convert("mlrsnet", tmp_path / "db", dataset_dir=root)
    got = read_lmdb(tmp_path / "db")
    assert sorted(got) == sorted(k.encode() for k in labels)
    for image in sorted((root / "Images").rglob("*.jpg")):
        assert got[image.stem.encode()] == pillow_record(image, ["Red", "Green", "Blue"]), image
    assert summary.records == 9 and summary.labels_table == str(tmp_path / "db" / "labels.csv")


def test_labels_table_has_the_source_label_names_and_one_row_per_key(mlrsnet, tmp_path):
    root, labels = mlrsnet
    rico.convert("mlrsnet", tmp_path / "db", dataset_dir=root)
    rows = read_table(tmp_path / "db" / "labels.csv")
    assert rows[0] == ["key", *LABELS]
    assert [r[0] for r in rows[1:]] == sorted(labels)  # key order = the database's order
    for row in rows[1:]:
        assert [int(v) for v in row[1:]] == labels[row[0]]
    text = (tmp_path / "db" / "labels.csv").read_text()
    assert "\r" not in text and text.endswith("\n")


def test_labels_table_is_what_the_reader_takes(mlrsnet, tmp_path):
    root, labels = mlrsnet
    rico.convert("mlrsnet", tmp_path / "db", dataset_dir=root)
    keys = sorted(labels)[::-1]
    classes, multi_hot = rico.load_labels(tmp_path / "db" / "labels.csv", keys)
    assert classes == LABELS
    assert (multi_hot == np.array([labels[k] for k in keys], dtype=np.float32)).all()


def test_missing_labels_row_is_an_error_naming_image_and_tables(mlrsnet, tmp_path):
    root, _ = mlrsnet
    tree = tmp_path / "MLRSNet"
    shutil.copytree(root, tree)
    table = tree / "labels" / "airplane.csv"
    lines = table.read_text().splitlines(keepends=True)
    table.write_text("".join(line for line in lines if not line.startswith("airplane_00002.jpg")))
    with pytest.raises(rico.DataError, match=r'no labels row for "airplane_00002.jpg"') as err:
        rico.convert("mlrsnet", tmp_path / "db", dataset_dir=tree)
    assert str(tree / "Images" / "airplane" / "airplane_00002.jpg") in str(err.value)
    assert str(table) in str(err.value)
    assert not (tmp_path / "db" / "data.mdb").exists()


def test_tables_must_agree_and_be_present(mlrsnet, tmp_path):
    root, _ = mlrsnet
    tree = tmp_path / "MLRSNet"
    shutil.copytree(root, tree)
    table = tree / "labels" / "airplane.csv"
    table.write_text(table.read_text().replace("bare soil", "bare_soil", 1))
    with pytest.raises(rico.DataError, match="header differs"):
        rico.convert("mlrsnet", tmp_path / "db", dataset_dir=tree)
    shutil.rmtree(tree / "labels")
    with pytest.raises(rico.UsageError, match="no label table found"):
        rico.convert("mlrsnet", tmp_path / "db", dataset_dir=tree)
    assert not (tmp_path / "db" / "data.mdb").exists()


def test_skipped_images_have_no_labels_row_and_resume_rewrites_the_table(mlrsnet, tmp_path):
    root, labels = mlrsnet
    tree = tmp_path / "MLRSNet"
    shutil.copytree(root, tree)
    victim = tree / "Images" / "harbor&port" / "harbor&port_00001.jpg"
    victim.write_bytes(victim.read_bytes()[:2000])
    summary = rico.convert("mlrsnet", tmp_path / "db", dataset_dir=tree, skip_invalid=True)
    assert summary.skipped == 1 and summary.records == 8
    rows = read_table(tmp_path / "db" / "labels.csv")
    assert [r[0] for r in rows[1:]] == sorted(k for k in labels if k != "harbor&port_00001")
    again = rico.convert(
        "mlrsnet", tmp_path / "db", dataset_dir=tree, skip_invalid=True, resume=True
    )
    assert again.already_present == 8
    assert read_table(tmp_path / "db" / "labels.csv") == rows


def test_cli_converts_and_says_where_the_labels_are(rico_bin, mlrsnet, tmp_path):
    root, labels = mlrsnet
    res = run(rico_bin, "mlrsnet", "--dataset-dir", root, "--target-dir", tmp_path / "db")
    assert res.returncode == 0, res.stderr
    assert (
        "wrote 9 records" in res.stderr
        and f"labels in {tmp_path / 'db' / 'labels.csv'}" in res.stderr
    )
    assert len(read_table(tmp_path / "db" / "labels.csv")) == 1 + len(labels)
