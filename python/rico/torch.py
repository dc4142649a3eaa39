"""PyTorch helpers: a map-style ``Dataset`` that opens lazily in each ``DataLoader`` worker.

Per sample::

    from torch.utils.data import DataLoader
    from rico.torch import RicoDataset

    ds = RicoDataset("BigEarthNet.lmdb", bands=["B04", "B03", "B02"], size=120)
    for x in DataLoader(ds, batch_size=32, num_workers=2, shuffle=True):
        ...  # x: (32, 3, 120, 120) float32

Per batch, without collation (each item is a whole batch assembled in Rust)::

    from torch.utils.data import BatchSampler, RandomSampler
    sampler = BatchSampler(RandomSampler(ds), batch_size=32, drop_last=False)
    for x in DataLoader(ds, sampler=sampler, batch_size=None, num_workers=2):
        ...
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional, Union

import torch

from .dataset import Dataset, Key
from .loader import Labels, load_labels


class RicoDataset(torch.utils.data.Dataset):
    """Map-style dataset over a converted database.

    ``ds[i]`` is a ``(C, H, W)`` tensor of the i-th key's ``bands``; ``ds[[i, j, ...]]`` an
    ``(N, C, H, W)`` batch. With ``labels``, items are ``(image, multi_hot)``.
    Picklable: the database is opened on first use in each process (after a fork, too).
    """

    def __init__(
        self,
        path: Union[str, os.PathLike[str]],
        bands: Sequence[str],
        size: Optional[int] = None,
        keys: Optional[Sequence[Key]] = None,
        resample: str = "nearest",
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        labels: Optional[Labels] = None,
    ) -> None:
        self.path = os.fspath(path)
        self.bands, self.size, self.resample = list(bands), size, resample
        self.mean, self.std = mean, std
        self._ds: Optional[Dataset] = None
        self._pid: Optional[int] = None
        with Dataset(self.path) as ds:
            self.keys = list(keys) if keys is not None else ds.keys()
        self.classes, self.labels = (None, None)
        if labels is not None:
            self.classes, self.labels = load_labels(labels, self.keys)

    def _open(self) -> Dataset:
        if self._ds is None or self._pid != os.getpid():
            self._ds, self._pid = Dataset(self.path), os.getpid()
        return self._ds

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_ds"], state["_pid"] = None, None
        return state

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index):
        many = not isinstance(index, int)
        positions = list(index) if many else [index]
        keys = [self.keys[i] for i in positions]
        x = self._open().batch(
            keys, self.bands, self.size, self.resample, "float32", self.mean, self.std, threads=1
        )
        images = torch.from_numpy(x if many else x[0])
        if self.labels is None:
            return images
        y = torch.from_numpy(self.labels[positions] if many else self.labels[positions[0]])
        return images, y


from ._torch_bigearthnet import BigEarthNet  # noqa: E402, F401
