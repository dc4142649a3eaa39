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
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any, Optional, Union

import numpy as np

from . import _rico
from ._rico import UsageError
from .dataset import Dataset

PathLike = Union[str, "os.PathLike[str]"]

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

_SPLITS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
_MAP_SUFFIX = "_reference_map"
_MAP_BAND = "Data"

# CLC code (as stored in the reference maps: uint16) -> class index or IGNORE_INDEX.
_MASK_LUT = np.full(1 << 16, IGNORE_INDEX, dtype=np.uint8)
for _code, _index in CLC_TO_CLASS.items():
    _MASK_LUT[_code] = _index

Normalize = Union[None, str, "os.PathLike[str]", tuple, dict]


def _is_range(group: list[tuple[int, str]]) -> bool:
    """True when the group's channels are consecutive, in order."""
    channels = [c for c, _ in group]
    return channels == list(range(channels[0], channels[0] + len(channels)))


def resolve_bands(bands: Union[str, int, Sequence[str]]) -> list[str]:
    """The band list of a preset name (see the module's table) or of a list of band names.

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


def _read_metadata(path: str, columns: list[str]) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(
            "rico.BigEarthNet reads metadata.parquet with pyarrow, which is not installed: "
            "pip install 'rico-eo[bigearthnet]' (or pip install pyarrow)"
        ) from None
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no metadata table at {path}: give metadata= the path of BigEarthNet v2's metadata.parquet"
        )
    schema = pq.read_schema(path)
    for column in columns:
        if column not in schema.names:
            raise UsageError(
                f"{path} has no column {column!r}; BigEarthNet v2's metadata.parquet has patch_id, "
                f"labels, split, country, s1_name, contains_seasonal_snow, contains_cloud_or_shadow "
                f"(this table has {', '.join(schema.names)})"
            )
    return pq.read_table(path, columns=columns)


def _bool_column(table: Any, name: str) -> np.ndarray:
    return np.asarray(
        table.column(name).fill_null(False).to_numpy(zero_copy_only=False), dtype=bool
    )


def _multi_hot(table: Any, classes: Sequence[str], path: str) -> np.ndarray:
    """The (rows, classes) float32 multi-hot of the ``labels`` list column, vectorised."""
    import pyarrow.compute as pc

    column = table.column("labels").combine_chunks()
    out = np.zeros((len(column), len(classes)), dtype=np.float32)
    names = pc.list_flatten(column)
    parents = pc.list_parent_indices(column).to_numpy()
    encoded = names.dictionary_encode()
    index = {c: i for i, c in enumerate(classes)}
    vocabulary = encoded.dictionary.to_pylist()
    for position, name in enumerate(vocabulary):
        if name not in index:
            row = int(parents[np.flatnonzero(encoded.indices.to_numpy() == position)[0]])
            raise UsageError(
                f"unknown label {name!r} (patch {table.column('patch_id')[row].as_py()}) in {path}; "
                f"the labels are BigEarthNet's 19 classes: {'; '.join(CLASSES)}"
            )
    codes = np.array([index[n] for n in vocabulary], dtype=np.int64)
    out[parents, codes[encoded.indices.to_numpy()]] = 1.0
    return out


class BigEarthNet:
    """One split of BigEarthNet v2 from a converted database and its ``metadata.parquet``.

    Rows are the table's rows of ``split``, in table order, without the patches marked as
    seasonal snow or cloud/shadow (the reBEN paper's recommendation) unless
    ``include_snow_cloud``. ``ben[i]`` is a dict:

    - ``"image"``: float32 ``(C, size, size)``: S2 bands from the row's ``patch_id`` record,
      S1 bands (VV, VH) from its ``s1_name`` record, in the order of ``bands``;
    - ``"label"``: float32 ``(19,)`` multi-hot in the order of ``ben.classes``;
    - ``"mask"``: uint8 ``(size, size)``: the reference map (record ``<patch_id>_reference_map``,
      band ``Data``) with CLC codes mapped to class indices by :data:`CLC_TO_CLASS`, 255 elsewhere
      (only when the database holds reference maps, or ``masks=True``);
    - ``"key"``: the ``patch_id``.

    Args:
        db: a database converted by rico or rico-hdl (``rico bigearthnet ...``), path or
            :class:`rico.Dataset`.
        metadata: BigEarthNet v2's ``metadata.parquet``; a relative path not found from the
            working directory is looked up beside the database.
        split: ``"train"``, ``"validation"`` (or ``"val"``), ``"test"``; ``None`` = every row.
        bands: a preset name (see the module's table: ``"S1"``, ``"S2"``, ``"ALL"``, ``"RGB"``,
            ``"10m"``, ``"20m"``, ``"60m"``, ``10``, ``12``, ...) or a list of band names.
        size: every band is resampled to ``size x size`` (the masks too, nearest).
        resample: ``"nearest"`` (whole factors: repetition) or ``"bilinear"`` (torch's
            ``align_corners=True``, ConfigILM's convention).
        normalize: ``None`` (raw values); ``"bigearthnet-v2"`` (ConfigILM's published train-split
            statistics at ``size`` and ``resample``); the path of a ``rico stats`` JSON file;
            or ``(mean, std)`` / ``{"mean": [...], "std": [...]}``, one value per band.
        include_snow_cloud: keep the patches marked as snow or cloud/shadow.
        label_order: ``"nomenclature"`` (:data:`CLASSES`, the default) or ``"lexicographic"``
            (sorted: ConfigILM's default order).
        masks: ``None`` = when the database holds the first row's reference map; ``True``
            requires them; ``False`` leaves them out.
        on_missing: ``"raise"`` (default): a ``patch_id``, ``s1_name`` or reference map missing
            from the database is an error naming it; ``"drop"``: such rows are left out
            (``ben.dropped`` lists their ``patch_id``).
        threads: threads for batches (default: one per core).

    Raises:
        rico.UsageError: a missing column, an unknown label or band, a split that selects no
            row, a key missing from the database (with ``on_missing="raise"``).
        ImportError: pyarrow is not installed (``pip install 'rico-eo[bigearthnet]'``).

    >>> ben = rico.BigEarthNet("BigEarthNet.lmdb", split="val", bands="RGB")  # doctest: +SKIP
    >>> ben[0]["image"].shape, ben.classes[0]  # doctest: +SKIP
    ((3, 120, 120), 'Urban fabric')
    """

    #: The 19 classes in the nomenclature's order; ``ben.classes`` is the order in use.
    classes: tuple[str, ...] = CLASSES

    def __init__(
        self,
        db: Union[PathLike, Dataset],
        metadata: PathLike = "metadata.parquet",
        split: Optional[str] = "train",
        bands: Union[str, int, Sequence[str]] = "ALL",
        size: int = 120,
        resample: str = "nearest",
        normalize: Normalize = None,
        include_snow_cloud: bool = False,
        label_order: str = "nomenclature",
        masks: Optional[bool] = None,
        on_missing: str = "raise",
        threads: Optional[int] = None,
    ) -> None:
        if isinstance(db, Dataset):
            self.path = db.path
            self._ds: Optional[Dataset] = db
        else:
            self.path = os.fspath(db)
            self._ds = None
        self._pid: Optional[int] = os.getpid() if self._ds is not None else None
        self.bands = resolve_bands(bands)
        if resample not in ("nearest", "bilinear"):
            raise UsageError(f'unknown resample {resample!r}; use "nearest" or "bilinear"')
        if on_missing not in ("raise", "drop"):
            raise UsageError(f'on_missing must be "raise" or "drop", not {on_missing!r}')
        self.size, self.resample, self.threads = int(size), resample, threads
        if label_order == "nomenclature":
            self.classes = CLASSES
        elif label_order == "lexicographic":
            self.classes = tuple(sorted(CLASSES))
        else:
            raise UsageError(
                f'label_order must be "nomenclature" or "lexicographic", not {label_order!r}'
            )
        if split is not None and split not in _SPLITS:
            raise UsageError(
                f"unknown split {split!r}; use train, validation (or val), test, or None for all rows"
            )
        self.split = None if split is None else _SPLITS[split]
        self.mean, self.std = self._normalization(normalize)

        # Channel positions of each sensor's bands: one batch per sensor, then one interleave.
        self._s2 = [(c, b) for c, b in enumerate(self.bands) if b in S2_BANDS]
        self._s1 = [(c, b) for c, b in enumerate(self.bands) if b in S1_BANDS]

        self.metadata = self._find_metadata(os.fspath(metadata))
        columns = ["patch_id", "labels", "split"]
        if self._s1:
            columns.append("s1_name")
        if not include_snow_cloud:
            columns += ["contains_seasonal_snow", "contains_cloud_or_shadow"]
        table = _read_metadata(self.metadata, columns)
        keep = np.ones(table.num_rows, dtype=bool)
        if self.split is not None:
            splits = table.column("split").to_numpy(zero_copy_only=False)
            keep &= splits == self.split
            if not keep.any():
                have = sorted({str(s) for s in splits})
                raise UsageError(
                    f"split {split!r} selects no row of {self.metadata}; its splits are {', '.join(have)}"
                )
        if not include_snow_cloud:
            marked = _bool_column(table, "contains_seasonal_snow") | _bool_column(
                table, "contains_cloud_or_shadow"
            )
            if keep.any() and not (keep & ~marked).any():
                raise UsageError(
                    f"every row of split {split!r} in {self.metadata} is marked as snow or cloud; "
                    "pass include_snow_cloud=True to keep them"
                )
            keep &= ~marked
        rows = np.flatnonzero(keep)
        table = table.take(rows)
        self.keys: list[str] = table.column("patch_id").to_pylist()
        self.s1_names: Optional[list[str]] = (
            table.column("s1_name").to_pylist() if self._s1 else None
        )
        self.labels = _multi_hot(table, self.classes, self.metadata)
        self.masks = self._check_records(masks, on_missing)

    # -- setup ------------------------------------------------------------------------------
    def _find_metadata(self, metadata: str) -> str:
        if not os.path.isabs(metadata) and not os.path.exists(metadata):
            beside = os.path.join(os.path.dirname(os.path.abspath(self.path)), metadata)
            if os.path.exists(beside):
                return beside
        return metadata

    def _normalization(
        self, normalize: Normalize
    ) -> tuple[Optional[list[float]], Optional[list[float]]]:
        if normalize is None:
            return None, None
        if isinstance(normalize, str) and normalize == "bigearthnet-v2":
            return published_stats(self.bands, self.size, self.resample)
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
            missing = [b for b in self.bands if b not in per_band]
            if missing:
                raise UsageError(
                    f"{path} has no statistics for band(s) {', '.join(missing)}; "
                    f"run `rico stats` with --bands {' '.join(self.bands)}"
                )
            return [float(per_band[b]["mean"]) for b in self.bands], [
                float(per_band[b]["std"]) for b in self.bands
            ]
        if isinstance(normalize, dict):
            mean, std = normalize.get("mean"), normalize.get("std")
        else:
            mean, std = normalize
        mean, std = [float(m) for m in mean], [float(s) for s in std]  # type: ignore[union-attr]
        if len(mean) != len(self.bands) or len(std) != len(self.bands):
            raise UsageError(
                f"normalize has {len(mean)} means and {len(std)} stds for {len(self.bands)} bands; give one per band"
            )
        return mean, std

    def _check_records(self, masks: Optional[bool], on_missing: str) -> bool:
        db = self.dataset
        if masks is None:
            masks = bool(self.keys) and self.keys[0] + _MAP_SUFFIX in db
        needed: list[tuple[str, list[str]]] = []
        if self._s2:
            needed.append(("patch_id", self.keys))
        if self._s1:
            needed.append(("s1_name", self.s1_names or []))
        if masks:
            needed.append(("reference map", [k + _MAP_SUFFIX for k in self.keys]))
        ok = np.ones(len(self.keys), dtype=bool)
        for what, keys in needed:
            present = np.fromiter((k in db for k in keys), dtype=bool, count=len(keys))
            if not present.all() and on_missing == "raise":
                first = keys[int(np.flatnonzero(~present)[0])]
                raise UsageError(
                    f"{what} {first!r} is not in the database {self.path} "
                    f"({int((~present).sum())} of {len(keys)} rows miss their {what} record); "
                    "convert the missing patches, or pass on_missing='drop' to leave such rows out"
                )
            ok &= present
        self.dropped: list[str] = [k for k, o in zip(self.keys, ok) if not o]
        if self.dropped:
            rows = np.flatnonzero(ok)
            self.keys = [self.keys[i] for i in rows]
            if self.s1_names is not None:
                self.s1_names = [self.s1_names[i] for i in rows]
            self.labels = self.labels[rows]
            if not self.keys:
                raise UsageError(f"no row of the split has its records in the database {self.path}")
        return bool(masks)

    # -- database (opened lazily in each process, so the object pickles) --------------------
    @property
    def dataset(self) -> Dataset:
        """The open database (re-opened after a fork)."""
        if self._ds is None or self._pid != os.getpid():
            self._ds, self._pid = Dataset(self.path), os.getpid()
        return self._ds

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_ds"], state["_pid"] = None, None
        return state

    # -- samples and batches ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.keys)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for {n} rows")
        batch = self.batch([index % n], threads=1)
        return {k: v[0] for k, v in batch.items()}

    def batch(self, indices: Sequence[int], threads: Optional[int] = None) -> dict[str, Any]:
        """The rows ``indices`` as one batch: ``image`` ``(N, C, size, size)``, ``label``
        ``(N, 19)``, ``mask`` ``(N, size, size)`` and ``key`` (a list).

        >>> b = ben.batch(range(32))  # doctest: +SKIP
        >>> b["image"].shape  # doctest: +SKIP
        (32, 14, 120, 120)
        """
        rows = [int(i) for i in indices]
        threads = self.threads if threads is None else threads
        out: dict[str, Any] = {"image": self._images(rows, threads)}
        out["label"] = self.labels[rows]
        if self.masks:
            out["mask"] = self._masks(rows, threads)
        out["key"] = [self.keys[i] for i in rows]
        return out

    def _group_args(self, group: list[tuple[int, str]]) -> dict[str, Any]:
        channels = [c for c, _ in group]
        return dict(
            bands=[b for _, b in group],
            size=self.size,
            resample=self.resample,
            mean=None if self.mean is None else [self.mean[c] for c in channels],
            std=None if self.std is None else [self.std[c] for c in channels],
        )

    def _sensors(self) -> list[tuple[list[tuple[int, str]], list[str]]]:
        """(channels, keys of every row) of each sensor asked for: S2 bands from the patch_ids,
        S1 bands from the s1_names."""
        groups = []
        if self._s2:
            groups.append((self._s2, self.keys))
        if self._s1:
            groups.append((self._s1, self.s1_names or []))
        return groups

    def _images(self, rows: list[int], threads: Optional[int]) -> np.ndarray:
        """The one place a batch's images are read: one Rust batch per sensor, written in place
        when each sensor's channels are one run of the image, else interleaved after."""
        ds = self.dataset
        groups = [(g, [keys[i] for i in rows]) for g, keys in self._sensors()]
        if len(groups) > 1 and all(_is_range(g) for g, _ in groups):
            # Each sensor's channels are one run of the image: Rust writes them in place, as a
            # channel range (no per-sensor arrays, no interleaving copy: a third of ben[i]).
            image = np.empty((len(rows), len(self.bands), self.size, self.size), dtype=np.float32)
            for group, keys in groups:
                first, last = group[0][0], group[-1][0]
                ds.batch(
                    keys, threads=threads, out=image[:, first : last + 1], **self._group_args(group)
                )
            return image
        parts = [
            (group, ds.batch(keys, threads=threads, **self._group_args(group)))
            for group, keys in groups
        ]
        return self._join(parts, len(rows))

    def _join(
        self,
        parts: list[tuple[list[tuple[int, str]], np.ndarray]],
        n: int,
        out: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        """The sensors' batches interleaved into channel order, into ``out[:n]`` when given."""
        if len(parts) == 1 and len(parts[0][0]) == len(self.bands) and _is_range(parts[0][0]):
            return parts[0][1]
        shape = (n, len(self.bands), self.size, self.size)
        image = np.empty(shape, dtype=np.float32) if out is None else out[:n]
        for group, x in parts:
            channels = [c for c, _ in group]
            if _is_range(group):
                image[:, channels[0] : channels[-1] + 1] = x  # one strided copy
            else:
                for j, c in enumerate(channels):
                    image[:, c] = x[:, j]
        return image

    def _masks(self, rows: list[int], threads: Optional[int]) -> np.ndarray:
        keys = [self.keys[i] + _MAP_SUFFIX for i in rows]
        codes = self.dataset.batch(
            keys, [_MAP_BAND], size=self.size, resample="nearest", threads=threads
        )
        return self._to_classes(codes)

    @staticmethod
    def _to_classes(codes: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Reference-map codes (``(N, 1, size, size)`` float32) as class indices, into
        ``out[:N]`` when given."""
        # float32 holds every uint16 code exactly; the table maps all 65536 of them.
        index = codes[:, 0].astype(np.uint16)
        if out is None:
            return _MASK_LUT[index]
        return np.take(_MASK_LUT, index, out=out[: len(index)])

    def loader(
        self,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        threads: Optional[int] = None,
        prefetch: int = 2,
        keep: int = 1,
    ) -> BigEarthNetLoader:
        """Batches of this split, assembled and prefetched by Rust threads (:class:`rico.Loader`
        underneath, one per record kind). Same order rules as :class:`rico.Loader`: each
        epoch's order depends only on ``seed`` and the epoch (:meth:`BigEarthNetLoader.set_epoch`),
        and ``world_size`` ranks get disjoint parts of equal size.

        Same memory rule as :class:`rico.Loader`: images and masks are written into a ring of
        ``keep + 1`` reused buffers (no fresh memory per batch: a 512-batch of 14 bands is
        413 MB), so a yielded batch stays valid while ``keep`` further batches are yielded.
        Copy what you keep longer.

        >>> for batch in ben.loader(batch_size=64, seed=0):  # doctest: +SKIP
        ...     x, y = batch["image"], batch["label"]
        """
        return BigEarthNetLoader(
            self, batch_size, shuffle, seed, rank, world_size, drop_last,
            self.threads if threads is None else threads, prefetch, keep,
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"rico.BigEarthNet({self.path!r}, split={self.split!r}, {len(self)} rows, "
            f"bands={self.bands}, size={self.size}, resample={self.resample!r})"
        )


class BigEarthNetLoader:
    """Iterates over batches of a :class:`BigEarthNet` (see :meth:`BigEarthNet.loader`); each
    batch is a dict like :meth:`BigEarthNet.batch`'s."""

    def __init__(
        self,
        ben: BigEarthNet,
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
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if keep < 0 or prefetch < 1:
            raise ValueError("keep must be at least 0 and prefetch at least 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.ben, self.batch_size, self.shuffle, self.seed = ben, batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.threads, self.prefetch, self.epoch = threads, prefetch, 0
        self.keep = keep
        # Reused output buffers by kind ("image", "mask"), made on first use; kept across epochs.
        self._rings: dict[str, list[np.ndarray]] = {}
        self._turns: dict[str, int] = {}
        self._subs: dict[str, tuple[Any, Any]] = {}
        # The joined-image prefetcher's batch ring (per process) and its running iteration.
        self._image_ring: Any = None
        self._image_ring_pid: Optional[int] = None
        self._image_running: Any = None
        self._iterated = self._epoch_set = False

    def _buffer(self, kind: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """The next buffer of kind's ring of ``keep + 1``, each for a full batch."""
        ring = self._rings.setdefault(kind, [])
        if len(ring) < self.keep + 1:
            ring.append(np.empty(shape, dtype=dtype))
        turn = self._turns.get(kind, 0)
        self._turns[kind] = turn + 1
        return ring[turn % (self.keep + 1)]

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds the next iteration's shuffle (otherwise each iteration
        takes the epoch after the last, as :class:`rico.Loader` does)."""
        self.epoch = epoch
        self._epoch_set = True

    def indices(self) -> np.ndarray:
        """Rows this rank visits this epoch, in order (:meth:`rico.Loader.indices`'s rule)."""
        n = len(self.ben)
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(n)
            if self.shuffle
            else np.arange(n)
        )
        per_rank = n // self.world_size
        return order[: per_rank * self.world_size][self.rank :: self.world_size]

    def __len__(self) -> int:
        n = len(self.ben) // self.world_size
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _sub(self, name: str) -> tuple[Any, Any]:
        """(channels, rico.Loader) of one record kind ("s2", "s1", "mask"), made once: its
        buffer ring then serves every epoch (a new Loader per epoch would allocate and fault
        in a new ring)."""
        if name not in self._subs:
            from .loader import Loader

            ben = self.ben
            if name == "mask":
                channels, keys = None, [k + _MAP_SUFFIX for k in ben.keys]
                args: dict[str, Any] = dict(bands=[_MAP_BAND], size=ben.size, resample="nearest")
            else:
                channels = ben._s2 if name == "s2" else ben._s1
                keys = ben.keys if name == "s2" else (ben.s1_names or [])
                args = ben._group_args(channels)
            self._subs[name] = (
                channels,
                Loader(
                    ben.dataset, keys=keys, batch_size=self.batch_size, shuffle=False,
                    drop_last=self.drop_last, threads=self.threads, prefetch=self.prefetch,
                    keep=self.keep, **args,
                ),
            )  # fmt: skip
        return self._subs[name]

    def _joined_images(self, rows: np.ndarray) -> Optional[Iterator[np.ndarray]]:
        """Batches of whole images from one prefetcher that writes each sensor's bands in place,
        when each sensor's channels are one run of the image; None otherwise (then each sensor
        has its loader and the batches are joined with one strided copy)."""
        ben = self.ben
        groups = ben._sensors()
        if len(groups) < 2 or not all(_is_range(g) for g, _ in groups):
            return None
        groups.sort(key=lambda g: g[0][0][0])  # runs in channel order: they tile the image
        if self._image_ring is None or self._image_ring_pid != os.getpid():
            self._image_ring = _rico.BatchRing(self.keep + 1 + self.prefetch)
            self._image_ring_pid, self._image_running = os.getpid(), None
        if self._image_running is not None:
            # An earlier iteration left unfinished: its thread must stop writing into the ring.
            self._image_running.close()
        parts = []
        for group, keys in groups:
            args = ben._group_args(group)
            batches = [
                [keys[i] for i in rows[s : s + self.batch_size]]
                for s in range(0, len(rows), self.batch_size)
            ]
            mean = None if args["mean"] is None else [float(m) for m in args["mean"]]
            std = None if args["std"] is None else [float(v) for v in args["std"]]
            parts.append((batches, args["bands"], mean, std))
        first, *extra = parts
        self._image_running = _rico.Prefetcher(
            ben.dataset.db, first[0], first[1], ben.size, ben.resample, "float32", first[2],
            first[3], self.threads, self.prefetch, self._image_ring, self.keep, extra,
        )  # fmt: skip
        return iter(self._image_running)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        # The epoch is chosen when iteration starts: the one set, else the one after the last.
        if self._iterated and not self._epoch_set:
            self.epoch += 1
        self._iterated, self._epoch_set = True, False
        return self._batches(self.indices())

    def _batches(self, rows: np.ndarray) -> Iterator[dict[str, Any]]:
        ben = self.ben
        cut = len(rows) - len(rows) % self.batch_size if self.drop_last else len(rows)
        rows = rows[:cut]
        joined = self._joined_images(rows)
        names = (
            [] if joined is not None else [n for n, g in (("s2", ben._s2), ("s1", ben._s1)) if g]
        )
        # Every record kind's key list is in row order, so the same positions select the same
        # rows of each.
        streams = [(n, *self._sub(n)) for n in names]
        streams = [(n, channels, sub._batches(rows)) for n, channels, sub in streams]
        masks = self._sub("mask")[1]._batches(rows) if ben.masks else None
        full = (self.batch_size, len(ben.bands), ben.size, ben.size)
        for start in range(0, len(rows), self.batch_size):
            group = rows[start : start + self.batch_size]
            if joined is not None:
                image = next(joined)
            else:
                parts = [(channels, next(stream)) for _, channels, stream in streams]
                image = ben._join(parts, len(group), out=self._buffer("image", full, np.float32))
            out: dict[str, Any] = {"image": image, "label": ben.labels[group]}
            if masks is not None:
                shape = (self.batch_size, ben.size, ben.size)
                out["mask"] = ben._to_classes(
                    next(masks), out=self._buffer("mask", shape, _MASK_LUT.dtype)
                )
            out["key"] = [ben.keys[i] for i in group]
            yield out


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
    from . import _rico

    band_list = resolve_bands(bands)
    keys: Optional[list[str]] = None
    if metadata is not None:
        ben = BigEarthNet(
            db, metadata=metadata, split=split, bands=band_list,
            include_snow_cloud=include_snow_cloud, masks=False,
        )  # fmt: skip
        keys = []
        if ben._s2:
            keys += ben.keys
        if ben._s1:
            keys += ben.s1_names or []
        split = ben.split
    target = os.fspath(out) if out is not None else os.fspath(db).rstrip("/\\") + ".stats.json"
    return dict(
        _rico.stats(
            os.fspath(db), band_list, keys, size, resample, threads, target,
            split if metadata is not None else None,
        )
    )  # fmt: skip
