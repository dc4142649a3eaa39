"""rico.torchgeo against the real TorchGeo: BigEarthNetV2's rows and samples equal TorchGeo's
BigEarthNetV2 on the same tree, tensor for tensor (keys, dtypes, shapes, bytes), for every
split and each of s1, s2, all; transforms and plot as TorchGeo's; the DataModule's batches, and
TorchGeo's MultiLabelClassificationTask fitting on them."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rasterio
import torch

torchgeo = pytest.importorskip("torchgeo")

from rico.torchgeo import BigEarthNetV2, BigEarthNetV2DataModule  # noqa: E402
from support.bigearthnet import S1_TILE, S2_TILE  # noqa: E402
from support.trees import CLC_NAMES, make_bigearthnet, map_path  # noqa: E402
from torchgeo.datasets import BigEarthNetV2 as TorchGeoBigEarthNetV2  # noqa: E402

SAMPLES = Path(__file__).parent / "data" / "samples" / "BigEarthNet"
REAL_S2 = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"
REAL_S1 = "S1A_IW_GRDH_1SDV_20170613T165043_33UUP_70_48"
REAL_MAP = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57"


def add_nodata(path: Path, rows: slice, cols: slice) -> None:
    """Writes nodata (0) into a block of a band, the rest of the file as it was."""
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read(1)
    data[rows, cols] = 0
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A BigEarthNet v2 tree of 36 generated patches (S2 bands with blocks of nodata) and the
    real sample patches (their S2 patch paired with the real S1 patch, the real reference map
    under its name), with a metadata.parquet of the real schema. No database: the first
    dataset converts it."""
    root = tmp_path_factory.mktemp("torchgeo") / "data"
    metadata = make_bigearthnet(root, 36)
    for i, s2 in enumerate(sorted((root / "BigEarthNet-S2" / S2_TILE).iterdir())[:6]):
        add_nodata(s2 / f"{s2.name}_B01.tif", slice(0, 3 + i), slice(2, 9))
        add_nodata(s2 / f"{s2.name}_B05.tif", slice(10, 30), slice(0, 1 + i))
        add_nodata(s2 / f"{s2.name}_B8A.tif", slice(59, 60), slice(0, 60))
    shutil.copytree(
        SAMPLES / "BigEarthNet-S2" / S2_TILE / REAL_S2, root / "BigEarthNet-S2" / S2_TILE / REAL_S2
    )
    shutil.copytree(
        SAMPLES / "BigEarthNet-S1" / S1_TILE / REAL_S1, root / "BigEarthNet-S1" / S1_TILE / REAL_S1
    )
    real_map = map_path(root, REAL_S2)
    real_map.parent.mkdir(parents=True)
    shutil.copy(
        SAMPLES / "Reference_Maps" / S2_TILE / REAL_MAP / f"{REAL_MAP}_reference_map.tif", real_map
    )
    with rasterio.open(real_map) as src:
        codes = np.unique(src.read(1))
    rows = pq.read_table(metadata).to_pylist()
    rows.insert(len(rows) // 2, {  # the real patch, in the validation split
        **rows[0], "patch_id": REAL_S2, "s1_name": REAL_S1, "split": "validation",
        "labels": sorted({CLC_NAMES[int(c)] for c in codes if int(c) in CLC_NAMES}),
    })  # fmt: skip
    pq.write_table(pa.Table.from_pylist(rows), metadata)
    return root


def assert_same(ours: dict, theirs: dict, where: str) -> None:
    assert sorted(ours) == sorted(theirs), where
    for k in theirs:
        a, b = ours[k], theirs[k]
        assert isinstance(a, torch.Tensor), (where, k)
        assert (a.dtype, a.shape) == (b.dtype, b.shape), (
            where,
            k,
            a.dtype,
            a.shape,
            b.dtype,
            b.shape,
        )
        if a.numpy().tobytes() != b.numpy().tobytes():
            diff = (
                a.reshape(-1).numpy().view(np.uint8) != b.reshape(-1).numpy().view(np.uint8)
            ).nonzero()[0]
            assert len(diff), (where, k)
            at = int(diff[0]) // a.element_size()
            raise AssertionError(
                f"{where} {k}: {len(diff)} bytes differ, first in value {at}: {a.reshape(-1)[at]!r} != {b.reshape(-1)[at]!r}"
            )


@pytest.fixture(scope="module")
def converted(root) -> Path:
    """The database the first BigEarthNetV2 converts from the folders under root."""
    ds = BigEarthNetV2(root=root, split="train", bands="s2")
    assert Path(ds.database) == root / "BigEarthNet.lmdb"
    assert (root / "BigEarthNet.lmdb" / "data.mdb").exists()
    return root / "BigEarthNet.lmdb"


@pytest.mark.parametrize("bands", ["s1", "s2", "all"])
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_samples_equal_torchgeo(root, converted, split, bands):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = TorchGeoBigEarthNetV2(root=root, split=split, bands=bands)
    ours = BigEarthNetV2(root=root, split=split, bands=bands)
    assert isinstance(ours, torchgeo.datasets.NonGeoDataset)
    assert len(ours) == len(theirs) > 0
    for i in range(len(theirs)):
        assert_same(ours[i], theirs[i], f"{split}/{bands}[{i}]")
    assert_same(ours[-1], theirs[len(theirs) - 1], f"{split}/{bands}[-1]")
    with pytest.raises(IndexError):
        ours[len(ours)]


