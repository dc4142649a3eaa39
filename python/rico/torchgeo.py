"""``rico.torchgeo``: TorchGeo's BigEarthNet v2 dataset read from a converted database
(``pip install 'rico-eo[torchgeo]'``).

A TorchGeo user switches with one import: samples are TorchGeo's, tensor for tensor (keys,
dtypes, shapes and values; the bands resampled as rasterio's bilinear reads resample them,
in Rust)::

    # from torchgeo.datasets import BigEarthNetV2
    from rico.torchgeo import BigEarthNetV2

    ds = BigEarthNetV2(root="data", split="train", bands="all")
    sample = ds[0]  # image_s1 (2, 120, 120), image_s2 (12, 120, 120), mask, label

:class:`BigEarthNetV2DataModule` gives whole batches assembled by rico's Rust threads, for
TorchGeo's trainers (``MultiLabelClassificationTask``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

try:
    from torchgeo.datamodules import BigEarthNetDataModule as _TorchGeoBigEarthNetDataModule
    from torchgeo.datamodules import NonGeoDataModule
    from torchgeo.datasets import BigEarthNetV2 as _TorchGeoBigEarthNetV2
    from torchgeo.datasets import DatasetNotFoundError
except ImportError:
    raise ImportError(
        "rico.torchgeo needs TorchGeo: pip install 'rico-eo[torchgeo]' (or pip install torchgeo)"
    ) from None

from .bigearthnet import BigEarthNet as _BigEarthNet
from .bigearthnet.tables import MAP_BAND, MAP_SUFFIX

__all__ = ["S1_BANDS", "S2_BANDS", "BigEarthNetV2", "BigEarthNetV2DataModule"]

PathLike = Union[str, "os.PathLike[str]"]

#: TorchGeo's channel order: its band files sorted by name (``B8A`` as ``B08A``); S1 VH, VV.
S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]
S1_BANDS = ["VH", "VV"]

#: rasterio's bilinear reads (GDAL's arithmetic); BigEarthNet's S2 files declare nodata 0,
#: its S1 files none (and S1 bands are never resampled: they are 120 x 120 already).
_RESAMPLE = "bilinear-gdal:nodata=0"
_SIZE = 120

# Reference-map codes as TorchGeo's mask: the CLC codes of its table mapped to their class,
# every other code kept as it is.
_MASK_LUT = np.arange(1 << 16, dtype=np.int64)
for _code, _ordinal in _TorchGeoBigEarthNetV2.clc_codes.items():
    _MASK_LUT[_code] = _ordinal


def _as_int32(image: np.ndarray) -> np.ndarray:
    """float32 values as rasterio's ``out_dtype="int32"`` reads write them (GDAL: half away
    from zero in float32, clamped; NaN to 0), back in float32, in place."""
    half = np.copysign(np.float32(0.5), image).astype(np.float32)
    np.add(image, half, out=image)
    np.trunc(image, out=image)
    np.nan_to_num(image, copy=False, nan=0.0)
    np.add(image, np.float32(0.0), out=image)  # an integer has no negative zero
    np.clip(image, np.float32(-(2.0**31)), np.float32(2.0**31), out=image)
    return image


def _masks(db: Any, keys: Sequence[str], threads: Optional[int]) -> np.ndarray:
    """(N, 1, H, W) int64 masks of the patches ``keys``: their reference maps, as TorchGeo maps
    them."""
    codes = db.batch([k + MAP_SUFFIX for k in keys], [MAP_BAND], threads=threads)
    return _MASK_LUT[codes.astype(np.uint16)]


class BigEarthNetV2(_TorchGeoBigEarthNetV2):
    """TorchGeo's ``BigEarthNetV2`` (a ``torchgeo.datasets.NonGeoDataset``, and an instance of
    TorchGeo's class: its ``plot``, class names and tables), read from a database that
    ``rico bigearthnet`` converted instead of from GeoTIFFs.

    Same arguments and samples as TorchGeo 0.8's: ``root`` holds ``metadata.parquet``;
    rows are the table's rows of ``split`` (``"train"``, ``"val"``, ``"test"``) in table
    order; ``bands="s1"`` or ``"s2"`` gives ``image``, ``"all"`` gives ``image_s1`` (VH VV)
    and ``image_s2`` (B01 ... B12 with B8A after B08), float32 of rasterio's bilinear reads at
    120 x 120 as ``int32``; ``mask`` ``(1, 120, 120)`` int64 (CLC codes mapped to the 19
    classes, others kept); ``label`` ``(19,)`` int64 multi-hot; ``transforms`` applied to each
    sample dict.

    ``database`` (default ``<root>/BigEarthNet.lmdb``): the converted database. When it does not
    exist yet and ``root`` holds the unpacked folders (``BigEarthNet-S1``, ``BigEarthNet-S2``,
    ``Reference_Maps``) or the split archives TorchGeo downloads (``BigEarthNet-S1.tar.gzaa``,
    ``.tar.gzab``...), they are converted into it first, the archives read as one stream
    without unpacking. ``download=True`` downloads those archives (as TorchGeo does) when they
    are missing too.

    >>> from rico.torchgeo import BigEarthNetV2
    >>> ds = BigEarthNetV2(root="data", split="val", bands="all")  # doctest: +SKIP
    >>> s = ds[0]  # doctest: +SKIP
    >>> s["image_s2"].shape, s["image_s1"].dtype, s["label"].dtype  # doctest: +SKIP
    (torch.Size([12, 120, 120]), torch.float32, torch.int64)
    """

    def __init__(
        self,
        root: PathLike = "data",
        split: str = "train",
        bands: str = "all",
        transforms: Optional[Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]] = None,
        download: bool = False,
        checksum: bool = False,
        database: Optional[PathLike] = None,
        threads: Optional[int] = None,
    ) -> None:
        assert split in self.valid_splits, f"split must be one of {self.valid_splits}"
        assert bands in ["s1", "s2", "all"], (
            f"bands must be one of 's1', 's2', 'all', not {bands!r}"
        )
        self.root = root
        self.split = split
        self.bands = bands
        self.transforms = transforms
        self.num_classes = 19
        self.download = download
        self.checksum = checksum
        self.class2idx = {c: i for i, c in enumerate(self.class_set)}
        self.threads = threads
        self.database = os.fspath(
            database if database is not None else os.path.join(root, "BigEarthNet.lmdb")
        )
        metadata = os.path.join(root, self.dir_file_names["metadata"])
        if not os.path.exists(metadata) and not download:
            # Checked before a conversion, which would be lost without the rows to read.
            raise DatasetNotFoundError(self)
        if not os.path.exists(os.path.join(self.database, "data.mdb")) and not os.path.exists(
            self.database + ".shards"
        ):
            self._convert()
        if not os.path.exists(metadata):
            raise DatasetNotFoundError(self)
        self.ordinal_map = torch.zeros(19)
        for corine, ordinal in self.clc_codes.items():
            self.ordinal_map[ordinal] = corine

        wanted = {"s1": S1_BANDS, "s2": S2_BANDS, "all": S2_BANDS + S1_BANDS}[bands]
        self._ben_args: dict[str, Any] = dict(
            metadata=metadata,
            split=self.split_map[split],
            size=_SIZE,
            resample=_RESAMPLE,
            include_snow_cloud=True,
            masks=False,
            threads=threads,
        )
        self._ben = _BigEarthNet(self.database, bands=wanted, **self._ben_args)
        # Labels in TorchGeo's class order, as int64.
        order = [self._ben.classes.index(c) for c in self.class_set]
        self._labels = self._ben.labels[:, order].astype(np.int64)
        # Channels of S1 values (float32 files read as int32 by TorchGeo: rounded).
        self._s1 = slice(0, 2) if bands == "s1" else slice(12, 14) if bands == "all" else None

    def _sources(self) -> Optional[dict[str, str]]:
        """The sources under ``root`` as ``rico.convert`` options: each unpacked folder, or else
        the first part of its split archive as TorchGeo downloads it (``.tar.gzaa``; rico
        reads the parts as one stream, never joined on disk); None if one is missing."""
        options = {"s1": "bigearthnet_s1_dir", "s2": "bigearthnet_s2_dir"}
        options["maps"] = "bigearthnet_reference_maps_dir"
        sources = {}
        for key, option in options.items():
            folder = os.path.join(self.root, self.dir_file_names[key])
            parts = [os.path.join(self.root, f) for f in sorted(self.metadata_locs[key]["files"])]
            if os.path.isdir(folder):
                sources[option] = folder
            elif all(os.path.isfile(p) for p in parts):
                # Every part, not only the first: a missing last part would show only as a
                # truncated archive at the end of a long conversion.
                sources[option] = parts[0]
            else:
                return None
        return sources

    def _convert(self) -> None:
        """Converts the unpacked folders or the downloaded archive parts under ``root`` into
        the database (downloading the parts first if asked, as TorchGeo does)."""
        import rico

        sources = self._sources()
        if sources is None:
            if not self.download:
                raise DatasetNotFoundError(self)
            self._download()
            sources = self._sources()
            if sources is None:
                raise DatasetNotFoundError(self)
        rico.convert(
            "bigearthnet",
            target_dir=self.database,
            threads=self.threads,
            progress=False,
            **sources,
        )

    def __len__(self) -> int:
        return len(self._ben)

    def _batch(self, rows: Sequence[int], threads: Optional[int]) -> dict[str, np.ndarray]:
        """Images (S2 then S1 channels), masks and labels of ``rows`` as numpy arrays."""
        image = self._ben.batch(rows, threads=threads)["image"]
        if self._s1 is not None:
            _as_int32(image[:, self._s1])
        keys = [self._ben.keys[i] for i in rows]
        return {
            "image": image,
            "mask": _masks(self._ben.dataset, keys, threads),
            "label": self._labels[list(rows)],
        }

    def _split_image(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """``image`` or ``image_s1`` and ``image_s2`` (the channel axis is the one before the
        last two)."""
        if self.bands != "all":
            return {"image": image}
        return {"image_s1": image[..., 12:14, :, :], "image_s2": image[..., :12, :, :]}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for {n} rows")
        b = self._batch([index % n], threads=1)
        image = torch.from_numpy(b["image"][0])
        if self.bands == "all":
            # TorchGeo's two tensors are separate (contiguous) arrays.
            sample = {k: v.contiguous() for k, v in self._split_image(image).items()}
        else:
            sample = {"image": image}
        sample["mask"] = torch.from_numpy(b["mask"][0])
        sample["label"] = torch.from_numpy(b["label"][0])
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample


class _Batches:
    """One split's batches as dicts of tensors (``image`` ``(N, C, 120, 120)`` float32 with the
    S1 channels first for ``bands="all"``, ``mask`` ``(N, 1, 120, 120)`` int64, ``label``
    ``(N, 19)`` int64), assembled by rico's Rust threads (:meth:`rico.BigEarthNet.loader`)."""

    def __init__(
        self, ds: BigEarthNetV2, batch_size: int, shuffle: bool, seed: int, drop_last: bool
    ) -> None:
        self.ds = ds
        # The image's channels in the batch's order (S1 first for "all"), so that Rust writes
        # each sensor's bands in place: no joining copy.
        ben = ds._ben
        if ds.bands == "all":
            ben = _BigEarthNet(ds._ben.dataset, bands=S1_BANDS + S2_BANDS, **ds._ben_args)
        self.s1 = slice(0, 2) if ds.bands in ("s1", "all") else None
        # keep=2: Lightning fetches one batch ahead of the one in training.
        self.loader = ben.loader(
            batch_size=batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
            threads=ds.threads, keep=2,
        )  # fmt: skip
        self.rows = {k: i for i, k in enumerate(ds._ben.keys)}

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        ds = self.ds
        for batch in self.loader:
            image = batch["image"]
            if self.s1 is not None:
                _as_int32(image[:, self.s1])
            keys = batch["key"]
            rows = [self.rows[k] for k in keys]
            yield {
                "image": torch.from_numpy(image),
                "mask": torch.from_numpy(_masks(ds._ben.dataset, keys, ds.threads)),
                "label": torch.from_numpy(ds._labels[rows]),
            }


