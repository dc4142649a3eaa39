"""The BigEarthNet-shaped source trees of the tests and benches, with the real files' GeoTIFF
profiles, and BigEarthNet v2's ``metadata.parquet`` for them.

S1 and S2 bands are uncompressed strips of the real block sizes (S1: float32 120x120 in strips
of 17 rows; S2: uint16 at 120x120 / 60x60 / 20x20 in strips of 34 / 60 / 20 rows), reference
maps uint16 120x120 deflate with the horizontal predictor, all in UTM zone 33N as the real
patches are. Values are seeded random numbers, so the same arguments give the same tree.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

from .bands import S1_BANDS, S2_SIDES
from .bigearthnet import S1_TILE, S2_TILE, patch_names
from .geotiff import write_tif

#: Rows per strip of an S2 band, by its side (the real files' block sizes).
S2_STRIP_ROWS = {120: 34, 60: 60, 20: 20}
CRS_UTM33N = CRS.from_epsg(32633)
CLC_CODES = np.array(
    [111, 112, 121, 211, 212, 231, 242, 243, 311, 312, 313, 321, 324, 411, 512, 523],
    dtype=np.uint16,
)

# The nomenclature's CLC code -> class name (BigEarthNet's 43-to-19 conversion), for the labels.
CLC_NAMES = {
    111: "Urban fabric", 112: "Urban fabric", 121: "Industrial or commercial units",
    211: "Arable land", 212: "Arable land", 213: "Arable land",
    221: "Permanent crops", 222: "Permanent crops", 223: "Permanent crops", 241: "Permanent crops",
    231: "Pastures", 242: "Complex cultivation patterns",
    243: "Land principally occupied by agriculture, with significant areas of natural vegetation",
    244: "Agro-forestry areas", 311: "Broad-leaved forest", 312: "Coniferous forest",
    313: "Mixed forest", 321: "Natural grassland and sparsely vegetated areas",
    333: "Natural grassland and sparsely vegetated areas",
    322: "Moors, heathland and sclerophyllous vegetation",
    323: "Moors, heathland and sclerophyllous vegetation",
    324: "Transitional woodland, shrub", 331: "Beaches, dunes, sands",
    411: "Inland wetlands", 412: "Inland wetlands", 421: "Coastal wetlands", 422: "Coastal wetlands",
    511: "Inland waters", 512: "Inland waters",
    521: "Marine waters", 522: "Marine waters", 523: "Marine waters",
}  # fmt: skip
COUNTRIES = ["Austria", "Belgium", "Finland", "Ireland", "Lithuania", "Portugal", "Serbia", "Switzerland"]  # fmt: skip

os.environ.setdefault("CPL_LOG", "/dev/null")  # silence GDAL's chatter in workers


def write_band(
    path: Path, array: np.ndarray, pixel: float, x: int, y: int, rows_per_strip: int, **extra
) -> None:
    """One band of the patch at tile position (x, y): georeferenced in UTM 33N with ``pixel``
    metres per pixel, in uncompressed strips of ``rows_per_strip`` rows unless ``extra`` says
    otherwise."""
    write_tif(
        path,
        array,
        crs=CRS_UTM33N,
        transform=Affine(pixel, 0.0, 390000.0 + 1200 * x, 0.0, -pixel, 5348400.0 - 1200 * y),
        tiled=False,
        blockysize=rows_per_strip,
        **extra,
    )


def write_patch(args: tuple[Path, int, str]) -> int:
    """Writes patch number ``i`` (S2 bands, S1 bands, reference map); returns files written."""
    root, i, layout = args
    rng = np.random.default_rng(i)
    x, y = i % 100, i // 100
    s2, s1 = patch_names(i)
    nest = layout == "v2"
    s2_dir = root / "BigEarthNet-S2" / (S2_TILE if nest else "") / s2
    s1_dir = root / "BigEarthNet-S1" / (S1_TILE if nest else "") / s1
    map_dir = root / "Reference_Maps" / (S2_TILE if nest else "") / s2
    for band, side in S2_SIDES.items():
        values = rng.integers(0, 12000, size=(side, side), dtype=np.uint16)
        strip = S2_STRIP_ROWS[side]
        write_band(s2_dir / f"{s2}_{band}.tif", values, 1200 / side, x, y, strip, nodata=0)
    for band in S1_BANDS:
        values = rng.normal(-15.0, 5.0, size=(120, 120)).astype(np.float32)
        write_band(s1_dir / f"{s1}_{band}.tif", values, 10.0, x, y, 17)
    labels = CLC_CODES[rng.integers(0, len(CLC_CODES), size=(4, 4))].repeat(30, 0).repeat(30, 1)
    write_band(
        map_dir / f"{s2}_reference_map.tif",
        labels,
        10.0,
        x,
        y,
        34,
        nodata=0,
        compress="deflate",
        predictor=2,
    )
    return len(S2_SIDES) + 3


def make_dataset(out: Path, patches: int, layout: str = "v2", workers: int | None = None) -> int:
    """Writes a tree of ``patches`` patches under ``out`` (``BigEarthNet-S1/``,
    ``BigEarthNet-S2/``, ``Reference_Maps/``; ``layout="v2"`` nests patches in tile
    directories, ``"v1"`` does not); returns the number of files written."""
    jobs = [(out, i, layout) for i in range(patches)]
    if patches <= 8 or workers == 1:
        return sum(map(write_patch, jobs))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(write_patch, jobs, chunksize=16))


def link_tree(
    base: Path, out: Path, patches: int, base_patches: int = 100, copy: bool = False
) -> None:
    """A v2 tree of ``patches`` patches under ``out`` made of the tree at ``base`` (written by
    :func:`make_dataset`): patch ``i % base_patches`` of ``base`` hard-linked as patch ``i``
    (same bytes, other names: no data is copied). With ``copy``, copied instead, so that every
    file has blocks of its own on disk (a cold read of a hard-linked tree reads each distinct
    file once, and measures little but metadata). Done once: a marker file says so."""
    marker = out / (".complete-copy" if copy else ".complete")
    if marker.exists():
        return
    shutil.rmtree(out, ignore_errors=True)
    for i in range(patches):
        s2, s1 = patch_names(i)
        b2, b1 = patch_names(i % base_patches)
        for src_root, tile, new, old in (
            ("BigEarthNet-S2", S2_TILE, s2, b2),
            ("BigEarthNet-S1", S1_TILE, s1, b1),
            ("Reference_Maps", S2_TILE, s2, b2),
        ):
            src_dir = base / src_root / tile / old
            dst_dir = out / src_root / tile / new
            dst_dir.mkdir(parents=True)
            for f in os.listdir(src_dir):
                place = shutil.copyfile if copy else os.link
                place(src_dir / f, dst_dir / f.replace(old, new))
    marker.touch()


def map_path(root: Path, patch_id: str) -> Path:
    """The reference map of ``patch_id`` in the v2 tree under ``root``."""
    return root / "Reference_Maps" / S2_TILE / patch_id / f"{patch_id}_reference_map.tif"


def make_bigearthnet(out: Path, patches: int, seed: int = 0) -> Path:
    """A v2 tree under ``out`` (:func:`make_dataset`) plus ``out/metadata.parquet`` of the real
    schema; returns the table's path.

    The table has one row per S2 patch: ``patch_id``, ``labels`` (the 19-class names present in
    the patch's reference map, as BigEarthNet derives them), ``split``, ``country``,
    ``s1_name`` (the paired S1 patch), ``contains_seasonal_snow``, ``contains_cloud_or_shadow``.
    Rows are in a seeded shuffled order (not key order), as the real table's order is not the
    database's. Every seventh reference map gets a block of CLC codes outside the 19-class
    nomenclature (122: road and rail, and 0: no data), so that masks have ignored pixels.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    make_dataset(out, patches, "v2")
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(patches):
        patch_id, s1_name = patch_names(i)
        path = map_path(out, patch_id)
        if i % 7 == 0:  # codes outside the nomenclature: ignored in masks, no label
            with rasterio.open(path) as src:
                profile, data = src.profile, src.read(1)
            data[:30, :30] = 122
            data[30:40, :30] = 0
            with rasterio.open(path, "w", **profile) as dst:
                dst.write(data, 1)
        with rasterio.open(path) as src:
            codes = np.unique(src.read(1))
        labels = sorted({CLC_NAMES[int(c)] for c in codes if int(c) in CLC_NAMES})
        rows.append(
            {
                "patch_id": patch_id,
                "labels": labels,
                "split": str(rng.choice(["train", "validation", "test"], p=[0.5, 0.25, 0.25])),
                "country": str(rng.choice(COUNTRIES)),
                "s1_name": s1_name,
                "contains_seasonal_snow": bool(rng.random() < 0.1),
                "contains_cloud_or_shadow": bool(rng.random() < 0.1),
            }
        )
    order = rng.permutation(patches)
    table = pa.Table.from_pylist([rows[i] for i in order])
    target = out / "metadata.parquet"
    pq.write_table(table, target)
    return target
