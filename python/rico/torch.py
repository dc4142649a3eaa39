"""PyTorch surface: batches from rico's Rust threads as torch tensors.

The fast path is :class:`Loader`: whole batches assembled by Rust threads (GIL released),
prefetched, handed to torch without a copy, in the main process::

    import rico.torch

    loader = rico.torch.Loader("BigEarthNet.lmdb", bands=["B04", "B03", "B02"], size=120,
                               batch_size=32, threads=4)
    for epoch in range(10):
        loader.set_epoch(epoch)      # optional: successive iterations advance on their own
        for x in loader:
            ...                      # x: torch.Size([32, 3, 120, 120]) torch.float32

Why no ``DataLoader`` worker processes: rico's assembly already runs in parallel threads, and
a worker process must ship every batch it makes back through shared memory (22 MB per
batch of 32 BigEarthNet patches with 12 bands at 120x120 float32), which costs more than making it.
With ``DataLoader``, use ``num_workers=0`` and a ``BatchSampler`` so that each item is a whole
batch assembled in Rust (see :class:`RicoDataset`).

Raw band arrays (``ds[key]``) are read-only numpy views; :func:`as_tensor` turns one into a
tensor torch can compute with (``uint16`` becomes ``int32``, since ``torch.uint16`` lacks most
operations).
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
import torch

from ._handle import PerProcess
from ._torch_batches import TorchBatches, rank_and_world
from ._torch_bigearthnet import BigEarthNet, BigEarthNetLoader
from .dataset import Dataset, Key
from .loader import Labels, labels_if_any
from .loader import Loader as _Loader

__all__ = ["BigEarthNet", "BigEarthNetLoader", "Loader", "RicoBatches", "RicoDataset", "as_tensor"]

# numpy dtypes torch cannot compute with, and the dtype each becomes (values unchanged).
_WIDER = {np.dtype(np.uint16): np.dtype(np.int32), np.dtype(np.uint32): np.dtype(np.int64)}


def as_tensor(array: np.ndarray, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """A tensor torch can compute with, holding the values of ``array`` (e.g. a band of
    ``ds[key]``), in memory of its own: in-place operations on it never touch the database.

    ``dtype`` defaults to the array's, except that ``uint16`` becomes ``torch.int32`` and
    ``uint32`` becomes ``torch.int64`` (exact; ``torch.uint16`` lacks most operations). Pass
    ``dtype=torch.float32`` to get floats.

    >>> import numpy as np, rico.torch
    >>> t = rico.torch.as_tensor(np.array([[1, 65535]], dtype=np.uint16))
    >>> t.dtype, t.tolist()
    (torch.int32, [[1, 65535]])
    >>> rico.torch.as_tensor(np.array([3], dtype=np.uint16), dtype=torch.float32).tolist()
    [3.0]
    """
    a = np.asarray(array)
    if a.dtype == np.uint64:
        raise TypeError("uint64 bands have no exact torch dtype; convert them with numpy first")
    # A private copy: writable, and never the database's memory.
    t = torch.from_numpy(np.array(a, dtype=_WIDER.get(a.dtype, a.dtype), copy=True))
    return t if dtype is None else t.to(dtype)


class Loader(TorchBatches):
    """Batches as torch tensors, assembled and prefetched by :class:`rico.Loader`'s Rust threads.

    Yields ``(N, C, H, W)`` ``torch.float32`` tensors (``dtype="float64"`` for float64), or
    ``(images, multi_hot)`` with ``labels``. The tensors own their memory (no copy was made to
    get them into torch, and in-place operations are safe).

    Args:
        dataset: a :class:`rico.Dataset` or the path of a database.
        bands: bands in channel order; default: the first record's. ``keys`` defaults to the
            records that hold all of them (``ds.keys(bands=bands)``).
        rank, world_size: this process's part, as ``DistributedSampler`` cuts it; default: the
            initialised ``torch.distributed`` process group's, else ``0`` and ``1``.
        pin_memory: pin each batch in a background thread (needs CUDA).
        device: move each batch there (``non_blocking`` when pinned).
        Every other argument is :class:`rico.Loader`'s, by keyword (``batch_size``,
        ``shuffle``, ``seed``, ``drop_last``, ``threads``, ``prefetch``, ``keep``, ``labels``,
        ``classes``, ``resample``, ``dtype``, ``mean``, ``std``, ``keys``).

    The order depends on ``seed`` and the epoch: each iteration advances the epoch by one,
    and :meth:`set_epoch` sets the next iteration's epoch explicitly. :meth:`state_dict` and
    :meth:`load_state_dict` resume an epoch where it stopped (:meth:`rico.Loader.state_dict`).

    >>> loader = rico.torch.Loader("ben.lmdb", bands=["B04", "B03", "B02"], size=120)  # doctest: +SKIP
    >>> x = next(iter(loader))  # doctest: +SKIP
    >>> x.shape, x.dtype  # doctest: +SKIP
    (torch.Size([32, 3, 120, 120]), torch.float32)
    """

    def __init__(
        self,
        dataset: Union[Dataset, str, os.PathLike[str]],
        bands: Optional[Sequence[str]] = None,
        size: Optional[int] = None,
        *,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        prefetch: int = 2,
        pin_memory: bool = False,
        device: Optional[Union[str, torch.device]] = None,
        **options: Any,
    ) -> None:
        ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
        rank, world_size = rank_and_world(rank, world_size)
        self._init_torch(pin_memory, prefetch, device)
        self.loader = _Loader(
            ds, bands=bands, size=size, prefetch=prefetch, rank=rank, world_size=world_size,
            **options,
        )  # fmt: skip

    @property
    def classes(self) -> Optional[list[str]]:
        """The columns of the multi-hot labels (None without labels)."""
        return self.loader.classes

    @property
    def keys(self) -> list[Key]:
        """The keys this loader draws from (every rank's)."""
        return self.loader.keys


RicoBatches = Loader
"""Another name of :class:`Loader`."""


class RicoDataset(torch.utils.data.Dataset):
    """Map-style dataset over a converted database, for ``torch.utils.data.DataLoader``.

    ``ds[i]`` is a ``(C, H, W)`` float32 tensor of the i-th record's ``bands``; ``i`` may be a
    Python, numpy or torch integer. ``ds[[i, j, ...]]``, ``ds[np.arange(4)]``, ``ds[2:6]`` or a
    boolean mask give an ``(N, C, H, W)`` batch assembled in Rust. With ``labels``, items are
    ``(image, multi_hot)``. ``keys`` defaults to the records that hold all of ``bands``.
    Picklable: the database opens on first use in each process (after a fork, too).

    The fast way to feed torch is :class:`Loader`. With a ``DataLoader``, prefer
    ``num_workers=0`` with a ``BatchSampler``, so that each item is a whole batch made by Rust
    threads: worker processes must ship every batch through shared memory, which is slower than
    rico makes batches.

    >>> from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Subset
    >>> ds = RicoDataset("ben.lmdb", bands=["B04", "B03", "B02"], size=120)  # doctest: +SKIP
    >>> sampler = BatchSampler(RandomSampler(ds), batch_size=32, drop_last=False)  # doctest: +SKIP
    >>> for x in DataLoader(ds, sampler=sampler, batch_size=None, num_workers=0):  # doctest: +SKIP
    ...     pass  # x: (32, 3, 120, 120) float32
    >>> Subset(ds, np.arange(10))[0].shape  # doctest: +SKIP
    torch.Size([3, 120, 120])
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
        classes: Optional[Sequence[str]] = None,
        threads: Optional[int] = 1,
    ) -> None:
        self.path = os.fspath(path)
        self.bands, self.size, self.resample = list(bands), size, resample
        self.mean, self.std, self.threads = mean, std, threads
        self._ds: PerProcess[Dataset] = PerProcess(functools.partial(Dataset, self.path))
        with Dataset(self.path) as ds:
            self.keys = list(keys) if keys is not None else ds.keys(bands=self.bands)
        self.classes, self.labels = labels_if_any(labels, self.keys, classes)

    def __len__(self) -> int:
        return len(self.keys)

    def _positions(self, index: Any) -> tuple[bool, list[int]]:
        """(whether index selects many, the positions it selects), Python's rules for negatives."""
        n = len(self.keys)
        if isinstance(index, slice):
            return True, list(range(n)[index])
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy() if index.ndim else index.item()
        if isinstance(index, np.ndarray) and index.ndim == 0:
            index = index.item()
        if isinstance(index, (bool, np.bool_)):
            raise TypeError("a single bool is not an index; use an integer")
        try:
            return False, [self._position(operator.index(index), n)]
        except TypeError:
            pass
        a = np.asarray(index)
        if a.dtype == np.bool_:
            if a.shape != (n,):
                raise IndexError(f"a boolean mask must have {n} entries, not {a.shape}")
            return True, np.flatnonzero(a).tolist()
        if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
            raise TypeError(
                f"RicoDataset indices are integers, slices, or 1-D integer arrays, not {index!r}"
            )
        return True, [self._position(int(i), n) for i in a]

    @staticmethod
    def _position(i: int, n: int) -> int:
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for {n} records")
        return i + n if i < 0 else i

    def __getitems__(self, indices: Sequence[int]) -> list:
        """The samples of ``indices`` as a list, all assembled in one Rust batch: what
        ``DataLoader``'s automatic batching asks for (it then collates them)."""
        item = self[list(indices)]
        if isinstance(item, tuple):
            return list(zip(item[0], item[1]))
        return list(item)

    def __getitem__(self, index: Any) -> Any:
        many, positions = self._positions(index)
        keys = [self.keys[i] for i in positions]
        x = self._ds.get().batch(
            keys,
            self.bands,
            self.size,
            self.resample,
            "float32",
            self.mean,
            self.std,
            threads=self.threads,
        )
        images = torch.from_numpy(x if many else x[0])
        if self.labels is None:
            return images
        y = self.labels[positions] if many else self.labels[positions[0]]
        return images, torch.from_numpy(y)
