#!/usr/bin/env python3
"""A BigEarthNet v2-shaped tree (make_dataset.py) plus a ``metadata.parquet`` of the real schema,
and optionally its converted database (the generator is tests/support/trees.py's
``make_bigearthnet``, shared with the tests).

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

import _tests_path  # noqa: F401  (first: tests/ on sys.path)
from support.bigearthnet import convert
from support.trees import make_bigearthnet


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
        print(convert(args.out, args.convert, progress=False))


if __name__ == "__main__":
    main()