class BigEarthNetV2DataModule(NonGeoDataModule):
    """BigEarthNet v2 as a TorchGeo ``NonGeoDataModule`` on :class:`BigEarthNetV2`: batches
    are dicts (``image``, ``mask``, ``label``) assembled by rico's Rust threads in the training
    process (``num_workers`` is accepted and unused), and normalised on the device after the
    transfer (``on_after_batch_transfer``, TorchGeo's convention).

    ``bands="all"`` stacks S1 and S2 into one 14-channel ``image`` (VH VV B01 ... B12), the
    input of TorchGeo's ``MultiLabelClassificationTask(in_channels=14, num_classes=19)``.
    ``image`` is normalised with TorchGeo's BigEarthNet statistics (``mean = min``,
    ``std = max - min``, percentile-clipped); other keyword arguments go to
    :class:`BigEarthNetV2` (``root``, ``bands``, ``database``, ``threads``...).

    >>> from rico.torchgeo import BigEarthNetV2DataModule
    >>> dm = BigEarthNetV2DataModule(root="data", batch_size=32)  # doctest: +SKIP
    >>> # lightning.Trainer(...).fit(MultiLabelClassificationTask(in_channels=14,
    >>> #     num_classes=19, model="resnet18"), datamodule=dm)
    """

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        bands = kwargs.get("bands", "all")
        # TorchGeo's statistics are in (VV, VH, B01 ... B12) order.
        src = ["VV", "VH", *S2_BANDS]
        ours = {"all": S1_BANDS + S2_BANDS, "s1": S1_BANDS, "s2": S2_BANDS}[bands]
        idx = [src.index(b) for b in ours]
        mins = _TorchGeoBigEarthNetDataModule.mins[idx]
        maxs = _TorchGeoBigEarthNetDataModule.maxs[idx]
        self.mean, self.std = mins, maxs - mins
        # TorchGeo's BaseDataModule normalises with self.mean and self.std (its `aug`).
        super().__init__(BigEarthNetV2, batch_size, num_workers, **kwargs)
        self.seed = seed

    def setup(self, stage: str) -> None:
        if stage in ("fit",):
            self.train_dataset = BigEarthNetV2(split="train", **self.kwargs)
        if stage in ("fit", "validate"):
            self.val_dataset = BigEarthNetV2(split="val", **self.kwargs)
        if stage in ("test",):
            self.test_dataset = BigEarthNetV2(split="test", **self.kwargs)

    def _batches(self, split: str, train: bool) -> _Batches:
        ds = getattr(self, f"{split}_dataset", None)
        if ds is None:
            raise RuntimeError(f"call setup() first: no {split} dataset")
        return _Batches(ds, self.batch_size, shuffle=train, seed=self.seed, drop_last=False)

    def train_dataloader(self) -> Any:
        return self._batches("train", train=True)

    def val_dataloader(self) -> Any:
        return self._batches("val", train=False)

    def test_dataloader(self) -> Any:
        return self._batches("test", train=False)
