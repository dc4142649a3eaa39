"""rico.BigEarthNet on a 500-patch BigEarthNet v2-shaped database with a metadata.parquet of the
real schema: rows, images, labels and masks against rasterio and the table; normalisation,
statistics, the loader, torch, and the errors a user meets."""

from __future__ import annotations

import json
import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rasterio
import rico
from rico.bigearthnet import BAND_PRESETS, CLASSES, CLC_TO_CLASS, published_stats
from support.bands import S1_BANDS, S2_BANDS
from support.bigearthnet import S1_TILE, S2_TILE, convert
from support.cli import run
from support.lmdb_records import write_records
from support.trees import make_bigearthnet, map_path

BANDS = ["B04", "B03", "B02", "B08", "B05", "B11", "B01", "VV", "VH"]


@pytest.fixture(scope="session")
def ben_data(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(source tree, metadata.parquet, database) of 500 patches, built once per session."""
    root = tmp_path_factory.mktemp("bigearthnet")
    metadata = make_bigearthnet(root / "src", 500)
    db = root / "ben.lmdb"
    convert(root / "src", db, progress=False)
    return root / "src", metadata, db


def band_path(root: Path, key: str, band: str) -> Path:
    if band in S1_BANDS:
        return root / "BigEarthNet-S1" / S1_TILE / key / f"{key}_{band}.tif"
    return root / "BigEarthNet-S2" / S2_TILE / key / f"{key}_{band}.tif"


def rasterio_image(root: Path, patch_id: str, s1_name: str, bands: list[str]) -> np.ndarray:
    """The bands as rasterio reads them, upsampled to 120 by repetition, as float32."""
    planes = []
    for band in bands:
        with rasterio.open(band_path(root, s1_name if band in S1_BANDS else patch_id, band)) as src:
            a = src.read(1)
        f = 120 // a.shape[0]
        planes.append(a.repeat(f, 0).repeat(f, 1).astype(np.float32))
    return np.stack(planes)


def rasterio_mask(root: Path, patch_id: str) -> np.ndarray:
    with rasterio.open(map_path(root, patch_id)) as src:
        codes = src.read(1)
    out = np.full(codes.shape, 255, dtype=np.uint8)
    for code in np.unique(codes):
        if int(code) in CLC_TO_CLASS:
            out[codes == code] = CLC_TO_CLASS[int(code)]
    return out


def table_rows(metadata: Path, split: str) -> list[dict]:
    rows = pq.read_table(metadata).to_pylist()
    return [
        r
        for r in rows
        if r["split"] == split
        and not r["contains_seasonal_snow"]
        and not r["contains_cloud_or_shadow"]
    ]


def multi_hot(labels: list[str], classes) -> np.ndarray:
    out = np.zeros(len(classes), dtype=np.float32)
    for name in labels:
        out[list(classes).index(name)] = 1.0
    return out


@pytest.fixture(scope="session")
def ben_val(ben_data):
    _, metadata, db = ben_data
    return rico.BigEarthNet(
        db, metadata=metadata, split="validation", bands=BANDS, size=120, resample="nearest"
    )


# -- the Bar --------------------------------------------------------------------------------
def test_rows_are_the_validation_rows_without_snow_or_cloud_in_table_order(ben_data, ben_val):
    _, metadata, _ = ben_data
    expected = table_rows(metadata, "validation")
    all_val = [r for r in pq.read_table(metadata).to_pylist() if r["split"] == "validation"]
    assert len(expected) < len(all_val)  # the table does mark some validation rows
    assert ben_val.keys == [r["patch_id"] for r in expected]
    assert ben_val.s1_names == [r["s1_name"] for r in expected]
    assert len(ben_val) == len(expected)


def test_samples_equal_rasterio_labels_and_mapped_reference_maps(ben_data, ben_val):
    root, metadata, _ = ben_data
    rows = table_rows(metadata, "validation")
    ignored = 0
    for i, row in enumerate(rows):
        sample = ben_val[i]
        assert sample["key"] == row["patch_id"]
        image = sample["image"]
        assert image.dtype == np.float32 and image.shape == (len(BANDS), 120, 120)
        expected = rasterio_image(root, row["patch_id"], row["s1_name"], BANDS)
        assert image.tobytes() == expected.tobytes()
        assert sample["label"].dtype == np.float32
        assert sample["label"].tobytes() == multi_hot(row["labels"], CLASSES).tobytes()
        mask = sample["mask"]
        assert mask.dtype == np.uint8 and mask.shape == (120, 120)
        assert mask.tobytes() == rasterio_mask(root, row["patch_id"]).tobytes()
        ignored += int((mask == 255).sum())
    assert ignored > 0  # codes outside the nomenclature were met and ignored


def test_batch_and_loader_equal_the_samples(ben_val):
    n = len(ben_val)
    batch = ben_val.batch(range(n))
    for i in (0, n // 2, n - 1):
        s = ben_val[i]
        assert batch["image"][i].tobytes() == s["image"].tobytes()
        assert batch["mask"][i].tobytes() == s["mask"].tobytes()
        assert batch["label"][i].tobytes() == s["label"].tobytes()
    assert batch["key"] == ben_val.keys
    loader = ben_val.loader(batch_size=16, shuffle=True, seed=3)
    seen = {}
    for b in loader:
        assert b["image"].shape[1:] == (len(BANDS), 120, 120)
        for j, key in enumerate(b["key"]):
            seen[key] = (b["image"][j].tobytes(), b["label"][j].tobytes(), b["mask"][j].tobytes())
    assert sorted(seen) == sorted(ben_val.keys)
    order = [k for b in ben_val.loader(batch_size=16, shuffle=True, seed=3) for k in b["key"]]
    assert order == [ben_val.keys[i] for i in loader.indices()]
    for i, key in enumerate(ben_val.keys):
        assert seen[key] == (
            batch["image"][i].tobytes(),
            batch["label"][i].tobytes(),
            batch["mask"][i].tobytes(),
        )
    # two ranks: disjoint halves of equal size
    parts = [
        [k for b in ben_val.loader(batch_size=8, rank=r, world_size=2, seed=1) for k in b["key"]]
        for r in (0, 1)
    ]
    assert len(parts[0]) == len(parts[1]) == n // 2 and not set(parts[0]) & set(parts[1])


@pytest.mark.parametrize(
    "bands", [["B04", "B03", "VV", "VH"], ["VH", "B02"], ["VV", "B04", "VH", "B03"], ["B08"]]
)
def test_samples_and_batches_agree_in_any_channel_order(ben_data, bands):
    # A sample whose sensors are runs of channels is written in place; other orders and batches
    # are interleaved after reading: all equal rasterio's reads.
    root, metadata, db = ben_data
    ben = rico.BigEarthNet(db, metadata=metadata, split="validation", bands=bands, masks=False)
    rows = table_rows(metadata, "validation")
    batch = ben.batch(range(len(ben)))
    for i in (0, len(ben) // 2, len(ben) - 1):
        expected = rasterio_image(root, rows[i]["patch_id"], rows[i]["s1_name"], bands)
        assert ben[i]["image"].tobytes() == expected.tobytes()
        assert batch["image"][i].tobytes() == expected.tobytes()


@pytest.mark.parametrize("bands", [["VV", "B04", "VH", "B03"], ["VH", "B02"], ["B08"]])
def test_the_loader_writes_any_channel_order_as_batches_do(ben_data, bands):
    # The loader's prefetcher writes each run of one sensor's channels in place, whatever the
    # order of the sensors' bands: its batches equal ben.batch's, masks included.
    root, metadata, db = ben_data
    ben = rico.BigEarthNet(db, metadata=metadata, split="validation", bands=bands)
    expected = ben.batch(range(len(ben)))
    row = {key: i for i, key in enumerate(ben.keys)}
    seen = []
    for b in ben.loader(batch_size=5, shuffle=True, seed=1, keep=0):
        rows = [row[k] for k in b["key"]]
        assert b["image"].tobytes() == expected["image"][rows].tobytes()
        assert b["mask"].tobytes() == expected["mask"][rows].tobytes()
        seen += rows
    assert sorted(seen) == list(range(len(ben)))


def test_loader_takes_the_next_epoch_unless_one_is_set(ben_val):
    loader = ben_val.loader(batch_size=16, shuffle=True, seed=3)

    def epoch() -> list[str]:
        return [k for b in loader for k in b["key"]]

    first, second = epoch(), epoch()
    assert sorted(first) == sorted(second) == sorted(ben_val.keys)
    assert first != second and loader.epoch == 1
    loader.set_epoch(0)
    assert epoch() == first
    assert epoch() == second  # and on from there


def test_loader_reuses_a_ring_of_keep_plus_one_buffers(ben_val):
    expected = ben_val.batch(range(len(ben_val)))
    row = {key: i for i, key in enumerate(ben_val.keys)}
    for keep in (1, 2):
        loader = ben_val.loader(batch_size=8, shuffle=True, seed=5, keep=keep)
        batches = []
        for b in loader:
            batches.append(b)
            # The batch `keep` back is still intact after this one was written.
            for old in batches[-1 - keep :]:
                rows = [row[k] for k in old["key"]]
                assert old["image"].tobytes() == expected["image"][rows].tobytes()
                assert old["mask"].tobytes() == expected["mask"][rows].tobytes()
        # No fresh memory per batch: images come from a ring of keep + 1 + prefetch buffers
        # (the loader's own, filled ahead by Rust), masks from a ring of keep + 1; two epochs
        # reuse the same buffers.
        batches += [b for b in loader]
        assert len(batches) > 2 * (keep + 3)

        def address(a: np.ndarray) -> int:
            return a.__array_interface__["data"][0]

        images = {address(b["image"]) for b in batches}
        masks = {address(b["mask"]) for b in batches}
        assert len(images) <= keep + 1 + 2 and len(masks) == keep + 1
        for a, b in zip(batches, batches[1 : keep + 1]):
            assert not np.shares_memory(a["image"], b["image"])
    with pytest.raises(ValueError, match="keep"):
        ben_val.loader(keep=-1)


# -- options --------------------------------------------------------------------------------
def test_val_alias_presets_lexicographic_labels_and_snow_cloud(ben_data, ben_val):
    root, metadata, db = ben_data
    alias = rico.BigEarthNet(db, metadata=metadata, split="val", bands="RGB", masks=False)
    assert alias.keys == ben_val.keys and alias.bands == ["B04", "B03", "B02"]
    assert "mask" not in alias[0]
    assert BAND_PRESETS[12] == BAND_PRESETS[10] + ["VH", "VV"]
    lex = rico.BigEarthNet(
        db, metadata=metadata, split="val", bands="S1", label_order="lexicographic"
    )
    assert list(lex.classes) == sorted(CLASSES) and rico.BigEarthNet.classes == CLASSES
    rows = table_rows(metadata, "validation")
    assert lex[0]["label"].tobytes() == multi_hot(rows[0]["labels"], sorted(CLASSES)).tobytes()
    everything = rico.BigEarthNet(
        db, metadata=metadata, split="validation", bands="S1", include_snow_cloud=True
    )
    all_val = [
        r["patch_id"] for r in pq.read_table(metadata).to_pylist() if r["split"] == "validation"
    ]
    assert everything.keys == all_val


def test_bilinear_and_other_sizes(ben_data):
    root, metadata, db = ben_data
    ben = rico.BigEarthNet(db, metadata=metadata, split="test", bands=["B01", "VV"], size=60)
    row = table_rows(metadata, "test")[0]
    s = ben[0]
    with rasterio.open(band_path(root, row["patch_id"], "B01")) as src:
        b01 = src.read(1)
    assert s["image"][0].tobytes() == b01.repeat(3, 0).repeat(3, 1).astype(np.float32).tobytes()
    assert s["mask"].shape == (60, 60)
    assert s["mask"].tobytes() == rasterio_mask(root, row["patch_id"])[::2, ::2].tobytes()
    bil = rico.BigEarthNet(db, metadata=metadata, split="test", bands=["B02"], resample="bilinear")
    with rasterio.open(band_path(root, row["patch_id"], "B02")) as src:
        b02 = src.read(1).astype(np.float32)
    assert bil[0]["image"][0].tobytes() == b02.tobytes()  # already 120: no resampling


def test_normalize_presets_lists_and_stats_file(ben_data, tmp_path):
    root, metadata, db = ben_data
    raw = rico.BigEarthNet(db, metadata=metadata, split="val", bands=["B02", "VH"], masks=False)
    mean, std = published_stats(["B02", "VH"], 120, "nearest")
    assert (round(mean[0], 3), round(std[0], 3)) == (438.372, 607.027)
    pub = rico.BigEarthNet(
        db, metadata=metadata, split="val", bands=["B02", "VH"], normalize="bigearthnet-v2"
    )
    x, y = raw[0]["image"].astype(np.float64), pub[0]["image"]
    expected = ((x - np.array(mean)[:, None, None]) * (1 / np.array(std))[:, None, None]).astype(
        np.float32
    )
    np.testing.assert_array_max_ulp(y, expected, maxulp=1)
    listed = rico.BigEarthNet(
        db, metadata=metadata, split="val", bands=["B02", "VH"], normalize=(mean, std)
    )
    assert listed[0]["image"].tobytes() == y.tobytes()

    out = tmp_path / "stats.json"
    doc = rico.stats(db, bands=["B02", "B01", "VV"], metadata=metadata, split="train", out=out)
    assert json.loads(out.read_text()) == doc and doc["split"] == "train"
    train = table_rows(metadata, "train")
    for band in ("B02", "B01"):
        total, squares, count = 0, 0, 0
        for r in train:
            with rasterio.open(band_path(root, r["patch_id"], band)) as src:
                a = src.read(1).astype(np.int64)
            total, squares, count = (
                total + int(a.sum()),
                squares + int((a * a).sum()),
                count + a.size,
            )
        assert doc["bands"][band]["count"] == count
        assert doc["bands"][band]["mean"] == float(Fraction(total, count))  # exact
        var = Fraction(count * squares - total * total, count * count)
        np.testing.assert_array_max_ulp(doc["bands"][band]["std"], math.sqrt(var), maxulp=2)
    vv = np.concatenate(
        [rasterio_image(root, r["patch_id"], r["s1_name"], ["VV"]).ravel() for r in train]
    ).astype(np.float64)
    assert doc["bands"]["VV"]["count"] == vv.size
    assert math.isclose(doc["bands"]["VV"]["mean"], math.fsum(vv) / vv.size, rel_tol=1e-13)
    m = math.fsum(vv) / vv.size
    assert math.isclose(
        doc["bands"]["VV"]["std"], math.sqrt(math.fsum((vv - m) ** 2) / vv.size), rel_tol=1e-12
    )

    ben = rico.BigEarthNet(db, metadata=metadata, split="val", bands=["VV", "B02"], normalize=out)
    assert ben.mean == [doc["bands"]["VV"]["mean"], doc["bands"]["B02"]["mean"]]
    with pytest.raises(rico.UsageError, match="no statistics for band.*B03"):
        rico.BigEarthNet(db, metadata=metadata, split="val", bands=["B03"], normalize=out)
    with pytest.raises(
        rico.UsageError, match="no published BigEarthNet v2 statistics for size=224"
    ):
        rico.BigEarthNet(
            db, metadata=metadata, split="val", bands="RGB", size=224, normalize="bigearthnet-v2"
        )


def test_stats_cli(ben_data, rico_bin, tmp_path):
    _, metadata, db = ben_data
    train = table_rows(metadata, "train")
    keys = tmp_path / "keys.txt"
    keys.write_text("".join(r["patch_id"] + "\n" for r in train))
    out = tmp_path / "cli.json"
    res = run(rico_bin, "stats", db, "--bands", "B02", "B01", "--keys", keys, "--out", out)
    assert res.returncode == 0, res.stderr
    doc = rico.stats(
        db, bands=["B02", "B01"], metadata=metadata, split="train", out=tmp_path / "py.json"
    )
    cli = json.loads(out.read_text())
    assert cli["bands"] == doc["bands"]
    res = run(rico_bin, "stats", db, "--bands", "B02", "--metadata", metadata)
    assert res.returncode == 2 and "python -m rico stats" in res.stderr
    res = run(
        sys.executable, "-m", "rico", "stats", db, "--bands", "B02", "B01", "--metadata", metadata,
        "--split", "train", "--out", tmp_path / "m.json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "m.json").read_text())["bands"] == doc["bands"]


def test_torch_dataset_in_a_dataloader(ben_data, ben_val):
    import rico.torch
    import torch
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    _, metadata, db = ben_data
    ds = rico.torch.BigEarthNet(db, metadata=metadata, split="val", bands=BANDS)
    sample = ds[1]
    assert sample["image"].dtype == torch.float32 and sample["mask"].dtype == torch.int64
    assert sample["image"].numpy().tobytes() == ben_val[1]["image"].tobytes()
    expected = ben_val.batch(range(len(ben_val)))
    got = list(DataLoader(ds, batch_size=10, num_workers=2))
    assert torch.cat([b["image"] for b in got]).numpy().tobytes() == expected["image"].tobytes()
    assert (
        torch.cat([b["mask"] for b in got]).numpy().astype(np.uint8).tobytes()
        == expected["mask"].tobytes()
    )
    sampler = BatchSampler(SequentialSampler(ds), batch_size=10, drop_last=False)
    whole = list(DataLoader(ds, sampler=sampler, batch_size=None, num_workers=0))
    assert torch.cat([b["label"] for b in whole]).numpy().tobytes() == expected["label"].tobytes()


def test_works_on_a_database_written_record_by_record(ben_data, ben_val, tmp_path):
    """Records as rico-hdl writes them (py-lmdb + safetensors.numpy.save of rasterio's reads,
    the same keys) read the same."""
    root, metadata, _ = ben_data
    rows = table_rows(metadata, "validation")[:20]
    db = tmp_path / "hdl.lmdb"
    records = {}
    for r in rows:
        s2 = {}
        for band in S2_BANDS:
            with rasterio.open(band_path(root, r["patch_id"], band)) as src:
                s2[band] = src.read(1)
        records[r["patch_id"]] = s2
        s1 = {}
        for band in S1_BANDS:
            with rasterio.open(band_path(root, r["s1_name"], band)) as src:
                s1[band] = src.read(1)
        records[r["s1_name"]] = s1
        with rasterio.open(map_path(root, r["patch_id"])) as src:
            records[r["patch_id"] + "_reference_map"] = {"Data": src.read(1)}
    write_records(db, records)
    small = pa.Table.from_pylist(rows)
    pq.write_table(small, tmp_path / "metadata.parquet")
    ben = rico.BigEarthNet(db, metadata=tmp_path / "metadata.parquet", split="val", bands=BANDS)
    assert ben.keys == [r["patch_id"] for r in rows]
    for i in range(len(rows)):
        s, t = ben[i], ben_val[i]
        assert s["image"].tobytes() == t["image"].tobytes()
        assert s["mask"].tobytes() == t["mask"].tobytes()


# -- errors ---------------------------------------------------------------------------------
def write_table(path: Path, rows: list[dict], drop: tuple[str, ...] = ()) -> Path:
    pq.write_table(
        pa.Table.from_pylist([{k: v for k, v in r.items() if k not in drop} for r in rows]), path
    )
    return path


def test_errors_name_what_is_wrong(ben_data, tmp_path):
    _, metadata, db = ben_data
    rows = pq.read_table(metadata).to_pylist()
    no_s1 = write_table(tmp_path / "no_s1.parquet", rows, drop=("s1_name",))
    with pytest.raises(rico.UsageError, match=r"no_s1.parquet has no column 's1_name'"):
        rico.BigEarthNet(db, metadata=no_s1, split="train", bands="ALL")
    assert len(rico.BigEarthNet(db, metadata=no_s1, split="train", bands="S2")) > 0  # not needed

    ghost = dict(rows[0], patch_id="S2A_MSIL2A_20990101T000000_N9999_R000_T00XXX_1_1", split="test",
                 contains_seasonal_snow=False, contains_cloud_or_shadow=False)  # fmt: skip
    with_ghost = write_table(tmp_path / "ghost.parquet", rows + [ghost])
    with pytest.raises(
        rico.UsageError,
        match=r"patch_id 'S2A_MSIL2A_20990101T000000.*' is not in the database .*ben.lmdb.*on_missing='drop'",
    ):
        rico.BigEarthNet(db, metadata=with_ghost, split="test", bands="S2")
    dropped = rico.BigEarthNet(db, metadata=with_ghost, split="test", bands="S2", on_missing="drop")
    assert dropped.dropped == [ghost["patch_id"]]
    assert dropped.keys == [r["patch_id"] for r in table_rows(metadata, "test")]

    bad_label = write_table(
        tmp_path / "label.parquet", [dict(rows[0], labels=["Urban fabric", "Moon dust"])]
    )
    with pytest.raises(
        rico.UsageError, match=r"unknown label 'Moon dust' \(patch S2A_.*\) in .*label.parquet"
    ):
        rico.BigEarthNet(db, metadata=bad_label, split=None, bands="S2")

    only_train = write_table(tmp_path / "train.parquet", [dict(r, split="train") for r in rows])
    with pytest.raises(
        rico.UsageError,
        match="split 'test' selects no row of .*train.parquet; its splits are train",
    ):
        rico.BigEarthNet(db, metadata=only_train, split="test", bands="S2")
    with pytest.raises(rico.UsageError, match="unknown split 'valid'"):
        rico.BigEarthNet(db, metadata=metadata, split="valid")
    with pytest.raises(rico.UsageError, match="unknown BigEarthNet band.*B10"):
        rico.BigEarthNet(db, metadata=metadata, bands=["B10"])


def test_missing_pyarrow_says_how_to_install(ben_data, monkeypatch):
    _, metadata, db = ben_data
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"pip install 'rico-eo\[bigearthnet\]'"):
        rico.BigEarthNet(db, metadata=metadata, split="train", bands="S2")


def test_stats_after_resampling_equal_the_batches_statistics(ben_data, tmp_path):
    _, metadata, db = ben_data
    bands = ["B01", "B05", "VH"]
    ben = rico.BigEarthNet(db, metadata=metadata, split="test", bands=bands, resample="bilinear")
    doc = rico.stats(
        db, bands=bands, metadata=metadata, split="test", size=120, resample="bilinear",
        out=tmp_path / "bilinear.json",
    )  # fmt: skip
    assert (doc["size"], doc["resample"]) == (120, "bilinear")
    for band in bands:
        keys = ben.s1_names if band == "VH" else ben.keys
        values = ben.dataset.batch(
            keys, [band], size=120, resample="bilinear", dtype="float64"
        ).ravel()
        got = doc["bands"][band]
        assert got["count"] == values.size and got["records"] == len(ben)
        m = math.fsum(values) / values.size
        assert math.isclose(got["mean"], m, rel_tol=1e-12)
        assert math.isclose(
            got["std"], math.sqrt(math.fsum((values - m) ** 2) / values.size), rel_tol=1e-9
        )
    # Nearest upsampling by whole factors repeats every pixel equally: the stored values' figures.
    nearest = rico.stats(
        db, bands=["B01"], metadata=metadata, split="test", size=120, out=tmp_path / "n.json"
    )
    stored = rico.stats(db, bands=["B01"], metadata=metadata, split="test", out=tmp_path / "s.json")
    assert nearest["bands"]["B01"]["count"] == 36 * stored["bands"]["B01"]["count"]
    assert math.isclose(
        nearest["bands"]["B01"]["mean"], stored["bands"]["B01"]["mean"], rel_tol=1e-14
    )
    assert math.isclose(
        nearest["bands"]["B01"]["std"], stored["bands"]["B01"]["std"], rel_tol=1e-12
    )
