"""``rico.lightning``: BigEarthNet v2 from a converted database as a Lightning ``DataModule``
(``pip install 'rico-eo[lightning]'``).

:class:`BigEarthNetDataModule` takes the arguments of ConfigILM's ``BENv2DataModule``, so a
ConfigILM user switches by changing the import::

    # from configilm.extra.DataModules.BENv2_DataModule import BENv2DataModule
    from rico.lightning import BigEarthNetDataModule as BENv2DataModule

    dm = BENv2DataModule(
        data_dirs={"images_lmdb": "BigEarthNet.lmdb", "metadata_parquet": "metadata.parquet"},
        batch_size=64, img_size=(10, 120, 120),
    )
    trainer.fit(model, datamodule=dm)

Batches are assembled by Rust threads in the training process (no ``DataLoader`` worker
processes), each rank takes its part from the trainer's rank and world size, and the training
loader's position is saved in Lightning's checkpoints: a run restarted from a mid-epoch
checkpoint (``trainer.fit(..., ckpt_path=...)``) goes on with exactly the batches it had not
seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any, Callable, Optional, Union

import torch

try:
    import lightning.pytorch as pl
except ImportError:  # the standalone package
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
    except ImportError:
        raise ImportError(
            "rico.lightning needs Lightning: pip install 'rico-eo[lightning]' "
            "(or pip install lightning)"
        ) from None

from .bigearthnet import BigEarthNet
from .bigearthnet.normalization import Normalize
from .torch import BigEarthNetLoader

__all__ = ["CONFIGILM_BANDS", "BigEarthNetDataModule"]

PathLike = Union[str, "os.PathLike[str]"]

_S2_10M_20M = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
_S2_ALL = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]

#: ConfigILM's channel configurations (``BENv2DataSet.channel_configurations``, ConfigILM
#: 0.7.1): the bands of ``img_size[0]`` channels, in ConfigILM's channel order.
CONFIGILM_BANDS: dict[int, list[str]] = {
    2: ["VV", "VH"],
    3: ["B04", "B03", "B02"],
    4: ["B02", "B03", "B04", "B08"],
    10: _S2_10M_20M,
    12: ["VV", "VH", *_S2_10M_20M],
    14: ["VV", "VH", *_S2_ALL],
}


class _Batches:
    """A :class:`rico.torch.BigEarthNetLoader` whose batches are ``(image, label)`` (ConfigILM's
    form) or dicts, with a transform applied to each batch's image; resumable."""

    def __init__(
        self, loader: BigEarthNetLoader, transform: Optional[Callable], as_dict: bool
    ) -> None:
        self.loader, self.transform, self.as_dict = loader, transform, as_dict

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loader.load_state_dict(state)

    def __iter__(self) -> Iterator[Any]:
        # A generator: the epoch starts at the first batch asked for, not at iter(). Lightning
        # calls iter() once to check that the loader is iterable; that must not use an epoch.
        for batch in self.loader:
            image = batch["image"]
            if self.transform is not None:
                image = self.transform(image)
            if self.as_dict:
                yield {**batch, "image": image}
            else:
                yield image, batch["label"]


