"""``rico.stats``: exact per-band statistics of a BigEarthNet split, for ``normalize=``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional, Union

from .. import _rico
from .dataset import BigEarthNet, PathLike
from .tables import resolve_bands


def stats(
    db: PathLike,
    bands: Union[str, int, Sequence[str]] = "ALL",
    metadata: Optional[PathLike] = "metadata.parquet",
    split: Optional[str] = "train",
    include_snow_cloud: bool = False,
    size: Optional[int] = None,
    resample: str = "nearest",
    out: Optional[PathLike] = None,
    threads: Optional[int] = None,
) -> dict:
    """Exact per-band mean and standard deviation (float64, population) over a split, written
    as JSON beside the database (``<db>.stats.json``, or ``out``) for
    ``BigEarthNet(normalize=...)``; what ``rico stats`` does.

    The split's rows are those :class:`BigEarthNet` takes (snow and cloud left out unless
    ``include_snow_cloud``): S2 bands over their ``patch_id`` records, S1 bands over their
    ``s1_name`` records. ``metadata=None``: every record of the database. ``size``: resample
    first, as batches do (default: the stored values, which nearest upsampling by whole factors
    does not change).

    Returns the JSON document: ``{"bands": {band: {"mean", "std", "count", ...}}, ...}``.

    >>> doc = rico.stats("BigEarthNet.lmdb", bands="S2", split="train")  # doctest: +SKIP
    >>> doc["bands"]["B02"]["mean"]  # doctest: +SKIP
    438.37...
    """
    band_list = resolve_bands(bands)
    keys: Optional[list[str]] = None
    if metadata is not None:
        ben = BigEarthNet(
            db, metadata=metadata, split=split, bands=band_list,
            include_snow_cloud=include_snow_cloud, masks=False,
        )  # fmt: skip
        keys = ben._band_records()
        split = ben.split
    target = os.fspath(out) if out is not None else os.fspath(db).rstrip("/\\") + ".stats.json"
    return dict(
        _rico.stats(
            os.fspath(db), band_list, keys, size, resample, threads, target,
            split if metadata is not None else None,
        )
    )  # fmt: skip
