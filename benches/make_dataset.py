#!/usr/bin/env python3
"""Write a BigEarthNet-shaped source tree with the real files' GeoTIFF profiles.

S1 and S2 bands are uncompressed strips of the real block sizes (S1: float32 120x120 in strips
of 17 rows; S2: uint16 at 120x120 / 60x60 / 20x20 in strips of 34 / 60 / 20 rows), reference
maps uint16 120x120 deflate with the horizontal predictor, all in UTM zone 33N as the real
patches are. Values are seeded random numbers, so the same arguments give the same tree.

    python benches/make_dataset.py --patches 2000 /tmp/ben            # v2 layout (tile/patch/)
    python benches/make_dataset.py --patches 10 --layout v1 /tmp/ben1  # v1 layout (patch/ at the root)
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import Affine

S2_BANDS = {  # band -> (side, rows per strip)
    "B01": (20, 20),
    "B02": (120, 34),
    "B03": (120, 34),
    "B04": (120, 34),
    "B05": (60, 60),
    "B06": (60, 60),
    "B07": (60, 60),
    "B08": (120, 34),
    "B8A": (60, 60),
    "B09": (20, 20),
    "B11": (60, 60),
    "B12": (60, 60),
}
CRS_UTM33N = CRS.from_epsg(32633)
S2_TILE = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
S1_TILE = "S1A_IW_GRDH_1SDV_20170613T165043"
CLC_CODES = np.array(
    [111, 112, 121, 211, 212, 231, 242, 243, 311, 312, 313, 321, 324, 411, 512, 523],
    dtype=np.uint16,
)

os.environ.setdefault("CPL_LOG", "/dev/null")  # silence GDAL's chatter in workers


def _write(
    path: Path, array: np.ndarray, pixel: float, x: int, y: int, rows_per_strip: int, **extra
) -> None:
    profile = dict(
        driver="GTiff",
        width=array.shape[1],
        height=array.shape[0],
        count=1,
        dtype=array.dtype,
        crs=CRS_UTM33N,
        transform=Affine(pixel, 0.0, 390000.0 + 1200 * x, 0.0, -pixel, 5348400.0 - 1200 * y),
        tiled=False,
        blockysize=rows_per_strip,
        **extra,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)


def write_patch(args: tuple[Path, int, str]) -> int:
    """Writes patch number ``i`` (S2 bands, S1 bands, reference map); returns files written."""
    root, i, layout = args
    rng = np.random.default_rng(i)
    x, y = i % 100, i // 100
    s2 = f"{S2_TILE}_{x}_{y}"
    s1 = f"{S1_TILE}_33UUP_{x}_{y}"
    nest = layout == "v2"
    s2_dir = root / "BigEarthNet-S2" / (S2_TILE if nest else "") / s2
    s1_dir = root / "BigEarthNet-S1" / (S1_TILE if nest else "") / s1
    map_dir = root / "Reference_Maps" / (S2_TILE if nest else "") / s2
    for d in (s2_dir, s1_dir, map_dir):
        d.mkdir(parents=True, exist_ok=True)
    for band, (side, strip) in S2_BANDS.items():
        values = rng.integers(0, 12000, size=(side, side), dtype=np.uint16)
        _write(s2_dir / f"{s2}_{band}.tif", values, 1200 / side, x, y, strip, nodata=0)
    for band in ("VH", "VV"):
        values = rng.normal(-15.0, 5.0, size=(120, 120)).astype(np.float32)
        _write(s1_dir / f"{s1}_{band}.tif", values, 10.0, x, y, 17)
    labels = CLC_CODES[rng.integers(0, len(CLC_CODES), size=(4, 4))].repeat(30, 0).repeat(30, 1)
    _write(
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
    return len(S2_BANDS) + 3


def make_dataset(out: Path, patches: int, layout: str = "v2", workers: int | None = None) -> int:
    """Writes the tree under ``out``; returns the number of files written."""
    jobs = [(out, i, layout) for i in range(patches)]
    if patches <= 8 or workers == 1:
        return sum(map(write_patch, jobs))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(write_patch, jobs, chunksize=16))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "out",
        type=Path,
        help="directory to write (BigEarthNet-S1/, BigEarthNet-S2/, Reference_Maps/)",
    )
    parser.add_argument("--patches", type=int, default=100, help="number of patches (default 100)")
    parser.add_argument(
        "--layout", choices=["v1", "v2"], default="v2", help="v2 nests patches in tile directories"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="writer processes (default: one per core)"
    )
    args = parser.parse_args()
    files = make_dataset(args.out, args.patches, args.layout, args.workers)
    print(f"wrote {args.patches} patches ({files} files) under {args.out}")


if __name__ == "__main__":
    main()
