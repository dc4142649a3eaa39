"""BigEarthNet v2 (reBEN) straight from a converted database: labels, splits, S1+S2 pairs and
reference maps from the dataset's ``metadata.parquet``, pixels from the database.

    import rico

    ben = rico.BigEarthNet("BigEarthNet.lmdb", metadata="metadata.parquet", split="train",
                           bands="ALL", size=120, normalize="bigearthnet-v2")
    sample = ben[0]          # {"image": (14, 120, 120) float32, "label": (19,) float32,
                             #  "mask": (120, 120) uint8, "key": patch_id}
    for batch in ben.loader(batch_size=64, shuffle=True, seed=0):
        ...                  # the same keys, with a leading batch axis

Needs ``pyarrow`` for the Parquet table: ``pip install rico-eo[bigearthnet]``.

Band presets (``bands=`` a name or a list of band names), ConfigILM's combinations, so that its
users get the same stacks in the same channel order:

=========  ==============================================================
``"S1"``   VH VV
``"S2"``   B01 B02 B03 B04 B05 B06 B07 B08 B09 B11 B12 B8A
``"ALL"``  S2 then S1 (14 bands)
``"RGB"``  B04 B03 B02 (also ``3``)
``4``      B04 B03 B02 B08
``"10m"``  B02 B03 B04 B08
``"20m"``  B05 B06 B07 B11 B12 B8A
``"60m"``  B01 B09
``10``     B02 B03 B04 B08 B05 B06 B07 B11 B12 B8A
``12``     the 10 above, then VH VV
``2``      VH VV
=========  ==============================================================

One module per job: :mod:`~rico.bigearthnet.tables` (classes, CLC codes, bands, presets,
published statistics), :mod:`~rico.bigearthnet.metadata` (the Parquet table),
:mod:`~rico.bigearthnet.normalization` (``normalize=``), :mod:`~rico.bigearthnet.dataset`
(:class:`BigEarthNet`), :mod:`~rico.bigearthnet.loader` (its loader),
:mod:`~rico.bigearthnet.band_stats` (:func:`rico.stats`), :mod:`~rico.bigearthnet.checks` (the
checks of its arguments, table and statistics, and their errors).
"""

from __future__ import annotations

from .band_stats import stats
from .checks import InputTypeError, InputValueError
from .dataset import BigEarthNet, PathLike
from .loader import BigEarthNetLoader
from .normalization import Normalize
from .tables import (
    BAND_PRESETS,
    CLASSES,
    CLC_TO_CLASS,
    IGNORE_INDEX,
    S1_BANDS,
    S2_BANDS,
    published_stats,
    resolve_bands,
)

__all__ = [
    "BAND_PRESETS",
    "CLASSES",
    "CLC_TO_CLASS",
    "IGNORE_INDEX",
    "S1_BANDS",
    "S2_BANDS",
    "BigEarthNet",
    "BigEarthNetLoader",
    "InputTypeError",
    "InputValueError",
    "Normalize",
    "PathLike",
    "published_stats",
    "resolve_bands",
    "stats",
]
