"""Frameworks as users meet them: bilinear equal to torch's, record selection, the torch
surface (rico.torch.Loader, RicoDataset indices, lazy import), epochs, label classes, and the
README's reading examples run as written on a converted BigEarthNet-shaped database."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rico
from support.bands import S2_BANDS
from support.bigearthnet import convert
from support.lmdb_records import write_records
from support.trees import make_dataset

torch = pytest.importorskip("torch")
F = torch.nn.functional

ROOT = Path(__file__).resolve().parents[1]
REAL_S2 = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"
GENERATED = 24


@pytest.fixture(scope="module")
def ben_db(tmp_path_factory, samples) -> Path:
    """A converted BigEarthNet-shaped database: generated patches plus the real samples
    (S2, S1 and reference map), so that its first sorted keys are S1 records."""
    root = tmp_path_factory.mktemp("ben")
    tree = root / "tree"
    make_dataset(tree, GENERATED, workers=1)
    real = samples / "BigEarthNet"
    for part in ("BigEarthNet-S2", "BigEarthNet-S1", "Reference_Maps"):
        for tile in (real / part).iterdir():
            for patch in tile.iterdir():
                shutil.copytree(patch, tree / part / tile.name / patch.name)
    db = root / "BigEarthNet.lmdb"
    convert(tree, db, progress=False)
    return db


@pytest.fixture(scope="module")
def float_db(tmp_path_factory) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    """Random float32 bands of odd shapes, written as the reference tool writes records."""
    rng = np.random.default_rng(3)
    shapes = {"a": (60, 60), "b": (20, 20), "c": (120, 120), "d": (7, 9), "e": (61, 33)}
    records = {
        f"r{i}": {b: (rng.random(s) * 10000).astype(np.float32) for b, s in shapes.items()}
        for i in range(4)
    }
    path = tmp_path_factory.mktemp("float") / "db"
    write_records(path, records)
    return path, records


def ulps(a: np.ndarray, b: np.ndarray) -> int:
    """Largest distance in units in the last place between two float32 arrays (same signs)."""
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    assert ((a < 0) == (b < 0)).all()
    return int(np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64)).max())


def torch_bilinear(band: np.ndarray, size: int, align_corners: bool) -> np.ndarray:
    """ConfigILM's path: one band as a float32 (1, 1, H, W) tensor through F.interpolate."""
    t = torch.from_numpy(np.asarray(band, dtype=np.float32).copy())[None, None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=align_corners)[
        0, 0
    ].numpy()


RESAMPLE = {True: "bilinear", False: "bilinear-half-pixel"}


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("size", [120, 224, 100, 77, 40, 13])
def test_bilinear_equals_torch_on_real_bigearthnet_bands(ben_db, align_corners, size):
    ds = rico.open(ben_db)
    record = ds[REAL_S2]
    x = ds.batch([REAL_S2], S2_BANDS, size=size, resample=RESAMPLE[align_corners], threads=1)
    worst = max(
        ulps(x[0, c], torch_bilinear(record[b], size, align_corners))
        for c, b in enumerate(S2_BANDS)
    )
    assert worst <= 1, worst
    # The whole batch at once, as torch computes an (N, C, H, W) tensor, too.
    stacked = F.interpolate(
        torch.from_numpy(ds.batch([REAL_S2], ["B05", "B06", "B07", "B8A", "B11", "B12"])),
        size=(size, size),
        mode="bilinear",
        align_corners=align_corners,
    ).numpy()
    assert ulps(x[:, [4, 5, 6, 8, 10, 11]].copy(), stacked) <= 1


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("size", [120, 224, 100, 61, 50, 13])
def test_bilinear_equals_torch_on_random_float32(float_db, align_corners, size):
    path, records = float_db
    ds = rico.open(path)
    keys = sorted(records)
    bands = ["a", "b", "c", "d", "e"]
    x = ds.batch(keys, bands, size=size, resample=RESAMPLE[align_corners], threads=2)
    for n, key in enumerate(keys):
        for c, band in enumerate(bands):
            expected = torch_bilinear(records[key][band], size, align_corners)
            assert ulps(x[n, c], expected) <= 1, (key, band)
    one = ds.batch(keys, bands, size=size, resample=RESAMPLE[align_corners], threads=1)
    assert one.tobytes() == x.tobytes()


