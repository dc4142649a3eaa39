"""What ``BigEarthNet(normalize=...)`` takes: the published statistics, a ``rico stats`` file,
or the numbers themselves, as one mean and std per band."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Optional, Union

from .._rico import UsageError
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
        path = os.fspath(normalize)
        try:
            with open(path) as f:
                doc = json.load(f)
            per_band = doc["bands"]
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
        return [float(per_band[b]["mean"]) for b in bands], [
            float(per_band[b]["std"]) for b in bands
        ]
    if isinstance(normalize, dict):
        mean, std = normalize.get("mean"), normalize.get("std")
    else:
        mean, std = normalize
    mean, std = [float(m) for m in mean], [float(s) for s in std]  # type: ignore[union-attr]
    if len(mean) != len(bands) or len(std) != len(bands):
        raise UsageError(
            f"normalize has {len(mean)} means and {len(std)} stds for {len(bands)} bands; give one per band"
        )
    return mean, std
