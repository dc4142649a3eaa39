"""``rico.torch.BigEarthNet``: :class:`rico.BigEarthNet` as a torch ``Dataset`` of tensors, and
``rico.torch.BigEarthNetLoader``: its batches as tensors from Rust threads, resumable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
import torch

from ._torch_batches import TorchBatches, rank_and_world
from .bigearthnet import BigEarthNet as _BigEarthNet


class BigEarthNet(torch.utils.data.Dataset):
    """BigEarthNet v2 from a converted database, as a map-style torch ``Dataset``.

    Takes :class:`rico.BigEarthNet`'s arguments. ``ds[i]`` is a dict of tensors: ``"image"``
    float32 ``(C, size, size)``, ``"label"`` float32 ``(19,)`` multi-hot, ``"mask"`` int64
    ``(size, size)`` (class index, 255 = no class: ``CrossEntropyLoss(ignore_index=255)``), and
    ``"key"`` (the patch_id). ``ds[[i, j, ...]]`` is a whole batch assembled in Rust (use it with
    ``DataLoader(ds, sampler=BatchSampler(...), batch_size=None)``). Picklable: each
    ``DataLoader`` worker opens the database itself.

    Against TorchGeo's ``BigEarthNetV2``: ``image`` is TorchGeo's ``image`` for ``bands="s1"``
    or ``"s2"``; for ``bands="all"`` TorchGeo returns ``image_s1`` and ``image_s2`` apart, here
    one ``image`` holds the bands in the order asked (e.g. ``bands=["VV", "VH", *S2]`` and
    ``image[:2]``, ``image[2:]``). ``label`` is the same multi-hot (float here, long there).
    ``mask`` is TorchGeo's ``mask`` without its leading channel axis, mapped by the full 43-to-19
    conversion (TorchGeo's table maps one CLC code per class) and 255 where a code has no class.

    >>> from torch.utils.data import DataLoader
    >>> ds = rico.torch.BigEarthNet("BigEarthNet.lmdb", split="train", bands="S2")  # doctest: +SKIP
    >>> for batch in DataLoader(ds, batch_size=32, shuffle=True, num_workers=2):  # doctest: +SKIP
    ...     x, y = batch["image"], batch["label"]
    """

    def __init__(self, db: Any, **options: Any) -> None:
        self.ben = _BigEarthNet(db, **options)
        self.classes = self.ben.classes

    def __len__(self) -> int:
        return len(self.ben)

    def __getitem__(self, index: Union[int, Sequence[int]]) -> dict[str, Any]:
        if isinstance(index, (int, np.integer)):
            sample = self.ben[int(index)]
        else:
            sample = self.ben.batch(list(index), threads=1)
        out: dict[str, Any] = {
            "image": torch.from_numpy(sample["image"]),
            "label": torch.from_numpy(sample["label"]),
        }
        if "mask" in sample:
            out["mask"] = torch.from_numpy(sample["mask"]).long()
        out["key"] = sample["key"]
        return out

    def loader(self, **options: Any) -> BigEarthNetLoader:
        """Batches of this split as tensors: :class:`BigEarthNetLoader` with ``options``."""
        return BigEarthNetLoader(self.ben, **options)


class BigEarthNetLoader(TorchBatches):
    """Batches of a :class:`rico.BigEarthNet` split as dicts of tensors, assembled and
    prefetched by Rust threads (:meth:`rico.BigEarthNet.loader` underneath): ``"image"`` float32
    ``(N, C, size, size)``, ``"label"`` float32 ``(N, 19)``, ``"mask"`` int64 ``(N, size, size)``
    when the database holds reference maps, ``"key"`` a list of patch_ids.

    Args:
        ben: a :class:`rico.BigEarthNet` (or :class:`rico.torch.BigEarthNet`).
        rank, world_size: this process's part; default: the initialised ``torch.distributed``
            process group's, else ``0`` and ``1``. Every rank takes the same number of batches.
        pin_memory: pin each batch in a background thread (needs CUDA).
        device: move each batch there (``non_blocking`` when pinned).
        Every other argument is :meth:`rico.BigEarthNet.loader`'s.

    Same order, epoch and resume rules as :class:`rico.Loader`: :meth:`state_dict` taken in a
    training loop, saved with the checkpoint and given to :meth:`load_state_dict` after a
    restart, makes the next iteration yield exactly the batches not yet yielded.

    >>> ben = rico.BigEarthNet("BigEarthNet.lmdb", split="train", bands=10)  # doctest: +SKIP
    >>> loader = rico.torch.BigEarthNetLoader(ben, batch_size=64, pin_memory=True, device="cuda")  # doctest: +SKIP
    >>> for batch in loader:  # doctest: +SKIP
    ...     x, y = batch["image"], batch["label"]
    """

    def __init__(
        self,
        ben: Union[_BigEarthNet, BigEarthNet],
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        drop_last: bool = False,
        threads: Optional[int] = None,
        prefetch: int = 2,
        pin_memory: bool = False,
        device: Optional[Union[str, torch.device]] = None,
    ) -> None:
        if isinstance(ben, BigEarthNet):
            ben = ben.ben
        rank, world_size = rank_and_world(rank, world_size)
        self._init_torch(pin_memory, prefetch, device)
        self.ben = ben
        self.loader = ben.loader(
            batch_size=batch_size, shuffle=shuffle, seed=seed, rank=rank,
            world_size=world_size, drop_last=drop_last, threads=threads, prefetch=prefetch,
        )  # fmt: skip

    @property
    def classes(self) -> tuple[str, ...]:
        """The columns of ``"label"``."""
        return tuple(self.ben.classes)

    def _to_torch(self, item: Any) -> Any:
        if isinstance(item, dict) and "mask" in item:
            # int64 class indices, for CrossEntropyLoss(ignore_index=255)
            item = {**item, "mask": item["mask"].astype(np.int64)}
        return super()._to_torch(item)
