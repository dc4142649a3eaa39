#!/usr/bin/env python3
"""Write a BigEarthNet-shaped source tree with the real files' GeoTIFF profiles (the generator
is tests/support/trees.py's ``make_dataset``, shared with the tests).

S1 and S2 bands are uncompressed strips of the real block sizes (S1: float32 120x120 in strips
of 17 rows; S2: uint16 at 120x120 / 60x60 / 20x20 in strips of 34 / 60 / 20 rows), reference
maps uint16 120x120 deflate with the horizontal predictor, all in UTM zone 33N as the real
patches are. Values are seeded random numbers, so the same arguments give the same tree.

    python benches/make_dataset.py --patches 2000 /tmp/ben            # v2 layout (tile/patch/)
    python benches/make_dataset.py --patches 10 --layout v1 /tmp/ben1  # v1 layout (patch/ at the root)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _tests_path  # noqa: F401  (first: tests/ on sys.path)
from support.trees import make_dataset

__all__ = ["make_dataset"]  # `from make_dataset import make_dataset` (examples/demo.py)


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
