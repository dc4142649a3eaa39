"""The order every loader follows (:class:`rico.Loader`, :class:`rico.bigearthnet.BigEarthNetLoader`):
a seeded shuffle per epoch, one disjoint part of equal size per rank, the epoch rule of
successive iterations, and the number of batches."""

from __future__ import annotations

import numpy as np


class EpochOrder:
    """The epoch, shuffle and rank rules of a loader over ``_rows()`` rows.

    Each epoch's order depends only on ``seed`` and the epoch. Each iteration advances the
    epoch by one on its own; :meth:`set_epoch` sets the next iteration's epoch instead. With
    ``world_size`` ranks each rank gets a disjoint part of equal size (the shuffled positions
    are cut to a multiple of ``world_size``, then rank r takes every world_size-th one from r).
    """

    batch_size: int
    shuffle: bool
    seed: int
    rank: int
    world_size: int
    drop_last: bool
    epoch: int

    def _init_order(
        self,
        batch_size: int,
        shuffle: bool,
        seed: int,
        rank: int,
        world_size: int,
        drop_last: bool,
        keep: int,
        prefetch: int,
    ) -> None:
        """Checks a loader's arguments (``keep`` and ``prefetch`` size its buffer ring) and sets
        the order's attributes; the first iteration takes epoch 0."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if keep < 0 or prefetch < 1:
            raise ValueError("keep must be at least 0 and prefetch at least 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0
        self._epoch_set, self._iterated = False, False

    def _rows(self) -> int:
        """How many rows (keys) the loader draws from, every rank's."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds the next iteration's shuffle (without it, each iteration
        takes the epoch after the last one)."""
        self.epoch = epoch
        self._epoch_set = True

    def indices(self) -> np.ndarray:
        """Positions (in ``keys``, or rows of the split) this rank visits this epoch, in order."""
        n = self._rows()
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(n)
            if self.shuffle
            else np.arange(n)
        )
        per_rank = n // self.world_size
        return order[: per_rank * self.world_size][self.rank :: self.world_size]

    def __len__(self) -> int:
        n = self._rows() // self.world_size
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _start_epoch(self) -> np.ndarray:
        """The positions of the iteration that starts now: the epoch is chosen here, the one
        set, else the one after the last."""
        if self._iterated and not self._epoch_set:
            self.epoch += 1
        self._iterated, self._epoch_set = True, False
        return self.indices()

    def _cut(self, positions: np.ndarray) -> int:
        """How many of ``positions`` are batched: all, or whole batches with ``drop_last``."""
        n = len(positions)
        return n - n % self.batch_size if self.drop_last else n
