"""The reader: zero-copy views, header validation, batches, the Loader, frameworks, info."""

from __future__ import annotations

import gc
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import rico
from safetensors.numpy import load
from support.bands import S2_SIDES
from support.cli import run
from support.lmdb_records import write_records
from support.trees import make_dataset


def s2_record(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {b: rng.integers(0, 12000, (s, s), dtype=np.uint16) for b, s in S2_SIDES.items()}


@pytest.fixture(scope="module")
def s2_db(tmp_path_factory) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    rng = np.random.default_rng(7)
    records = {
        f"S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_{i}_{j}": s2_record(rng)
        for i in range(5)
        for j in range(4)
    }
    path = tmp_path_factory.mktemp("s2") / "db"
    write_records(path, records)
    return path, records


def test_mapping_protocol(s2_db):
    path, records = s2_db
    with rico.open(path) as ds:
        assert len(ds) == 20
        assert ds.keys() == sorted(records)
        assert list(ds) == sorted(records)
        first = sorted(records)[0]
        assert first in ds and first.encode() in ds
        assert "nope" not in ds and 3 not in ds
        with pytest.raises(KeyError, match="nope"):
            ds["nope"]
    with pytest.raises(ValueError, match="closed"):
        len(ds)


def test_records_are_read_only_zero_copy_views_equal_to_safetensors_load(s2_db):
    path, records = s2_db
    ds = rico.open(path)
    key = sorted(records)[3]
    got = ds[key]
    want = load(ds.raw(key))
    assert sorted(got) == sorted(want) == sorted(S2_SIDES)
    for band, array in got.items():
        assert array.dtype == want[band].dtype and array.shape == want[band].shape
        assert array.tobytes() == want[band].tobytes() == records[key][band].tobytes()
        assert not array.flags.writeable and not array.flags.owndata
        with pytest.raises(ValueError):
            array[0, 0] = 1
    # No copy: each record is a private copy-on-write mapping of the file's pages (two reads
    # share the page cache; a write made through torch stays in its own record's pages).
    again = ds[key]
    for b in got:
        assert got[b].base is not None and got[b].base.mapped
        assert got[b].base is not again[b].base


def test_views_outlive_close_and_del(s2_db):
    path, records = s2_db
    key = sorted(records)[0]
    ds = rico.open(path)
    views = ds[key]
    ds.close()
    del ds
    gc.collect()
    # Other environments of the process come and go meanwhile.
    for _ in range(3):
        with rico.open(path) as other:
            other[key]
    gc.collect()
    for band, array in views.items():
        assert array.tobytes() == records[key][band].tobytes()
    # The views, not luck with addresses, keep the map: it is still mapped while they live,
    # and unmapped once they are gone.
    assert _mapped(path)
    del views, array
    gc.collect()
    assert not _mapped(path)


def _mapped(path: Path) -> bool:
    data = str((path / "data.mdb").resolve())
    return any(line.rstrip().endswith(data) for line in open("/proc/self/maps"))


def test_reference_tool_database_and_bytes_keys(s2_db):
    path, records = s2_db
    ds = rico.open(path)
    key = sorted(records)[1]
    assert ds[key.encode()]["B8A"].tobytes() == records[key]["B8A"].tobytes()


def _value(header: str, data: bytes) -> bytes:
    h = header.encode()
    return struct.pack("<Q", len(h)) + h + data


@pytest.mark.parametrize(
    "value",
    [
        _value('{"a":{"dtype":"U16","shape":[2,2],"data_offsets":[0,800]}}', b"\0" * 8),
        _value('{"a":{"dtype":"U16","shape":[4,4],"data_offsets":[0,8]}}', b"\0" * 8),
        _value(
            '{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}',
            b"\0" * 6,
        ),
        _value('{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}', b"\0"),
        _value('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}', b"\0"),  # broken JSON
        struct.pack("<Q", 1 << 62) + b"{}",
        b"\x01\x02",
        b"",
    ],
    ids=[
        "past-end",
        "size-mismatch",
        "overlap",
        "unknown-dtype",
        "bad-json",
        "huge-header",
        "short",
        "empty",
    ],
)
def test_corrupt_values_raise_a_clear_error_naming_the_key(tmp_path, value):
    write_records(tmp_path / "db", {b"patch_42": value})
    ds = rico.open(tmp_path / "db")
    with pytest.raises(rico.DataError, match="patch_42"):
        ds["patch_42"]
    with pytest.raises(rico.DataError, match="patch_42"):
        ds.batch(["patch_42"], ["a"])


def test_nearest_batch_equals_numpy_repeat_and_configilm_path(s2_db):
    path, records = s2_db
    ds = rico.open(path)
    keys = sorted(records)[:6]
    bands = list(S2_SIDES)
    x = ds.batch(keys, bands, size=120)
    assert x.shape == (6, 12, 120, 120) and x.dtype == np.float32
    for n, key in enumerate(keys):
        for c, band in enumerate(bands):
            a = records[key][band]
            f = 120 // a.shape[0]
            expected = a.repeat(f, 0).repeat(f, 1).astype(np.float32)
            assert x[n, c].tobytes() == expected.tobytes(), (key, band)
    one = ds.batch(keys, bands, size=120, threads=1)
    assert one.tobytes() == x.tobytes()
    wide = ds.batch(keys[:2], ["B02"], dtype="float64")
    assert (
        wide.dtype == np.float64
        and wide[1, 0].tobytes() == records[keys[1]]["B02"].astype(np.float64).tobytes()
    )


def bilinear_align_corners(a: np.ndarray, out: int) -> np.ndarray:
    """torch.nn.functional.interpolate(mode="bilinear", align_corners=True), in numpy (float64)."""
    h, w = a.shape
    a = a.astype(np.float64)

    def axis(n_in):
        scale = (n_in - 1) / (out - 1) if out > 1 else 0.0
        src = scale * np.arange(out)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    y0, y1, wy = axis(h)
    x0, x1, wx = axis(w)
    top = a[y0][:, x0] * (1 - wx) + a[y0][:, x1] * wx
    bottom = a[y1][:, x0] * (1 - wx) + a[y1][:, x1] * wx
    return top * (1 - wy)[:, None] + bottom * wy[:, None]


def test_bilinear_batch_matches_align_corners_formula(s2_db):
    path, records = s2_db
    ds = rico.open(path)
    keys = sorted(records)[:3]
    x = ds.batch(keys, ["B01", "B05", "B02"], size=120, resample="bilinear", dtype="float64")
    for n, key in enumerate(keys):
        for c, band in enumerate(["B01", "B05", "B02"]):
            expected = bilinear_align_corners(records[key][band], 120)
            np.testing.assert_allclose(x[n, c], expected, rtol=1e-5, atol=1e-5)
    x32 = ds.batch(keys, ["B01"], size=77, resample="bilinear")
    np.testing.assert_allclose(
        x32[0, 0], bilinear_align_corners(records[keys[0]]["B01"], 77), rtol=1e-5
    )


def test_normalisation_in_the_same_pass(s2_db):
    path, records = s2_db
    ds = rico.open(path)
    key = sorted(records)[0]
    mean, std = [1000.0, 2000.0], [10.0, 500.0]
    x = ds.batch([key], ["B02", "B03"], mean=mean, std=std, dtype="float64")
    for c, band in enumerate(["B02", "B03"]):
        expected = (records[key][band].astype(np.float64) - mean[c]) / std[c]
        np.testing.assert_allclose(x[0, c], expected, rtol=1e-12)


def test_batch_errors_are_clear(s2_db):
    path, records = s2_db
    ds = rico.open(path)
    key = sorted(records)[0]
    with pytest.raises(rico.UsageError, match="pass size="):
        ds.batch([key], ["B02", "B01"])
    with pytest.raises(rico.UsageError, match='no band "B10"'):
        ds.batch([key], ["B10"])
    with pytest.raises(rico.UsageError, match="no record with key"):
        ds.batch(["missing"], ["B02"])
    with pytest.raises(rico.UsageError, match="one per band"):
        ds.batch([key], ["B02"], mean=[1.0, 2.0])
    with pytest.raises(rico.UsageError, match="resample"):
        ds.batch([key], ["B02"], size=10, resample="cubic")


def test_loader_order_is_seeded_and_ranks_are_disjoint_equal_parts(s2_db):
    path, records = s2_db
    ds = rico.open(path)

    def keys_of(loader):
        return [loader.keys[i] for i in loader.indices()]

    a = rico.Loader(ds, bands=["B02"], batch_size=4, seed=3)
    b = rico.Loader(ds, bands=["B02"], batch_size=4, seed=3)
    assert keys_of(a) == keys_of(b)
    b.set_epoch(1)
    assert keys_of(a) != keys_of(b) and sorted(keys_of(b)) == sorted(records)
    parts = [
        keys_of(rico.Loader(ds, bands=["B02"], world_size=3, rank=r, seed=5)) for r in range(3)
    ]
    assert all(len(p) == 20 // 3 for p in parts)
    assert len(set().union(*map(set, parts))) == 3 * (20 // 3)
    # Batches carry the records in that order.
    batches = list(rico.Loader(ds, bands=["B02", "B03"], batch_size=8, seed=3))
    assert [len(x) for x in batches] == [8, 8, 4]
    order = keys_of(a)
    for i, x in enumerate(np.concatenate(batches)):
        assert x[0].tobytes() == records[order[i]]["B02"].astype(np.float32).tobytes()
    assert len(rico.Loader(ds, bands=["B02"], batch_size=8, drop_last=True)) == 2
    assert [len(x) for x in rico.Loader(ds, bands=["B02"], batch_size=8, drop_last=True)] == [8, 8]


def test_loader_labels_from_mapping_and_csv(s2_db, tmp_path):
    path, records = s2_db
    ds = rico.open(path)
    keys = sorted(records)
    mapping = {k: (["Forest"] if i % 2 else ["Urban", "Water"]) for i, k in enumerate(keys)}
    loader = rico.Loader(ds, bands=["B02"], batch_size=5, shuffle=False, labels=mapping)
    assert loader.classes == ["Forest", "Urban", "Water"]
    x, y = next(iter(loader))
    assert y.tolist()[:2] == [[0, 1, 1], [1, 0, 0]] and x.shape == (5, 1, 120, 120)
    table = tmp_path / "labels.csv"
    table.write_text(
        "key,Water,Forest\n" + "".join(f"{k},{i % 2},{1 - i % 2}\n" for i, k in enumerate(keys))
    )
    loader = rico.Loader(ds, bands=["B02"], batch_size=4, shuffle=False, labels=table)
    assert loader.classes == ["Water", "Forest"]
    _, y = next(iter(loader))
    assert y.tolist() == [[0, 1], [1, 0], [0, 1], [1, 0]]
    with pytest.raises(KeyError, match=keys[0]):
        rico.Loader(ds, bands=["B02"], labels={keys[1]: ["Forest"]})


def test_numpy_dlpack_and_torch_take_views_without_copy(s2_db):
    path, records = s2_db
    ds = rico.open(path)
    key = sorted(records)[0]
    view = ds[key]["B02"]
    x = ds.batch([key], ["B02"])
    assert np.from_dlpack(x).__array_interface__["data"][0] == x.__array_interface__["data"][0]
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(x)
    assert t.data_ptr() == x.__array_interface__["data"][0]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that the view is read-only
        tv = torch.from_numpy(view)
    assert tv.data_ptr() == view.__array_interface__["data"][0]


def test_info_python_and_cli(s2_db, rico_bin):
    path, _ = s2_db
    info = rico.info(path)
    assert info["records"] == 20 and not info["sharded"]
    assert info["bands"]["B01"] == {"dtype": "uint16", "shapes": [(20, 20)]}
    assert info["bands"]["B05"]["shapes"] == [(60, 60)] and len(info["bands"]) == 12
    res = run(rico_bin, "info", path)
    assert res.returncode == 0, res.stderr
    assert (
        "records: 20" in res.stdout
        and "B8A" in res.stdout
        and "60x60" in res.stdout
        and "sharded: no" in res.stdout
    )
    res = run(sys.executable, "-m", "rico", "info", path)
    assert res.returncode == 0 and "records: 20" in res.stdout
    res = run(rico_bin, "info", path.parent / "nope")
    assert res.returncode == 2 and "nope" in res.stderr


def test_torch_dataset_in_dataloader_workers(s2_db):
    torch = pytest.importorskip("torch")
    from rico.torch import RicoDataset
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    path, records = s2_db
    keys = sorted(records)
    tds = RicoDataset(path, bands=["B02", "B05"], size=120)
    xs = torch.cat(list(DataLoader(tds, batch_size=4, num_workers=2)))
    assert xs.shape == (20, 2, 120, 120)
    assert (
        xs[3, 1].numpy().tobytes()
        == records[keys[3]]["B05"].repeat(2, 0).repeat(2, 1).astype(np.float32).tobytes()
    )
    sampler = BatchSampler(SequentialSampler(tds), batch_size=8, drop_last=False)
    batches = list(DataLoader(tds, sampler=sampler, batch_size=None, num_workers=2))
    assert [len(b) for b in batches] == [8, 8, 4]
    assert torch.equal(torch.cat(batches), xs)


def test_views_survive_a_writer_growing_the_map_and_a_reopen(rico_bin, tmp_path):
    """A writer in another process grows the map past this process's mapping; reopening must
    not remap memory under views handed out before."""
    make_dataset(tmp_path / "src", patches=460)
    s2 = tmp_path / "src" / "BigEarthNet-S2"
    few = tmp_path / "few"
    for patch in sorted(p for p in s2.glob("*/*") if p.is_dir())[:4]:
        dest = few / patch.parent.name / patch.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        patch.rename(dest)
    target = tmp_path / "db"
    made = run(rico_bin, "bigearthnet", "--bigearthnet-s2-dir", few, "--target-dir", target)
    assert made.returncode == 0, made.stderr
    first = rico.open(target)
    key = first.keys()[0]
    view = first[key]["B02"]
    before = view.tobytes()
    for patch in sorted(p for p in few.glob("*/*") if p.is_dir()):
        patch.rename(s2 / patch.parent.name / patch.name)
    grown = run(
        rico_bin, "bigearthnet", "--bigearthnet-s2-dir", s2, "--target-dir", target, "--resume"
    )
    assert grown.returncode == 0, grown.stderr
    assert (target / "data.mdb").stat().st_size > 64 << 20  # past the first mapping
    second = rico.open(target)
    assert len(second) == 460 and len(first) == 4  # the old snapshot stays as it was
    assert view.tobytes() == before
    assert second[key]["B02"].tobytes() == before
    first.close()
    gc.collect()
    assert view.tobytes() == before
