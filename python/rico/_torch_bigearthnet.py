"""``rico.torch.BigEarthNet``: :class:`rico.BigEarthNet` as a torch ``Dataset`` of tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import torch

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
