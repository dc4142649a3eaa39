#!/usr/bin/env python3
"""A BigEarthNet v2-shaped tree (make_dataset.py) plus a ``metadata.parquet`` of the real schema,
and optionally its converted database.

The table has one row per S2 patch: ``patch_id``, ``labels`` (the 19-class names present in the
patch's reference map, as BigEarthNet derives them), ``split``, ``country``, ``s1_name`` (the
paired S1 patch), ``contains_seasonal_snow``, ``contains_cloud_or_shadow``. Rows are in a seeded
shuffled order (not key order), as the real table's order is not the database's. Every seventh
reference map gets a block of CLC codes outside the 19-class nomenclature (122: road and rail,
and 0: no data), so that masks have ignored pixels.

    python benches/make_bigearthnet.py --patches 500 /tmp/ben --convert /tmp/ben.lmdb
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import rasterio
from make_dataset import S1_TILE, S2_TILE, make_dataset

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


def names(i: int) -> tuple[str, str]:
    """(S2 patch_id, S1 name) of patch ``i`` of make_dataset.py."""
    x, y = i % 100, i // 100
    return f"{S2_TILE}_{x}_{y}", f"{S1_TILE}_33UUP_{x}_{y}"


def map_path(root: Path, patch_id: str) -> Path:
    return root / "Reference_Maps" / S2_TILE / patch_id / f"{patch_id}_reference_map.tif"


def make_bigearthnet(out: Path, patches: int, seed: int = 0) -> Path:
    """Writes the tree under ``out`` and ``out/metadata.parquet``; returns the table's path."""
    make_dataset(out, patches, "v2")
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(patches):
        patch_id, s1_name = names(i)
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="directory to write")
    parser.add_argument("--patches", type=int, default=500)
    parser.add_argument("--convert", type=Path, help="also convert the tree into this database")
    args = parser.parse_args()
    table = make_bigearthnet(args.out, args.patches)
    print(f"wrote {args.patches} patches and {table}")
    if args.convert:
        print(convert(args.out, args.convert))


def convert(root: Path, db: Path) -> object:
    """Converts the tree under ``root`` into the database ``db`` with rico."""
    import rico

    return rico.convert(
        "bigearthnet",
        db,
        bigearthnet_s1_dir=root / "BigEarthNet-S1",
        bigearthnet_s2_dir=root / "BigEarthNet-S2",
        bigearthnet_reference_maps_dir=root / "Reference_Maps",
        progress=False,
    )


if __name__ == "__main__":
    main()