def test_bilinear_float64_and_normalisation_follow_torch(float_db):
    path, records = float_db
    ds = rico.open(path)
    key = sorted(records)[0]
    x = ds.batch([key], ["e"], size=120, resample="bilinear", dtype="float64")
    t = torch.from_numpy(records[key]["e"].astype(np.float64))[None, None]
    expected = F.interpolate(t, size=(120, 120), mode="bilinear", align_corners=True)[0, 0].numpy()
    np.testing.assert_array_max_ulp(x[0, 0], expected, maxulp=1)
    # Normalised after resampling, as ConfigILM does: (interpolate(x) - mean) / std.
    y = ds.batch([key], ["a"], size=120, resample="bilinear", mean=[100.0], std=[20.0])
    plain = torch_bilinear(records[key]["a"], 120, True).astype(np.float64)
    expected = ((plain - 100.0) * (1 / 20.0)).astype(np.float32)
    assert y[0, 0].tobytes() == expected.tobytes()


def test_nearest_refuses_uneven_factors_unless_asked(ben_db):
    ds = rico.open(ben_db)
    with pytest.raises(rico.UsageError, match='is not a whole factor.*"nearest-any"') as e:
        ds.batch([REAL_S2], ["B02", "B05"], size=100)
    assert REAL_S2 in str(e.value) and "B02" in str(e.value)
    x = ds.batch([REAL_S2], ["B02", "B05"], size=100, resample="nearest-any")
    for c, band in enumerate(["B02", "B05"]):
        a = ds[REAL_S2][band]
        idx = np.arange(100) * a.shape[0] // 100
        assert x[0, c].tobytes() == a[idx][:, idx].astype(np.float32).tobytes()
    # Whole factors both ways stay allowed: 120 -> 60 takes every other pixel.
    down = ds.batch([REAL_S2], ["B02"], size=60)
    assert down[0, 0].tobytes() == ds[REAL_S2]["B02"][::2, ::2].astype(np.float32).tobytes()


def test_keys_select_records_by_bands_and_prefix(ben_db):
    ds = rico.open(ben_db)
    every = ds.keys()
    assert every[0].startswith("S1"), "the first sorted keys are S1 records"
    expected = [k for k in every if {"B04", "B8A"} <= set(ds[k])]
    assert len(expected) == GENERATED + 1
    assert ds.keys(bands=["B04", "B8A"]) == expected
    assert ds.keys(bands=["VV"]) == [k for k in every if "VV" in ds[k]]
    assert ds.keys(bands="VV") == ds.keys(bands=["VV"])
    assert ds.keys(prefix="S1") == [k for k in every if k.startswith("S1")]
    assert ds.keys(prefix=b"S2", bands=["B02"]) == expected
    assert ds.keys(bands=["B02", "VV"]) == []
    assert ds.keys(bands=[]) == every


def test_loader_and_dataset_default_to_records_with_the_bands(ben_db):
    from rico.torch import RicoDataset

    ds = rico.open(ben_db)
    s2 = ds.keys(bands=["B04", "B03", "B02"])
    loader = rico.Loader(ds, bands=["B04", "B03", "B02"], size=120, batch_size=8, shuffle=False)
    assert loader.keys == s2
    batches = list(loader)
    assert sum(len(b) for b in batches) == len(s2)
    assert (
        np.concatenate(batches).tobytes() == ds.batch(s2, ["B04", "B03", "B02"], size=120).tobytes()
    )
    tds = RicoDataset(ben_db, bands=["VV", "VH"])
    assert tds.keys == ds.keys(bands=["VV", "VH"]) and len(tds) == GENERATED + 1


