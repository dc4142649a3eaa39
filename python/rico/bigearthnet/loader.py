"""The loader of :meth:`rico.BigEarthNet.loader`: batches of a split as dicts, assembled and
prefetched by Rust threads into rico-core's batch rings, in :class:`rico.Loader`'s order.

It reads the split through :class:`Split` (what :class:`rico.BigEarthNet` offers), so that
this module never imports the one that defines the split."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import numpy as np

from .._handle import Feed, PerProcess
from .._order import EpochOrder
from ..dataset import Dataset
from .tables import MAP_BAND, MAP_SUFFIX, MASK_LUT, to_classes


class Split(Protocol):
    """What the loader reads of a :class:`rico.BigEarthNet` split."""

    keys: list[str]
    labels: np.ndarray
    masks: bool
    size: int

    @property
    def dataset(self) -> Dataset: ...

    def __len__(self) -> int: ...

    def _runs(self) -> list[tuple[slice, dict[str, Any], list[str]]]: ...


class BigEarthNetLoader(EpochOrder):
    """Iterates over batches of a :class:`BigEarthNet` (see :meth:`BigEarthNet.loader`); each
    batch is a dict like :meth:`BigEarthNet.batch`'s. ``state_dict()`` and
    ``load_state_dict()`` resume an epoch where it stopped, as :class:`rico.Loader`'s.

    Images come from one Rust prefetcher that writes each run of one sensor's channels in
    place, into a ring of ``keep + 1 + prefetch`` reused buffers; the reference maps from
    another, into a ring of their own, and their class indices into ``keep + 1`` reused
    buffers (made here, from the codes, as each batch is handed out)."""

    def __init__(self, ben: Split, *order: Any, **options: Any) -> None:
        """``ben``, then the order's arguments as :meth:`BigEarthNet.loader` passes them:
        ``batch_size, shuffle, seed, rank, world_size, drop_last, threads, prefetch, keep=1``
        (see :meth:`EpochOrder._init_order`)."""
        self.ben = ben
        self._init_order(*order, **options)
        keep, prefetch = self.keep, self.prefetch
        # rico-core's rings of images and of reference-map codes (one per process), kept across
        # epochs; and the class indices handed out, keep + 1 buffers used in turn.
        self._images = PerProcess(functools.partial(Feed, keep + 1 + prefetch))
        self._codes = PerProcess(functools.partial(Feed, keep + 1 + prefetch))
        self._classes: list[np.ndarray] = []
        self._turn = 0
        self._check_not_empty()

    def _rows(self) -> int:
        return len(self.ben)

    def _class_buffer(self, shape: tuple[int, ...]) -> np.ndarray:
        """The next of the ``keep + 1`` buffers of class indices, each for a full batch."""
        if len(self._classes) <= self.keep:
            self._classes.append(np.empty(shape, dtype=MASK_LUT.dtype))
        self._turn += 1
        return self._classes[(self._turn - 1) % (self.keep + 1)]

    def _start(self, feed: PerProcess[Feed], rows: np.ndarray, parts: Sequence[Any]) -> Any:
        """A prefetcher of ``rows``' batches into ``feed``'s ring: each part (the keys of every
        row, then its batch arguments) adds its channels after the ones before."""
        ben, head = self.ben, self._next_head(self.batch_size)

        def batches(keys: list[str]) -> list[list[str]]:
            return [
                [keys[i] for i in rows[s : s + self.batch_size]]
                for s in range(0, len(rows), self.batch_size)
            ]

        (keys, first), *more = parts
        extra = [(batches(k), a["bands"], a.get("mean"), a.get("std")) for k, a in more]
        return feed.get().start(
            ben.dataset.db, batches(keys), first["bands"], size=ben.size,
            resample=first["resample"], mean=first.get("mean"), std=first.get("std"),
            threads=self.threads, prefetch=self.prefetch, keep=self.keep, extra=extra,
            # The next epoch's first records are read from storage while this epoch ends.
            then=[k[i] for k, _ in parts for i in head],
        )  # fmt: skip

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return super().__iter__()

    def _batches(self, rows: np.ndarray) -> Iterator[dict[str, Any]]:
        ben = self.ben
        rows = rows[: self._cut(rows)]
        images = self._start(self._images, rows, [(keys, args) for _, args, keys in ben._runs()])
        masks = None
        if ben.masks:
            args = dict(bands=[MAP_BAND], resample="nearest")
            masks = self._start(self._codes, rows, [([k + MAP_SUFFIX for k in ben.keys], args)])
        for start, image in zip(range(0, len(rows), self.batch_size), images):
            group = rows[start : start + self.batch_size]
            out: dict[str, Any] = {"image": image, "label": ben.labels[group]}
            if masks is not None:
                shape = (self.batch_size, ben.size, ben.size)
                out["mask"] = to_classes(next(masks), out=self._class_buffer(shape))
            out["key"] = [ben.keys[i] for i in group]
            yield out
