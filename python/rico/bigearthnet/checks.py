"""Checks of what :class:`rico.BigEarthNet` is given (its arguments, the columns of its table,
the numbers of its statistics), each failing with an error that names the argument, the file
and column, or the band, and says what to give instead."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, Optional

from .. import _rico
from .._rico import UsageError

#: The largest ``size`` a batch takes (as :meth:`rico.Dataset.batch`).
MAX_SIZE: int = _rico.MAX_SIZE


class InputValueError(UsageError, ValueError):
    """A bad value given to :class:`rico.BigEarthNet` (an argument, a row of its table, a number
    of its statistics): a :class:`rico.UsageError` that is also a ``ValueError``."""


class InputTypeError(UsageError, TypeError):
    """A value of the wrong type given to :class:`rico.BigEarthNet` (an argument, a column of its
    table, a number of its statistics): a :class:`rico.UsageError` that is also a ``TypeError``."""


def check_size(size: Any) -> int:
    """``size`` as an int of 1 to :data:`MAX_SIZE` pixels; an error naming ``size`` otherwise.

    >>> check_size(120)
    120
    >>> check_size(120.7)
    Traceback (most recent call last):
    ...
    rico.bigearthnet.checks.InputTypeError: size must be a whole number of pixels (1 to 65536), not 120.7
    """
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise InputTypeError(
            f"size must be a whole number of pixels (1 to {MAX_SIZE}), not {size!r}"
        )
    if not 1 <= int(size) <= MAX_SIZE:
        raise InputValueError(f"size must be between 1 and {MAX_SIZE} pixels, not {size}")
    return int(size)


def check_threads(threads: Optional[int]) -> Optional[int]:
    """``threads`` unchanged when rico takes it (1 to ``rico._rico.MAX_THREADS``, or None for
    one per core); the engine's :class:`rico.UsageError` otherwise, before any thread starts."""
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
            raise InputTypeError(f"threads must be a whole number or None, not {threads!r}")
        _rico.thread_count(int(threads))
    return threads


def finite_numbers(values: Any, what: str, count: int, where: str) -> list[float]:
    """``values`` as ``count`` finite floats (a std also above 0), or an error naming ``what``
    (``"mean"`` or ``"std"``) and ``where`` they came from.

    >>> finite_numbers([1, 2.5], "mean", 2, "normalize")
    [1.0, 2.5]
    """
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
        raise InputTypeError(
            f"{where}: {what} must be a list of {count} numbers, one per band, not {values!r}"
        )
    values = list(values)
    if len(values) != count:
        raise InputValueError(
            f"{where}: {what} has {len(values)} values for {count} bands; give one per band"
        )
    out = []
    for i, v in enumerate(values):
        out.append(finite_number(v, f"{what}[{i}]", where, positive=what == "std"))
    return out


def finite_number(value: Any, what: str, where: str, positive: bool = False) -> float:
    """``value`` as a finite float (above 0 with ``positive``), or an error naming ``what`` and
    ``where`` it came from."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{where}: {what} must be a number, not {value!r}")
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0):
        need = "a finite number above 0" if positive else "a finite number"
        raise InputValueError(f"{where}: {what} must be {need}, not {v!r}")
    return v
