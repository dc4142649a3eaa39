"""What ``BigEarthNet(normalize=...)`` takes: the published statistics, a ``rico stats`` file,
or the numbers themselves, as one mean and std per band."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Optional, Union

from .._rico import UsageError
from .checks import InputTypeError, InputValueError, finite_number, finite_numbers
from .tables import published_stats

Normalize = Union[None, str, "os.PathLike[str]", tuple, dict]


def normalization(
    normalize: Normalize, bands: Sequence[str], size: int, resample: str
) -> tuple[Optional[list[float]], Optional[list[float]]]:
    """(mean, std) of ``bands`` that ``normalize`` gives, one value per band; ``(None, None)``
    for raw values. ``size`` and ``resample`` choose the published table of ``"bigearthnet-v2"``.

    >>> normalization({"mean": [1, 2], "std": [3, 4]}, ["B02", "B03"], 120, "nearest")
    ([1.0, 2.0], [3.0, 4.0])
    """
    if normalize is None:
        return None, None
    if isinstance(normalize, str) and normalize == "bigearthnet-v2":
        return published_stats(bands, size, resample)
    if isinstance(normalize, (str, os.PathLike)):
        return from_file(os.fspath(normalize), bands)
    if isinstance(normalize, dict):
        missing = [k for k in ("mean", "std") if k not in normalize]
        if missing:
            raise InputValueError(
                f"normalize={{...}} has no {' and no '.join(repr(k) for k in missing)}; give "
                '{"mean": [...], "std": [...]} with one number per band'
            )
        mean, std = normalize["mean"], normalize["std"]
    elif isinstance(normalize, (tuple, list)) and len(normalize) == 2:
        mean, std = normalize
    else:
        raise InputTypeError(
            f'normalize must be None, "bigearthnet-v2", the path of a `rico stats` file, '
            f'(mean, std) or {{"mean": [...], "std": [...]}} with one number per band, '
            f"not {normalize!r}"
        )
    where = f"normalize (bands {', '.join(bands)})"
    return (
        finite_numbers(mean, "mean", len(bands), where),
        finite_numbers(std, "std", len(bands), where),
    )


def from_file(path: str, bands: Sequence[str]) -> tuple[list[float], list[float]]:
    """(mean, std) of ``bands`` from a ``rico stats`` JSON file."""
    try:
        with open(path) as f:
            doc = json.load(f)
        per_band = doc["bands"]
        if not isinstance(per_band, dict):
            raise TypeError(f'"bands" is a {type(per_band).__name__}, not an object')
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(
            f"cannot read normalization statistics from {path} ({e}); give a file written "
            'by `rico stats`, "bigearthnet-v2", or (mean, std)'
        ) from None
    missing = [b for b in bands if b not in per_band]
    if missing:
        raise UsageError(
            f"{path} has no statistics for band(s) {', '.join(missing)}; "
            f"run `rico stats` with --bands {' '.join(bands)}"
        )
    mean, std = [], []
    for b in bands:
        entry = per_band[b]
        for key, out in (("mean", mean), ("std", std)):
            if not isinstance(entry, dict) or key not in entry:
                raise InputValueError(
                    f"{path}: band {b} has no {key!r}; run `rico stats` again to write the file"
                )
            out.append(finite_number(entry[key], f"{b} {key}", path, positive=key == "std"))
    return mean, std