class BigEarthNetDataModule(pl.LightningDataModule):
    """Train, validation and test loaders of BigEarthNet v2 (:class:`rico.BigEarthNet`, with its
    split rules: the snow and cloud/shadow patches left out), for ``Trainer.fit``/``test``.

    The first arguments are ConfigILM's ``BENv2DataModule``'s, with the same meaning:

    Args:
        data_dirs: ``{"images_lmdb": database, "metadata_parquet": metadata.parquet}`` (a
            ``"metadata_snow_cloud_parquet"`` entry is accepted and not needed: the snow and
            cloud/shadow patches are marked in metadata.parquet's columns).
        batch_size: per rank.
        img_size: ``(channels, height, width)``; the channel count picks ConfigILM's bands in
            ConfigILM's channel order (:data:`CONFIGILM_BANDS`: 2, 3, 4, 10, 12 or 14) unless
            ``bands`` is given.
        num_workers_dataloader: accepted for ConfigILM's signature; rico assembles batches with
            ``threads`` Rust threads and no worker processes.
        shuffle: ``None``: the train split shuffled, validation and test not.
        max_len: at most this many rows per split (rows are sorted by patch_id, as
            ConfigILM sorts them, so the same ones).
        pin_memory: pin batches in a background thread; ``None``: when CUDA is available.
        patch_prefilter: ``patch_id -> bool``: the rows kept.
        train_transforms, eval_transforms: applied to each batch's ``image`` tensor
            ``(N, C, H, W)`` (a whole batch at once, not per sample); none by default.
            The images are already normalised (``normalize``), so these must not normalise
            again, as ConfigILM's default transforms do.

    rico's own, keyword only:

    Args:
        bands: a list of band names or a :class:`rico.BigEarthNet` preset (overrides
            ``img_size[0]``; rico's presets order some stacks unlike ConfigILM).
        normalize: ``"bigearthnet-v2"`` (the published statistics, ConfigILM's default), a
            ``rico stats`` file, ``(mean, std)``, or ``None`` for raw values.
        resample: ``"nearest"`` (the reBEN paper's upsampling) or ``"bilinear"``.
        label_order: ``"lexicographic"`` (ConfigILM's label columns, the default here) or
            ``"nomenclature"``.
        include_snow_cloud: keep the patches marked as snow or cloud/shadow.
        seed: the shuffle seed (each epoch's order depends on it and the epoch only).
        drop_last: drop the train split's last, partial batch of each rank.
        threads, prefetch: Rust threads per batch (1 to 1024) and batches assembled ahead
            (1 to 1024).
        as_dict: yield dicts (``image``, ``label``, ``key``) instead of ``(image, label)``.
        masks: read the reference maps too (``mask`` in dict batches).

    Each rank takes an equal, disjoint part of a split (rank and world size from the trainer),
    so all ranks run the same number of steps; up to ``world_size - 1`` rows of a split are
    left out of an epoch, as ``DistributedSampler(drop_last=True)`` does.
    """

    num_classes = 19

    def __init__(
        self,
        data_dirs: Mapping[str, PathLike],
        batch_size: int = 16,
        img_size: tuple = (3, 120, 120),
        num_workers_dataloader: int = 4,
        shuffle: Optional[bool] = None,
        max_len: Optional[int] = None,
        pin_memory: Optional[bool] = None,
        patch_prefilter: Optional[Callable[[str], bool]] = None,
        train_transforms: Optional[Callable] = None,
        eval_transforms: Optional[Callable] = None,
        *,
        bands: Union[None, str, int, list[str]] = None,
        normalize: Normalize = "bigearthnet-v2",
        resample: str = "nearest",
        label_order: str = "lexicographic",
        include_snow_cloud: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        threads: Optional[int] = None,
        prefetch: int = 2,
        as_dict: bool = False,
        masks: bool = False,
    ) -> None:
        super().__init__()
        missing = [k for k in ("images_lmdb", "metadata_parquet") if k not in data_dirs]
        if missing:
            raise ValueError(
                f"data_dirs needs {' and '.join(repr(k) for k in missing)}: the database and "
                f"BigEarthNet v2's metadata.parquet (it has {sorted(data_dirs)})"
            )
        channels, height, width = (int(v) for v in img_size)
        if height != width:
            raise ValueError(f"img_size must be square, not {height}x{width}")
        self.data_dirs = dict(data_dirs)
        self.batch_size, self.img_size = batch_size, (channels, height, width)
        self.num_workers_dataloader = num_workers_dataloader
        self.shuffle, self.max_len, self.patch_prefilter = shuffle, max_len, patch_prefilter
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.train_transform, self.transform = train_transforms, eval_transforms
        if bands is None and channels not in CONFIGILM_BANDS:
            raise ValueError(
                f"img_size[0]={channels} is not one of ConfigILM's channel configurations "
                f"({', '.join(map(str, CONFIGILM_BANDS))}); pass bands= for other stacks"
            )
        self.bands = CONFIGILM_BANDS[channels] if bands is None else bands
        self.normalize, self.resample, self.label_order = normalize, resample, label_order
        self.include_snow_cloud, self.seed, self.drop_last = include_snow_cloud, seed, drop_last
        self.threads, self.prefetch, self.as_dict, self.masks = threads, prefetch, as_dict, masks
        self.train_ds: Optional[BigEarthNet] = None
        self.val_ds: Optional[BigEarthNet] = None
        self.test_ds: Optional[BigEarthNet] = None

    def _split(self, split: str) -> BigEarthNet:
        ben = BigEarthNet(
            self.data_dirs["images_lmdb"],
            metadata=self.data_dirs["metadata_parquet"],
            split=split,
            bands=self.bands,
            size=self.img_size[1],
            resample=self.resample,
            normalize=self.normalize,
            include_snow_cloud=self.include_snow_cloud,
            label_order=self.label_order,
            masks=self.masks,
            threads=self.threads,
        )
        if len(ben.bands) != self.img_size[0]:
            raise ValueError(
                f"img_size has {self.img_size[0]} channels but bands={self.bands!r} has "
                f"{len(ben.bands)}"
            )
        rows = sorted(range(len(ben)), key=ben.keys.__getitem__)  # ConfigILM's row order
        if self.patch_prefilter is not None:
            rows = [i for i in rows if self.patch_prefilter(ben.keys[i])]
        if self.max_len is not None and self.max_len >= 0:
            rows = rows[: self.max_len]
        ben._keep_rows(rows)
        return ben

    def setup(self, stage: Optional[str] = None) -> None:
        """Opens the splits a stage needs: ``"fit"`` train and validation, ``"validate"``
        validation, ``"test"`` test, ``None`` all three."""
        if stage in ("fit", None) and self.train_ds is None:
            self.train_ds = self._split("train")
        if stage in ("fit", "validate", None) and self.val_ds is None:
            self.val_ds = self._split("validation")
        if stage in ("test", None) and self.test_ds is None:
            self.test_ds = self._split("test")

    def _loader(self, ben: Optional[BigEarthNet], train: bool) -> _Batches:
        if ben is None:
            raise RuntimeError("call setup() first (the Trainer does)")
        trainer = self.trainer
        loader = BigEarthNetLoader(
            ben,
            batch_size=self.batch_size,
            shuffle=train if self.shuffle is None else self.shuffle,
            seed=self.seed,
            rank=None if trainer is None else trainer.global_rank,
            world_size=None if trainer is None else trainer.world_size,
            drop_last=train and self.drop_last,
            threads=self.threads,
            prefetch=self.prefetch,
            pin_memory=self.pin_memory,
        )
        return _Batches(loader, self.train_transform if train else self.transform, self.as_dict)

    def train_dataloader(self) -> _Batches:
        """The train split, shuffled, resumable from Lightning's checkpoints."""
        return self._loader(self.train_ds, train=True)

    def val_dataloader(self) -> _Batches:
        return self._loader(self.val_ds, train=False)

    def test_dataloader(self) -> _Batches:
        return self._loader(self.test_ds, train=False)
