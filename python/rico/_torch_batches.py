"""The torch side every torch loader shares (:class:`rico.torch.Loader`,
:class:`rico.torch.BigEarthNetLoader`): numpy batches as tensors, pinned and moved in a
background thread when asked, and the rank and world size of ``torch.distributed``."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, Optional, Union

import numpy as np
import torch


def distributed() -> tuple[int, int]:
    """(rank, world_size) of the default process group, or (0, 1) without one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_and_world(rank: Optional[int], world_size: Optional[int]) -> tuple[int, int]:
    """``rank`` and ``world_size``, each defaulting to the process group's."""
    if rank is None or world_size is None:
        d_rank, d_world = distributed()
        rank = d_rank if rank is None else rank
        world_size = d_world if world_size is None else world_size
    return rank, world_size


class TorchBatches:
    """Batches of a numpy loader (:class:`rico.Loader`, a BigEarthNet loader) as torch tensors,
    pinned and moved in a background thread when asked; its order, epochs and resume state."""

    loader: Any
    pin_memory: bool
    prefetch: int
    device: Optional[torch.device]

    def _init_torch(
        self, pin_memory: bool, prefetch: int, device: Optional[Union[str, torch.device]]
    ) -> None:
        if pin_memory and not torch.cuda.is_available():
            raise ValueError("pin_memory=True needs a CUDA device; torch sees none")
        self.pin_memory, self.prefetch = pin_memory, prefetch
        self.device = None if device is None else torch.device(device)

    @property
    def epoch(self) -> int:
        return self.loader.epoch

    def set_epoch(self, epoch: int) -> None:
        """Seed the next iteration's shuffle with ``epoch`` (as ``DistributedSampler``)."""
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def state_dict(self) -> dict[str, Any]:
        """Where the loader stands: epoch, seed, position in the epoch, world size (see
        :meth:`rico.Loader.state_dict`). Batches pinned ahead in the background are not
        counted as yielded. Save it with the model's checkpoint."""
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`: the next iteration yields exactly the batches not
        yet yielded (see :meth:`rico.Loader.load_state_dict`)."""
        self.loader.load_state_dict(state)

    def _to_torch(self, item: Any) -> Any:
        if isinstance(item, tuple):
            return tuple(self._to_torch(i) for i in item)
        if isinstance(item, dict):
            return {k: self._to_torch(v) for k, v in item.items()}
        if not isinstance(item, np.ndarray):
            return item  # e.g. the keys of a batch
        t = torch.from_numpy(item)
        if self.pin_memory:
            t = t.pin_memory()
        if self.device is not None:
            t = t.to(self.device, non_blocking=self.pin_memory)
        return t

    def __iter__(self) -> Iterator[Any]:
        # The epoch is chosen here, not at the first batch. Batches are counted as yielded
        # where they are handed out, after the pinning thread: a state taken then is exact.
        positions, state = self.loader._begin()
        batches = self.loader._batches(positions)
        out = self._pinned(batches) if self.pin_memory else map(self._to_torch, batches)
        return self.loader._track(out, state)

    def _pinned(self, batches: Iterator[Any]) -> Iterator[Any]:
        """Pins (and moves) batches in a background thread, ``prefetch`` ahead."""
        done = object()
        out: queue.Queue = queue.Queue(max(1, self.prefetch))
        stop = threading.Event()

        def work() -> None:
            try:
                for b in batches:
                    if stop.is_set():
                        return
                    out.put(self._to_torch(b))
                out.put(done)
            except BaseException as e:  # handed to the consumer, raised there
                out.put(e)

        thread = threading.Thread(target=work, name="rico-pin", daemon=True)
        thread.start()
        try:
            while True:
                item = out.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a producer waiting on a full queue
                try:
                    out.get_nowait()
                except queue.Empty:
                    thread.join(0.01)