def readme_blocks(section: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_readme_reading_examples_run_as_written(ben_db, tmp_path, monkeypatch, capsys):
    blocks = readme_blocks("Reading")
    assert len(blocks) >= 2
    (tmp_path / "BigEarthNet.lmdb").symlink_to(ben_db)
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
    assert capsys.readouterr().out.strip(), "the examples print something"


def test_rico_torch_is_available_after_import_rico():
    import subprocess
    import sys

    code = "import rico, sys; assert 'rico.torch' not in sys.modules; print(rico.torch.Loader.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "Loader"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rico.nope  # noqa: B018


def test_torch_loader_yields_tensors_equal_to_batches(ben_db):
    ds = rico.open(ben_db)
    bands = ["B04", "B03", "B02"]
    loader = rico.torch.Loader(ben_db, bands=bands, size=120, batch_size=10, seed=5, threads=2)
    plain = rico.Loader(ds, bands=bands, size=120, batch_size=10, seed=5)
    got = list(loader)
    assert [tuple(t.shape) for t in got] == [(10, 3, 120, 120), (10, 3, 120, 120), (5, 3, 120, 120)]
    assert all(t.dtype == torch.float32 for t in got)
    for t, a in zip(got, plain):
        assert t.numpy().tobytes() == a.tobytes()
    got[0].sub_(1.0)  # the tensors own their memory: in-place is fine
    assert len(loader) == 3


def test_torch_loader_ranks_and_labels(ben_db):
    keys = rico.open(ben_db).keys(bands=["B02"])
    labels = {k: ["Forest"] if i % 2 else ["Urban", "Water"] for i, k in enumerate(keys)}
    classes = ["Water", "Forest", "Urban", "Arable"]
    seen = []
    for rank in range(3):
        loader = rico.torch.Loader(
            ben_db,
            bands=["B02"],
            batch_size=4,
            rank=rank,
            world_size=3,
            labels=labels,
            classes=classes,
        )
        assert loader.classes == classes
        for x, y in loader:
            assert x.shape[1:] == (1, 120, 120) and y.shape == (len(x), 4)
            for image, row in zip(x, y):
                key = next(
                    k for k in keys if np.array_equal(rico.open(ben_db)[k]["B02"], image[0].numpy())
                )
                seen.append(key)
                assert row.tolist() == [float(c in labels[key]) for c in classes]
    assert len(seen) == len(set(seen)) == len(keys) // 3 * 3


def test_torch_loader_takes_rank_from_torch_distributed(ben_db, tmp_path):
    import json
    import subprocess
    import sys

    world = 2
    init = f"file://{tmp_path / 'pg'}"
    worker = Path(__file__).with_name("rank_worker.py")
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), str(r), str(world), init, str(ben_db), str(tmp_path)]
        )
        for r in range(world)
    ]
    assert [p.wait(timeout=300) for p in procs] == [0] * world
    results = [json.loads((tmp_path / f"{r}.json").read_text()) for r in range(world)]
    n = len(rico.open(ben_db).keys(bands=["B02"]))
    assert [r[:2] for r in results] == [[0, 2], [1, 2]]
    parts = [set(r[2]) for r in results]
    assert not parts[0] & parts[1] and len(parts[0]) == len(parts[1]) == n // 2
    assert all(r[3] == -(-(n // 2) // 4) for r in results)
    # Without a process group: the whole dataset.
    assert rico.torch.Loader(ben_db, bands=["B02"]).loader.world_size == 1


def test_pin_memory_needs_cuda(ben_db):
    if torch.cuda.is_available():
        loader = rico.torch.Loader(ben_db, bands=["B02"], batch_size=4, pin_memory=True)
        batches = list(loader)
        assert all(b.is_pinned() for b in batches) and sum(len(b) for b in batches) == len(
            loader.keys
        )
    else:
        with pytest.raises(ValueError, match="CUDA"):
            rico.torch.Loader(ben_db, bands=["B02"], pin_memory=True)


def test_successive_iterations_advance_the_epoch_and_set_epoch_wins(ben_db):
    ds = rico.open(ben_db)

    def order(loader):
        return [k for b in loader for k in b.reshape(len(b), -1)[:, 0].tolist()]

    loader = rico.Loader(ds, bands=["B02"], batch_size=5, seed=1)
    first, second = order(loader), order(loader)
    assert first != second and sorted(first) == sorted(second)
    assert loader.epoch == 1
    loader.set_epoch(0)
    assert order(loader) == first
    again = rico.Loader(ds, bands=["B02"], batch_size=5, seed=1)
    again.set_epoch(1)
    assert order(again) == second


def test_dataset_accepts_numpy_torch_slices_and_index_arrays(ben_db):
    from rico.torch import RicoDataset
    from torch.utils.data import Subset

    tds = RicoDataset(ben_db, bands=["B02", "B05"], size=120)
    ds = rico.open(ben_db)
    whole = ds.batch(tds.keys, ["B02", "B05"], size=120)
    assert Subset(tds, np.arange(10))[0].numpy().tobytes() == whole[0].tobytes()
    for index in (3, np.int64(3), np.int32(3), torch.tensor(3), np.array(3), -len(tds) + 3):
        assert tds[index].numpy().tobytes() == whole[3].tobytes(), index
    for index, rows in [
        (slice(0, 4), [0, 1, 2, 3]),
        (slice(None, None, -7), list(range(len(tds)))[::-7]),
        (np.arange(2, 5), [2, 3, 4]),
        (torch.tensor([5, 1]), [5, 1]),
        ([0, -1], [0, len(tds) - 1]),
        (np.arange(len(tds)) % 10 == 0, list(range(0, len(tds), 10))),
    ]:
        assert tds[index].numpy().tobytes() == whole[rows].tobytes(), index
    with pytest.raises(IndexError, match="out of range"):
        tds[len(tds)]
    with pytest.raises(TypeError, match="integers, slices"):
        tds[np.array([0.5])]


def test_labels_mapping_with_fixed_classes(ben_db, tmp_path):
    ds = rico.open(ben_db)
    keys = ds.keys(bands=["B02"])[:3]
    labels = {k: ["Forest"] for k in keys}
    classes = [f"class {i}" for i in range(18)] + ["Forest"]
    loader = rico.Loader(
        ds, keys=keys, bands=["B02"], labels=labels, classes=classes, shuffle=False
    )
    _, y = next(iter(loader))
    assert loader.classes == classes and y.shape == (3, 19)
    assert (y[:, 18] == 1).all() and y[:, :18].sum() == 0
    with pytest.raises(ValueError, match="'Forest', which is not in classes"):
        rico.Loader(ds, keys=keys, bands=["B02"], labels=labels, classes=["Urban"])
    table = tmp_path / "labels.csv"
    table.write_text("key,Urban,Forest\n" + "".join(f"{k},0,1\n" for k in keys))
    names, y = rico.load_labels(table, keys, classes=["Forest", "Urban"])
    assert names == ["Forest", "Urban"] and y.tolist() == [[1.0, 0.0]] * 3


def test_as_tensor_gives_computable_private_tensors(ben_db):
    ds = rico.open(ben_db)
    view = ds[REAL_S2]["B02"]
    t = rico.torch.as_tensor(view)
    assert t.dtype == torch.int32 and t.numpy().tobytes() == view.astype(np.int32).tobytes()
    t.sub_(1000)  # private memory: the database's view is untouched
    assert (t.numpy() + 1000 == view).all()
    f = rico.torch.as_tensor(view, dtype=torch.float32)
    assert f.dtype == torch.float32 and f.numpy().tobytes() == view.astype(np.float32).tobytes()
    s1 = ds[ds.keys(bands=["VV"])[0]]["VV"]
    assert rico.torch.as_tensor(s1).dtype == torch.float32


def test_dataloader_batches_come_from_one_rust_batch(ben_db):
    from rico.torch import RicoDataset
    from torch.utils.data import DataLoader

    keys = rico.open(ben_db).keys(bands=["B02"])
    labels = {k: ["Forest"] if i % 3 else ["Urban"] for i, k in enumerate(keys)}
    tds = RicoDataset(ben_db, bands=["B02", "B01"], size=120, labels=labels)
    whole = rico.open(ben_db).batch(tds.keys, ["B02", "B01"], size=120)
    got = list(DataLoader(tds, batch_size=10, num_workers=0))
    assert [len(x) for x, _ in got] == [10, 10, 5]
    assert torch.cat([x for x, _ in got]).numpy().tobytes() == whole.tobytes()
    assert torch.cat([y for _, y in got]).numpy().tobytes() == tds.labels.tobytes()


def test_docstring_examples_of_the_torch_surface():
    import doctest

    import rico.loader
    import rico.torch

    for module in (rico.torch, rico.loader):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, module.__name__
