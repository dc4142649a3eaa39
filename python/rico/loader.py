"""A training loader: batches assembled and prefetched by Rust threads, no worker processes."""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Optional, Union

import numpy as np

from . import _rico
from ._handle import Feed, PerProcess
from ._order import EpochOrder
from .dataset import Dataset, Key

Labels = Union[Mapping[str, Sequence[str]], str, "os.PathLike[str]"]


def load_labels(
    labels: Labels, keys: Sequence[Key], classes: Optional[Sequence[str]] = None
) -> tuple[list[str], np.ndarray]:
    """Multi-hot labels of ``keys`` and the class order.

    ``labels`` is a mapping ``key -> [label, ...]`` (classes: the sorted union of the names) or
    the path of a table (CSV, or Parquet with pandas): first column the key, then one 0/1
    column per class (classes: the column order), as rico writes beside a database.
    ``classes`` fixes the columns and their order instead (e.g. BigEarthNet's 19 classes even
    when a subset holds only 18 of them); a label outside it raises ``ValueError``.
    A key without labels raises ``KeyError`` naming it: labels are never guessed.

    >>> names, y = load_labels({"a": ["Forest"], "b": []}, ["a", "b"], classes=["Urban", "Forest"])
    >>> names, y.tolist()
    (['Urban', 'Forest'], [[0.0, 1.0], [0.0, 0.0]])
    """
    str_keys = [k.decode() if isinstance(k, bytes) else k for k in keys]
    fixed = None if classes is None else [str(c) for c in classes]
    if fixed is not None and len(set(fixed)) != len(fixed):
        raise ValueError(f"classes has duplicates: {fixed}")
    if isinstance(labels, Mapping):
        names = fixed or sorted({name for names in labels.values() for name in names})
        index = {c: i for i, c in enumerate(names)}
        out = np.zeros((len(str_keys), len(names)), dtype=np.float32)
        for row, key in enumerate(str_keys):
            if key not in labels:
                raise KeyError(f"no labels for key {key!r} in the labels mapping")
            for name in labels[key]:
                if name not in index:
                    raise ValueError(
                        f"key {key!r} has label {name!r}, which is not in classes; add it there"
                    )
                out[row, index[name]] = 1.0
        return names, out
    path = os.fspath(labels)
    if path.endswith(".parquet"):
        import pandas as pd  # optional: only for Parquet tables

        table = pd.read_parquet(path)
        classes = [str(c) for c in table.columns[1:]]
        rows = {str(k): v for k, v in zip(table.iloc[:, 0], table.iloc[:, 1:].to_numpy(np.float32))}
    else:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            classes = header[1:]
            rows = {r[0]: np.asarray(r[1:], dtype=np.float32) for r in reader if r}
    out = np.zeros((len(str_keys), len(classes)), dtype=np.float32)
    for row, key in enumerate(str_keys):
        if key not in rows:
            raise KeyError(f"no labels for key {key!r} in {path}")
        out[row] = rows[key]
    if fixed is not None:
        missing = [c for c in fixed if c not in classes]
        if missing:
            raise ValueError(f"classes {missing} are not columns of {path}; its columns: {classes}")
        out = out[:, [classes.index(c) for c in fixed]]
        classes = fixed
    return classes, out


def labels_if_any(
    labels: Optional[Labels], keys: Sequence[Key], classes: Optional[Sequence[str]]
) -> tuple[Optional[list[str]], Optional[np.ndarray]]:
    """:func:`load_labels`, or ``(None, None)`` without ``labels``."""
    if labels is None:
        return None, None
    return load_labels(labels, keys, classes=classes)


