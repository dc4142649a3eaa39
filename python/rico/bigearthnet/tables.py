"""BigEarthNet's fixed tables: the 19 classes and the CLC codes that map to them, the bands and
the band presets, ConfigILM's published statistics, the database's record layout."""

from __future__ import annotations

from collections.abc import Sequence
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
# ConfigILM 0.7.1, Hackel et al.), carried over as numbers. Band order: _STATS_ORDER.
_STATS_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "VV", "VH")  # fmt: skip
_BENV2_STATS: dict[tuple[int, str], tuple[tuple[float, ...], tuple[float, ...]]] = {
    (60, "nearest"): (
        (361.0767822265625, 438.3785400390625, 614.06201171875, 588.4111328125, 942.8433227539062, 1769.931640625, 2049.551513671875, 2193.331787109375, 2235.556640625, 2241.455322265625, 1568.226806640625, 997.7324829101562, -12.643914222717285, -19.35258674621582),
        (575.0687255859375, 607.0214233398438, 603.2854614257812, 684.5560302734375, 738.4326782226562, 1100.4560546875, 1275.805419921875, 1369.358154296875, 1356.5440673828125, 1316.393310546875, 1070.1612548828125, 813.5276489257812, 5.133487224578857, 5.590489864349365),
    ),
    (60, "bilinear"): (
        (360.7353820800781, 438.4760437011719, 614.1534423828125, 588.5079956054688, 942.8433227539062, 1769.931640625, 2049.551513671875, 2193.369384765625, 2235.556640625, 2241.177978515625, 1568.226806640625, 997.7324829101562, -12.643946647644043, -19.352697372436523),
        (563.8627319335938, 602.119140625, 597.8518676757812, 678.4979858398438, 738.4326782226562, 1100.4560546875, 1275.805419921875, 1359.0667724609375, 1356.5440673828125, 1294.6435546875, 1070.1612548828125, 813.5276489257812, 5.045091152191162, 5.482285022735596),
    ),
    (120, "nearest"): (
        (361.0767822265625, 438.3720703125, 614.0556640625, 588.4096069335938, 942.8433227539062, 1769.931640625, 2049.551513671875, 2193.2919921875, 2235.556640625, 2241.455322265625, 1568.226806640625, 997.7324829101562, -12.643863677978516, -19.352558135986328),
        (575.0687255859375, 607.02685546875, 603.2968139648438, 684.56884765625, 738.4326782226562, 1100.4560546875, 1275.805419921875, 1369.3717041015625, 1356.5440673828125, 1316.393310546875, 1070.1612548828125, 813.5276489257812, 5.133493900299072, 5.590505599975586),
    ),
    (120, "bilinear"): (
        (360.64678955078125, 438.3720703125, 614.0556640625, 588.4096069335938, 942.7476806640625, 1769.8486328125, 2049.475830078125, 2193.2919921875, 2235.48681640625, 2241.10595703125, 1568.2115478515625, 997.715087890625, -12.643863677978516, -19.352558135986328),
        (563.1734008789062, 607.02685546875, 603.2968139648438, 684.56884765625, 727.5784301757812, 1087.4288330078125, 1261.4302978515625, 1369.3717041015625, 1342.490478515625, 1294.35546875, 1063.9197998046875, 806.8846435546875, 5.133493900299072, 5.590505599975586),
    ),
    (128, "nearest"): (
        (361.0660705566406, 438.385009765625, 614.0690307617188, 588.4198608398438, 942.854248046875, 1769.951904296875, 2049.574951171875, 2193.320556640625, 2235.580810546875, 2241.467529296875, 1568.229736328125, 997.7351684570312, -12.643890380859375, -19.352603912353516),
        (575.0419311523438, 607.0984497070312, 603.3590087890625, 684.6243896484375, 738.4649047851562, 1100.47900390625, 1275.8310546875, 1369.4029541015625, 1356.568359375, 1316.40380859375, 1070.170166015625, 813.5411376953125, 5.133439540863037, 5.590465068817139),
    ),
    (128, "bilinear"): (
        (360.64117431640625, 438.366455078125, 614.0504150390625, 588.4042358398438, 942.7412719726562, 1769.84326171875, 2049.470703125, 2193.288330078125, 2235.482177734375, 2241.1015625, 1568.2103271484375, 997.7136840820312, -12.643857955932617, -19.352550506591797),
        (563.1304931640625, 601.334716796875, 597.1731567382812, 677.864990234375, 727.5227661132812, 1087.3963623046875, 1261.40380859375, 1358.791015625, 1342.467529296875, 1294.337646484375, 1063.9158935546875, 806.8798217773438, 5.044347763061523, 5.481307506561279),
    ),
}  # fmt: skip

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
