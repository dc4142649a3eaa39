"""BigEarthNet's fixed tables: the 19 classes and the CLC codes that map to them, the bands and
the band presets, ConfigILM's published statistics, the database's record layout."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .._rico import UsageError

#: The 19 classes of BigEarthNet's nomenclature, in its order (Sumbul et al., "BigEarthNet
#: Deep Learning Models with A New Class-Nomenclature for Remote Sensing Image
#: Understanding", 2020; the order of ``label_indices.json`` of BigEarthNet's 19-class models).
CLASSES: tuple[str, ...] = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)

#: CORINE Land Cover level-3 code -> index in :data:`CLASSES`: BigEarthNet's official 43-to-19
#: conversion (``label_conversion`` in ``label_indices.json`` of the BigEarthNet 19-class models,
#: Sumbul et al. 2020), written with the CLC codes of the 43 classes. The other CLC codes
#: (122-124, 131-133, 141, 142, 332, 334, 335, 423) have no class: masks hold 255 there.
CLC_TO_CLASS: dict[int, int] = {
    111: 0, 112: 0,  # continuous, discontinuous urban fabric
    121: 1,
    211: 2, 212: 2, 213: 2,  # non-irrigated, permanently irrigated arable land; rice fields
    221: 3, 222: 3, 223: 3, 241: 3,  # vineyards, fruit trees, olive groves, annual+permanent crops
    231: 4,
    242: 5,
    243: 6,
    244: 7,
    311: 8,
    312: 9,
    313: 10,
    321: 11, 333: 11,  # natural grassland; sparsely vegetated areas
    322: 12, 323: 12,  # moors and heathland; sclerophyllous vegetation
    324: 13,
    331: 14,
    411: 15, 412: 15,  # inland marshes, peatbogs
    421: 16, 422: 16,  # salt marshes, salines
    511: 17, 512: 17,  # water courses, water bodies
    521: 18, 522: 18, 523: 18,  # coastal lagoons, estuaries, sea and ocean
}  # fmt: skip

#: The mask value of pixels whose CLC code has no class (an ignore index for the loss).
IGNORE_INDEX = 255

S1_BANDS: tuple[str, ...] = ("VH", "VV")
#: ConfigILM's S2 order (lexicographic: B8A last).
S2_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B11", "B12", "B8A",
)  # fmt: skip

_TEN = ["B02", "B03", "B04", "B08", "B05", "B06", "B07", "B11", "B12", "B8A"]
#: Named band stacks: ConfigILM's ``STANDARD_BANDS`` (configilm/extra/BENv2_utils.py).
BAND_PRESETS: dict[Union[str, int], list[str]] = {
    "S1": list(S1_BANDS),
    "S2": list(S2_BANDS),
    "ALL": list(S2_BANDS) + list(S1_BANDS),
    "RGB": ["B04", "B03", "B02"],
    "10m": ["B02", "B03", "B04", "B08"],
    "20m": ["B05", "B06", "B07", "B11", "B12", "B8A"],
    "60m": ["B01", "B09"],
    2: list(S1_BANDS),
    3: ["B04", "B03", "B02"],
    4: ["B04", "B03", "B02", "B08"],
    10: _TEN,
    12: _TEN + list(S1_BANDS),
}

# Published train-split statistics of BigEarthNet v2 (S1 figures from v1), per image size and
# upsampling mode: ConfigILM's ``means`` and ``stds`` tables (configilm/extra/BENv2_utils.py,
# ConfigILM 0.7.1, Hackel et al.), carried over as numbers into benv2_stats.json (band order:
# its "bands"; key: "<size> <resample>").
_PUBLISHED = json.loads((Path(__file__).parent / "benv2_stats.json").read_text())
_STATS_ORDER: list[str] = _PUBLISHED["bands"]
_BENV2_STATS: dict[tuple[int, str], tuple[list[float], list[float]]] = {}
for _key, _table in _PUBLISHED["stats"].items():
    _size, _resample = _key.split(" ")
    _BENV2_STATS[(int(_size), _resample)] = (_table["mean"], _table["std"])

#: The names ``split=`` takes -> the ``split`` value of metadata.parquet.
SPLITS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
#: A patch's reference map is the record ``<patch_id>_reference_map``, band ``Data``.
MAP_SUFFIX = "_reference_map"
MAP_BAND = "Data"

# CLC code (as stored in the reference maps: uint16) -> class index or IGNORE_INDEX.
MASK_LUT = np.full(1 << 16, IGNORE_INDEX, dtype=np.uint8)
for _code, _index in CLC_TO_CLASS.items():
    MASK_LUT[_code] = _index


def resolve_bands(bands: Union[str, int, Sequence[str]]) -> list[str]:
    """The band list of a preset name (see :mod:`rico.bigearthnet`) or of a list of band names.

    >>> resolve_bands("RGB")
    ['B04', 'B03', 'B02']
    >>> resolve_bands(12)[-2:]
    ['VH', 'VV']
    """
    if isinstance(bands, (str, int)):
        if bands in BAND_PRESETS:
            return list(BAND_PRESETS[bands])
        if isinstance(bands, str) and bands in S1_BANDS + S2_BANDS:
            return [bands]
        names = ", ".join(repr(k) for k in BAND_PRESETS)
        raise UsageError(
            f"unknown band preset {bands!r}; use a list of band names or one of {names}"
        )
    out = [str(b) for b in bands]
    unknown = [b for b in out if b not in S1_BANDS + S2_BANDS]
    if unknown:
        raise UsageError(
            f"unknown BigEarthNet band(s) {', '.join(unknown)}; the bands are "
            f"{' '.join(S2_BANDS)} (S2) and {' '.join(S1_BANDS)} (S1)"
        )
    if not out:
        raise UsageError("no band given")
    return out


def published_stats(
    bands: Sequence[str], size: int = 120, resample: str = "nearest"
) -> tuple[list[float], list[float]]:
    """ConfigILM's published train-split mean and std of ``bands`` at ``size`` and ``resample``.

    >>> mean, std = published_stats(["B02"], 120, "nearest")
    >>> round(mean[0], 3), round(std[0], 3)
    (438.372, 607.027)
    """
    table = _BENV2_STATS.get((int(size), resample))
    if table is None:
        have = ", ".join(f"size={s} {r}" for s, r in _BENV2_STATS)
        raise UsageError(
            f"no published BigEarthNet v2 statistics for size={size} {resample}; they exist for {have}. "
            "Compute your own with `rico stats` (or rico.stats) and pass the file as normalize="
        )
    means, stds = table
    pos = [_STATS_ORDER.index(b) for b in bands]
    return [means[p] for p in pos], [stds[p] for p in pos]


def to_classes(codes: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Reference-map codes (``(N, 1, size, size)`` float32) as class indices (:data:`MASK_LUT`),
    into ``out[:N]`` when given.

    >>> to_classes(np.array([[[[111.0, 0.0]]]], dtype=np.float32)).tolist()
    [[[0, 255]]]
    """
    # float32 holds every uint16 code exactly; the table maps all 65536 of them.
    index = codes[:, 0].astype(np.uint16)
    if out is None:
        return MASK_LUT[index]
    return np.take(MASK_LUT, index, out=out[: len(index)])