def test_the_real_patch_and_nodata_blocks_are_among_the_rows(root, converted):
    ours = BigEarthNetV2(root=root, split="val", bands="all")
    assert REAL_S2 in ours._ben.keys
    # The generated patches with nodata blocks: zeros in their 20 m / 60 m sources.
    with rasterio.open(next((root / "BigEarthNet-S2").rglob("*_B01.tif"))) as src:
        assert src.nodata == 0


def test_transforms_apply_to_the_sample_as_torchgeo_does(root, converted):
    def transform(sample):
        return {**sample, "image": sample["image"] * 2, "seen": torch.tensor(1)}

    ours = BigEarthNetV2(root=root, split="train", bands="s2", transforms=transform)
    theirs = TorchGeoBigEarthNetV2(root=root, split="train", bands="s2", transforms=transform)
    assert_same(ours[3], theirs[3], "transformed")


def test_database_argument_and_errors(root, converted, tmp_path):
    moved = tmp_path / "elsewhere.lmdb"
    shutil.copytree(converted, moved)
    ds = BigEarthNetV2(root=root, split="test", bands="s1", database=moved)
    assert_same(ds[0], TorchGeoBigEarthNetV2(root=root, split="test", bands="s1")[0], "database=")
    with pytest.raises(AssertionError):
        BigEarthNetV2(root=root, split="validation")
    with pytest.raises(AssertionError):
        BigEarthNetV2(root=root, bands="rgb")
    with pytest.raises(torchgeo.datasets.DatasetNotFoundError):
        BigEarthNetV2(root=tmp_path / "empty")


def test_plot_is_torchgeos(root, converted):
    import matplotlib

    matplotlib.use("Agg")
    ds = BigEarthNetV2(root=root, split="train", bands="all")
    fig = ds.plot(ds[0], suptitle="rico")
    assert len(fig.axes) == 3


def test_datamodule_batches_are_the_samples(root, converted):
    dm = BigEarthNetV2DataModule(root=root, batch_size=8, bands="all")
    dm.setup("fit")
    ds = dm.val_dataset
    loader = dm.val_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) == -(-len(ds) // 8)
    i = 0
    for batch in batches:
        assert batch["image"].shape[1:] == (14, 120, 120) and batch["image"].dtype == torch.float32
        for j in range(len(batch["label"])):
            s = ds[i]
            image = torch.cat([s["image_s1"], s["image_s2"]])
            assert batch["image"][j].numpy().tobytes() == image.numpy().tobytes()
            assert torch.equal(batch["mask"][j], s["mask"]) and torch.equal(
                batch["label"][j], s["label"]
            )
            i += 1
    assert i == len(ds)
    # Shuffled train batches: every row once.
    seen = sum(len(b["label"]) for b in dm.train_dataloader())
    assert seen == len(dm.train_dataset)


def test_multilabel_task_fits_two_steps_on_cpu(root, converted, tmp_path):
    from lightning.pytorch import Trainer
    from torchgeo.trainers import MultiLabelClassificationTask

    dm = BigEarthNetV2DataModule(root=root, batch_size=4, bands="all")
    task = MultiLabelClassificationTask(
        model="resnet18", weights=None, in_channels=14, num_classes=19, loss="bce"
    )
    trainer = Trainer(
        accelerator="cpu", max_steps=2, limit_val_batches=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path,
    )  # fmt: skip
    before = [p.detach().clone() for p in task.parameters()]
    trainer.fit(task, datamodule=dm)
    assert trainer.global_step == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, task.parameters()))


def test_converts_the_split_archives_torchgeo_downloads(root, converted, tmp_path):
    """A root holding what TorchGeo downloads (BigEarthNet-S1.tar.gzaa, .tar.gzab, ...,
    Reference_Maps.tar.gzaa, metadata.parquet) and no folder: the first dataset converts the
    parts, read as one stream, and its samples equal those of the folders."""
    from support.archives import pack_tar

    parts_root = tmp_path / "data"
    parts_root.mkdir()
    for key, name in TorchGeoBigEarthNetV2.dir_file_names.items():
        if key == "metadata":
            shutil.copy(root / name, parts_root / name)
            continue
        files = sorted(TorchGeoBigEarthNetV2.metadata_locs[key]["files"])
        data = pack_tar(root / name, tmp_path / f"{name}.tar.gz").read_bytes()
        step = -(-len(data) // len(files))
        for i, part in enumerate(files):
            (parts_root / part).write_bytes(data[i * step : (i + 1) * step])
    ds = BigEarthNetV2(root=parts_root, split="val", bands="all")
    assert (parts_root / "BigEarthNet.lmdb" / "data.mdb").exists()
    assert not (parts_root / "BigEarthNet-S1").exists()
    folders = BigEarthNetV2(root=root, split="val", bands="all")
    assert len(ds) == len(folders)
    for i in range(len(ds)):
        assert_same(ds[i], folders[i], f"parts[{i}]")
