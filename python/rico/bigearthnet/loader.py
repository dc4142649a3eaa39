"""The loader of :meth:`rico.BigEarthNet.loader`: batches of a split as dicts, assembled and
prefetched by Rust threads, in :class:`rico.Loader`'s order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Optional

import numpy as np

from .. import _rico
from .._order import EpochOrder
from ..loader import Loader
from .dataset import BigEarthNet, is_range
from .tables import MAP_BAND, MAP_SUFFIX, MASK_LUT


class BigEarthNetLoader(EpochOrder):
    """Iterates over batches of a :class:`BigEarthNet` (see :meth:`BigEarthNet.loader`); each
    batch is a dict like :meth:`BigEarthNet.batch`'s. ``state_dict()`` and
    ``load_state_dict()`` resume an epoch where it stopped, as :class:`rico.Loader`'s."""

    def __init__(
        self,
        ben: BigEarthNet,
        batch_size: int,
        shuffle: bool,
        seed: int,
        rank: int,
        world_size: int,
        drop_last: bool,
        threads: Optional[int],
        prefetch: int,
        keep: int = 1,
    ) -> None:
        self._init_order(
            batch_size, shuffle, seed, rank, world_size, drop_last, keep, prefetch, threads
        )
        self.ben, self.threads, self.prefetch, self.keep = ben, threads, prefetch, keep
        # Reused output buffers by kind ("image", "mask"), made on first use; kept across epochs.
        self._rings: dict[str, list[np.ndarray]] = {}
        self._turns: dict[str, int] = {}
        self._subs: dict[str, tuple[Any, Any]] = {}
        # The joined-image prefetcher's batch ring (per process) and its running iteration.
        self._image_ring: Any = None
        self._image_ring_pid: Optional[int] = None
        self._image_running: Any = None
        self._check_not_empty()

    def _buffer(self, kind: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """The next buffer of kind's ring of ``keep + 1``, each for a full batch."""
        ring = self._rings.setdefault(kind, [])
        if len(ring) < self.keep + 1:
            ring.append(np.empty(shape, dtype=dtype))
        turn = self._turns.get(kind, 0)
        self._turns[kind] = turn + 1
        return ring[turn % (self.keep + 1)]

    def _rows(self) -> int:
        return len(self.ben)

    def _sub(self, name: str) -> tuple[Any, Any]:
        """(channels, rico.Loader) of one record kind ("s2", "s1", "mask"), made once: its
        buffer ring then serves every epoch (a new Loader per epoch would allocate and fault
        in a new ring)."""
        if name not in self._subs:
            ben = self.ben
            if name == "mask":
                channels, keys = None, [k + MAP_SUFFIX for k in ben.keys]
                args: dict[str, Any] = dict(bands=[MAP_BAND], size=ben.size, resample="nearest")
            else:
                channels = ben._s2 if name == "s2" else ben._s1
                keys = ben.keys if name == "s2" else (ben.s1_names or [])
                args = ben._group_args(channels)
            self._subs[name] = (
                channels,
                Loader(
                    ben.dataset, keys=keys, batch_size=self.batch_size, shuffle=False,
                    drop_last=self.drop_last, threads=self.threads, prefetch=self.prefetch,
                    keep=self.keep, **args,
                ),
            )  # fmt: skip
        return self._subs[name]

    def _joined_images(self, rows: np.ndarray) -> Optional[Iterator[np.ndarray]]:
        """Batches of whole images from one prefetcher that writes each sensor's bands in place,
        when each sensor's channels are one run of the image; None otherwise (then each sensor
        has its loader and the batches are joined with one strided copy)."""
        ben = self.ben
        groups = ben._sensors()
        if len(groups) < 2 or not all(is_range(g) for g, _ in groups):
            return None
        groups.sort(key=lambda g: g[0][0][0])  # runs in channel order: they tile the image
        if self._image_ring is None or self._image_ring_pid != os.getpid():
            self._image_ring = _rico.BatchRing(self.keep + 1 + self.prefetch)
            self._image_ring_pid, self._image_running = os.getpid(), None
        if self._image_running is not None:
            # An earlier iteration left unfinished: its thread must stop writing into the ring.
            self._image_running.close()
        parts = []
        for group, keys in groups:
            args = ben._group_args(group)
            batches = [
                [keys[i] for i in rows[s : s + self.batch_size]]
                for s in range(0, len(rows), self.batch_size)
            ]
            mean = None if args["mean"] is None else [float(m) for m in args["mean"]]
            std = None if args["std"] is None else [float(v) for v in args["std"]]
            parts.append((batches, args["bands"], mean, std))
        first, *extra = parts
        self._image_running = _rico.Prefetcher(
            ben.dataset.db, first[0], first[1], ben.size, ben.resample, "float32", first[2],
            first[3], self.threads, self.prefetch, self._image_ring, self.keep, extra,
        )  # fmt: skip
        return iter(self._image_running)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return super().__iter__()

    def _batches(self, rows: np.ndarray) -> Iterator[dict[str, Any]]:
        ben = self.ben
        rows = rows[: self._cut(rows)]
        joined = self._joined_images(rows)
        names = (
            [] if joined is not None else [n for n, g in (("s2", ben._s2), ("s1", ben._s1)) if g]
        )
        # Every record kind's key list is in row order, so the same positions select the same
        # rows of each.
        streams = [(n, *self._sub(n)) for n in names]
        streams = [(n, channels, sub._batches(rows)) for n, channels, sub in streams]
        masks = self._sub("mask")[1]._batches(rows) if ben.masks else None
        full = (self.batch_size, len(ben.bands), ben.size, ben.size)
        for start in range(0, len(rows), self.batch_size):
            group = rows[start : start + self.batch_size]
            if joined is not None:
                image = next(joined)
            else:
                parts = [(channels, next(stream)) for _, channels, stream in streams]
                image = ben._join(parts, len(group), out=self._buffer("image", full, np.float32))
            out: dict[str, Any] = {"image": image, "label": ben.labels[group]}
            if masks is not None:
                shape = (self.batch_size, ben.size, ben.size)
                out["mask"] = ben._to_classes(
                    next(masks), out=self._buffer("mask", shape, MASK_LUT.dtype)
                )
            out["key"] = [ben.keys[i] for i in group]
            yield out
