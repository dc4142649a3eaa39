"""What must not cross a fork: one value per process (:class:`PerProcess`), such as an open
database (an LMDB environment is per process) or a loader's batch ring and the Rust thread
filling it (:class:`Feed`: the thread stays in the parent)."""

from __future__ import annotations

import os
from typing import Any, Callable, Generic, Optional, TypeVar, Union

from . import _rico

T = TypeVar("T")
Key = Union[str, bytes]


class PerProcess(Generic[T]):
    """``make()``'s value, one per process: made on first use (or given as ``value``, this
    process's), and made again in a forked child, which drops its copy of the parent's first
    (freeing the descriptors it inherited: under a tight ``ulimit -n`` the new one needs them).
    Pickles without its value, so that each process makes its own; ``make`` must pickle
    (a class or a ``functools.partial``, not a lambda).

    >>> import functools
    >>> handle = PerProcess(functools.partial(list, "ab"))
    >>> handle.get(), handle.get() is handle.get()
    (['a', 'b'], True)
    """

    def __init__(self, make: Callable[[], T], value: Optional[T] = None) -> None:
        self._make = make
        self._value = value
        self._pid = None if value is None else os.getpid()

    def get(self) -> T:
        """This process's value, made now if it has none yet."""
        if self._value is None or self._pid != os.getpid():
            self._value = None  # a forked child's copy of the parent's, dropped first
            self._value, self._pid = self._make(), os.getpid()
        return self._value

    def __getstate__(self) -> dict[str, Any]:
        return {"_make": self._make, "_value": None, "_pid": None}


class Feed:
    """A loader's batch memory: rico-core's ring of ``slots`` reused buffers (kept across
    epochs, so that the last batches of one stay valid into the next), and the prefetcher of
    the iteration filling it. Hold one in a :class:`PerProcess`: a forked child makes its own."""

    def __init__(self, slots: int) -> None:
        self.ring = _rico.BatchRing(slots)
        self.running: Optional[_rico.Prefetcher] = None

    def start(
        self, db: _rico.Database, batches: list[list[Key]], bands: list[str], **options: Any
    ) -> _rico.Prefetcher:
        """Starts a :class:`rico._rico.Prefetcher` of ``batches`` into the ring (``options``
        are its other arguments), after stopping the one an earlier, unfinished iteration left
        running: its thread must stop writing into the ring."""
        if self.running is not None:
            self.running.close()
        self.running = _rico.Prefetcher(db, batches, bands, ring=self.ring, **options)
        return self.running
