"""The order every loader follows (:class:`rico.Loader`, :class:`rico.bigearthnet.BigEarthNetLoader`):
a seeded shuffle per epoch, one disjoint part of equal size per rank, the epoch rule of
successive iterations, the number of batches, and the state that resumes an epoch where it
stopped (:meth:`EpochOrder.state_dict`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Optional, TypeVar

import numpy as np

from . import _rico

T = TypeVar("T")

#: The version of the dict :meth:`EpochOrder.state_dict` writes.
STATE_VERSION = 1

#: The most batches a loader's ``keep`` or ``prefetch`` may hold in memory.
MAX_HELD = 1024


@dataclass
class _Pass:
    """One iteration over (part of) an epoch, from the view of one rank.

    The epoch's order is cut to ``length`` positions; ``start`` of them were taken before this
    iteration began (by every rank together: always a prefix of the order, since rank r takes
    every world_size-th position from r and all ranks take the same number). This rank takes
    ``size`` positions in this iteration and has yielded ``taken`` of them, in ``batches``
    batches since the epoch began.
    """

    epoch: int
    start: int
    length: int
    world_size: int
    size: int
    taken: int = 0
    batches: int = 0

    @property
    def position(self) -> int:
        """How many positions of the epoch every rank together has yielded."""
        return self.start + self.taken * self.world_size


class EpochOrder:
    """The epoch, shuffle and rank rules of a loader over ``_rows()`` rows.

    Each epoch's order depends only on ``seed`` and the epoch. Each iteration advances the
    epoch by one on its own; :meth:`set_epoch` sets the next iteration's epoch instead. With
    ``world_size`` ranks each rank gets a disjoint part of equal size (the shuffled positions
    are cut to a multiple of ``world_size``, then rank r takes every world_size-th one from r).

    :meth:`state_dict` records where the loader stands (epoch, seed, position in the epoch,
    world size); :meth:`load_state_dict` makes the next iteration yield exactly the batches
    that were not yet yielded, in the same order, without reading the records before them.
    """

    batch_size: int
    shuffle: bool
    seed: int
    rank: int
    world_size: int
    drop_last: bool
    threads: Optional[int]
    prefetch: int
    keep: int
    epoch: int

    def _init_order(
        self,
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
        """Checks a loader's arguments (``keep`` and ``prefetch`` size its buffer ring, each at
        most :data:`MAX_HELD` batches; ``threads`` is at most ``rico._rico.MAX_THREADS``) and
        sets them and the order's attributes; the first iteration takes epoch 0."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not (0 <= keep <= MAX_HELD and 1 <= prefetch <= MAX_HELD):
            raise ValueError(
                f"keep must be between 0 and {MAX_HELD} and prefetch between 1 and {MAX_HELD}"
                f" (each is a number of batches held in memory), not keep={keep},"
                f" prefetch={prefetch}"
            )
        # The engine's rule for every thread count (raises rico.UsageError outside it), checked
        # here so that the loader is refused when made, before any thread starts.
        _rico.thread_count(threads)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.threads, self.prefetch, self.keep = threads, prefetch, keep
        self.epoch = 0
        self._epoch_set, self._iterated = False, False
        # The last iteration started (None before the first), and a state loaded by
        # load_state_dict that the next iteration resumes (None when there is none).
        self._pass: Optional[_Pass] = None
        self._resume: Optional[dict[str, Any]] = None

    def _rows(self) -> int:
        """How many rows (keys) the loader draws from, every rank's."""
        raise NotImplementedError

    def _check_not_empty(self) -> None:
        """Raises ValueError, saying why, when an epoch would yield no batch on this rank."""
        rows = self._rows()
        if rows < self.world_size:
            raise ValueError(
                f"the loader would yield nothing: {rows} rows cannot be shared among"
                f" world_size={self.world_size} ranks (each rank gets rows // world_size)"
            )
        if len(self) == 0:
            raise ValueError(
                f"the loader would yield nothing: drop_last=True drops the only batch, of"
                f" {rows // self.world_size} rows per rank, smaller than batch_size="
                f"{self.batch_size}; lower batch_size or pass drop_last=False"
            )

    def _batches(self, positions: np.ndarray) -> Iterator[Any]:
        """The batches of ``positions`` (this rank's, in order), made as they are asked for."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds the next iteration's shuffle (without it, each iteration
        takes the epoch after the last one).

        After :meth:`load_state_dict`, ``set_epoch`` with the restored epoch keeps the
        restored position (the next iteration yields the rest of that epoch); another epoch
        starts that epoch from its beginning."""
        self.epoch = epoch
        self._epoch_set = True

    def _order(self, epoch: int) -> np.ndarray:
        """Every rank's positions of ``epoch``, in order, before the cut to equal parts."""
        n = self._rows()
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def indices(self) -> np.ndarray:
        """Positions (in ``keys``, or rows of the split) this rank visits this epoch, in order."""
        per_rank = self._rows() // self.world_size
        order = self._order(self.epoch)
        return order[: per_rank * self.world_size][self.rank :: self.world_size]

    def _next_head(self, n: int) -> np.ndarray:
        """This rank's first ``n`` positions of the epoch after the current one (the one the
        next iteration takes unless :meth:`set_epoch` chooses another): what a loader reads
        ahead while this epoch ends."""
        per_rank = self._rows() // self.world_size
        order = self._order(self.epoch + 1)
        return order[: per_rank * self.world_size][self.rank :: self.world_size][:n]

    def __len__(self) -> int:
        n = self._rows() // self.world_size
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        positions, state = self._begin()
        return self._track(self._batches(positions), state)

    def _start_epoch(self) -> np.ndarray:
        """The positions of the iteration that starts now: the epoch is chosen here, the one
        set, else the one after the last."""
        if self._iterated and not self._epoch_set:
            self.epoch += 1
        self._iterated, self._epoch_set = True, False
        return self.indices()

    def _begin(self) -> tuple[np.ndarray, _Pass]:
        """Starts an iteration: (this rank's positions, the record of the iteration). A state
        loaded and not yet used is resumed here, unless :meth:`set_epoch` chose another epoch
        (or, when nothing of its epoch is left, the next epoch starts)."""
        resume, self._resume = self._resume, None
        if resume is not None and self._epoch_set and self.epoch != resume["epoch"]:
            resume = None
        if resume is not None and not self._epoch_set and resume["finished"]:
            resume = None  # _start_epoch takes the next epoch: the restored one is done
        if resume is None:
            positions = self._start_epoch()
            length = self._rows() // self.world_size * self.world_size
            state = _Pass(self.epoch, 0, length, self.world_size, len(positions))
        else:
            self.epoch = resume["epoch"]
            self._iterated, self._epoch_set = True, False
            positions = self._remaining(resume)
            state = _Pass(
                self.epoch, resume["position"], resume["epoch_length"], self.world_size,
                len(positions), batches=resume["batches"],
            )  # fmt: skip
        self._pass = state
        return positions, state

    def _remaining(self, state: dict[str, Any]) -> np.ndarray:
        """This rank's part of what the epoch of ``state`` has left: the order from the state's
        position to the epoch's length, every world_size-th position from this rank."""
        left = self._order(state["epoch"])[state["position"] : state["epoch_length"]]
        per_rank = len(left) // self.world_size
        return left[: per_rank * self.world_size][self.rank :: self.world_size]

    def _track(self, batches: Iterable[T], state: _Pass) -> Iterator[T]:
        """``batches``, counting in ``state`` what was handed out (counted before each batch is
        handed out: a state taken while the caller holds batch k says k + 1 were yielded)."""
        for batch in batches:
            state.taken = min(state.taken + self.batch_size, state.size)
            state.batches += 1
            yield batch

    def _cut(self, positions: np.ndarray) -> int:
        """How many of ``positions`` are batched: all, or whole batches with ``drop_last``."""
        n = len(positions)
        return n - n % self.batch_size if self.drop_last else n

    # -- resuming ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Where this loader stands, as a dict of plain numbers (``torch.save``, JSON).

        ``epoch``: the epoch of the last iteration started (or of the next, before any);
        ``position``: how many samples of that epoch's order every rank together has
        yielded (the order is shared, so this is the same number on every rank, and any
        rank's state resumes every rank); ``epoch_length``: how many samples the epoch
        shows; ``seed``, ``shuffle``, ``rows``, ``world_size``, ``batch_size``, ``drop_last``,
        ``rank``: the loader's; ``batches``: batches this rank yielded in the epoch;
        ``started``: whether the epoch's iteration began.

        Taken while a batch is held (inside ``for batch in loader``), it counts that batch as
        yielded: the restored loader starts with the next one.

        >>> state = loader.state_dict()  # doctest: +SKIP
        >>> torch.save({"model": model.state_dict(), "loader": state}, "ckpt.pt")  # doctest: +SKIP
        """
        out: dict[str, Any] = {
            "version": STATE_VERSION,
            "seed": int(self.seed),
            "shuffle": bool(self.shuffle),
            "rows": int(self._rows()),
            "world_size": int(self.world_size),
            "rank": int(self.rank),
            "batch_size": int(self.batch_size),
            "drop_last": bool(self.drop_last),
        }
        resume = self._resume
        if resume is not None and not (self._epoch_set and self.epoch != resume["epoch"]):
            keep = ("epoch", "position", "epoch_length", "batches", "started")
            out.update({k: resume[k] for k in keep})
            return out
        p = self._pass
        if p is None or self._epoch_set:
            length = self._rows() // self.world_size * self.world_size
            out.update(epoch=int(self.epoch), position=0, epoch_length=length, batches=0)
            out["started"] = False
            return out
        out.update(
            epoch=int(p.epoch),
            position=int(p.position),
            epoch_length=int(p.length),
            batches=int(p.batches),
            started=True,
        )
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`: the next iteration yields exactly the batches of the
        state's epoch not yet yielded, in the same order, and reads none of the records before
        them; then epochs go on as before. The state's ``seed`` and ``shuffle`` are taken.

        Any rank's state resumes any rank (the position counts every rank's samples). With
        the world size of the state, each rank gets the batches it would have got. With
        another world size, the samples left in the epoch are split anew into equal parts,
        each sample seen exactly once across the ranks; when they do not split evenly
        (e.g. 6 samples left, 4 ranks) this raises ``ValueError`` (with ``drop_last``, only
        when some batch is left to yield). A different ``batch_size`` cuts what is left into
        batches of the new size.

        Raises:
            ValueError: the state is not a loader's, was taken over another number of rows,
                or what it leaves cannot be split evenly over this loader's ranks.
        """
        if not isinstance(state, dict) or "position" not in state or "epoch" not in state:
            raise ValueError(f"not a loader state (from state_dict()): {state!r}")
        if state.get("version", STATE_VERSION) > STATE_VERSION:
            raise ValueError(
                f"loader state version {state['version']} is newer than this rico reads "
                f"({STATE_VERSION}); upgrade rico"
            )
        rows = self._rows()
        if int(state["rows"]) != rows:
            raise ValueError(
                f"the loader state was taken over {state['rows']} rows, this loader has {rows}: "
                "the keys, the split or the database differ, so the order cannot be resumed"
            )
        epoch, position, length = (
            int(state["epoch"]),
            int(state["position"]),
            int(state["epoch_length"]),
        )
        if not 0 <= position <= length <= rows:
            raise ValueError(f"bad loader state: position {position}, epoch_length {length}")
        self.seed, self.shuffle = int(state["seed"]), bool(state["shuffle"])
        self.epoch, self._epoch_set = epoch, False
        self._pass = None
        if not state.get("started", True):
            self._iterated, self._resume = False, None
            return
        left, was = length - position, int(state["world_size"])
        per_rank = left // self.world_size
        batches = per_rank // self.batch_size if self.drop_last else -(-per_rank // self.batch_size)
        if left % self.world_size and (batches or not self.drop_last):
            divisors = [w for w in range(1, min(left, 64) + 1) if left % w == 0]
            raise ValueError(
                f"the loader state stopped at sample {position} of epoch {epoch}'s {length}, "
                f"on {was} rank(s); the {left} samples left do not split evenly over "
                f"{self.world_size} ranks, so resuming here would skip or repeat some. Resume on "
                f"a world size that divides {left} (e.g. {', '.join(map(str, divisors))}), or "
                f"on {was}; or skip the rest of the epoch: do not load this state, call "
                f"set_epoch({epoch + 1})"
            )
        self._iterated = True
        self._resume = {
            "epoch": epoch,
            "position": position,
            "epoch_length": length,
            "batches": int(state.get("batches", 0)),
            "started": True,
            "world_size": was,
            "finished": batches == 0,
        }