class Loader(EpochOrder):
    """Iterate over batches of a :class:`Dataset`, assembled and prefetched by Rust threads.

    ``bands`` default to the first record's, ``keys`` to the records that hold all ``bands``
    (a BigEarthNet database mixes Sentinel-1, Sentinel-2 and reference-map records).

    Each epoch's order depends only on ``seed`` and the epoch. Each iteration advances the
    epoch by one on its own; :meth:`set_epoch` sets the next iteration's epoch instead. With
    ``world_size`` ranks each rank gets a disjoint part of equal size (the shuffled key list
    is cut to a multiple of ``world_size``, then rank r takes every world_size-th key from r).

    :meth:`state_dict` records the epoch, the seed, the position in the epoch and the world
    size; :meth:`load_state_dict` on a new loader (a restarted job) makes its next iteration
    yield exactly the batches not yet yielded, in the same order, without reading the
    records before them.

    With ``labels`` it yields ``(images, multi_hot)``; ``loader.classes`` gives the column order
    (``classes=`` fixes it). For torch tensors, see :class:`rico.torch.Loader`.

    Batches are written into a ring of ``keep + 1 + prefetch`` reused, 64-byte aligned buffers
    (no fresh memory per batch, so large batches are as fast per sample as small ones; and
    ``torch.from_dlpack`` / ``jax.numpy.from_dlpack`` share them without a copy). A yielded
    batch stays valid while ``keep`` further batches are yielded (default 1: the previous
    batch is intact while you work on the current one); after that its buffer is filled
    again. Copy a batch (``x.copy()``) to keep it longer, as with FFCV.

    ``threads`` (Rust threads per batch) is 1 to 1024 (default: one per core); ``prefetch``
    is 1 to 1024 and ``keep`` 0 to 1024 batches.

    A loader that would yield nothing is refused when made, saying why:
    :class:`rico.UsageError` when no record holds all of ``bands`` (it names the bands no
    record holds and the bands the records hold, or, when each band is in some record but
    none holds them all, the sets of bands the records hold), ``ValueError`` for empty
    ``keys``, fewer keys than ``world_size``, or ``drop_last`` with fewer keys per rank than
    ``batch_size``. A thread count outside 1..1024 raises :class:`rico.UsageError`.

    >>> loader = rico.Loader(ds, bands=["B04", "B03", "B02"], size=120, batch_size=32)  # doctest: +SKIP
    >>> for epoch in range(2):  # doctest: +SKIP
    ...     loader.set_epoch(epoch)
    ...     for x in loader:
    ...         pass  # x: (32, 3, 120, 120) float32
    """

    def __init__(
        self,
        ds: Dataset,
        keys: Optional[Sequence[Key]] = None,
        bands: Optional[Sequence[str]] = None,
        size: Optional[int] = None,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        threads: Optional[int] = None,
        prefetch: int = 2,
        keep: int = 1,
        rank: int = 0,
        world_size: int = 1,
        labels: Optional[Labels] = None,
        resample: str = "nearest",
        dtype: str = "float32",
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        classes: Optional[Sequence[str]] = None,
    ) -> None:
        self._init_order(
            batch_size, shuffle, seed, rank, world_size, drop_last, threads, prefetch, keep
        )
        self.ds = ds
        if isinstance(bands, str):
            bands = [bands]
        self.bands = list(bands) if bands is not None else ds.bands()
        if keys is not None:
            self.keys = list(keys)
            if not self.keys:
                raise ValueError("keys is empty: the loader would yield nothing")
        else:
            self.keys = ds.keys(bands=self.bands)
            if not self.keys:
                why = ds.db.why_empty(None, self.bands)
                raise _rico.UsageError(
                    "the loader would yield nothing: "
                    + (why or f"no record of {ds.path} holds the bands {self.bands}")
                )
        self._check_not_empty()
        self.size = size
        # The buffer ring outlives epochs; a forked child makes its own.
        self._feed = PerProcess(functools.partial(Feed, keep + 1 + prefetch))
        self.resample, self.dtype = resample, dtype
        self.mean = None if mean is None else [float(m) for m in mean]
        self.std = None if std is None else [float(s) for s in std]
        self.classes, self._labels = labels_if_any(labels, self.keys, classes)

    def _rows(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[Union[np.ndarray, tuple[np.ndarray, np.ndarray]]]:
        return super().__iter__()

    def _batches(
        self, idx: np.ndarray
    ) -> Iterator[Union[np.ndarray, tuple[np.ndarray, np.ndarray]]]:
        cut = self._cut(idx)
        groups = [idx[i : i + self.batch_size] for i in range(0, cut, self.batch_size)]
        batches = [[self.keys[i] for i in g] for g in groups]
        prefetcher = self._feed.get().start(
            self.ds.db, batches, self.bands, size=self.size, resample=self.resample,
            dtype=self.dtype, mean=self.mean, std=self.std, threads=self.threads,
            prefetch=self.prefetch, keep=self.keep,
            # The next epoch's first batch is read from storage while this epoch ends.
            then=[self.keys[i] for i in self._next_head(self.batch_size)],
        )  # fmt: skip
        for group, images in zip(groups, prefetcher):
            if self._labels is None:
                yield images
            else:
                yield images, self._labels[group]
