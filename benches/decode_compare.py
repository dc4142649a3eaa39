#!/usr/bin/env python3
"""Decode time per dataset: rasterio's ``read()`` against ``rico.read_raster``, in one run.

For each real sample file (the compressed layouts where GDAL is hardest to beat), both readers
decode the whole file ``--repeat`` times, interleaved (rasterio, rico, rasterio, rico, ...) so
that both see the same machine load; the figure is the ratio of the medians, rasterio ÷ rico
(above 1: rico is faster). Every rico result is checked byte for byte against rasterio's first.
Prints a table and writes ``decode.json`` under ``--out``.

    python benches/decode_compare.py                  # the README's row
    python benches/decode_compare.py --repeat 51      # steadier medians

The samples are the real patches of ``shared/data/samples`` beside the project (or ``--samples``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The trimmed samples the tests carry; pass --samples (or set RICO_SAMPLES) to a folder of the
# full-size sample patches for the published figures (Major-TOM at 1068x1068, HySpecNet 128x128).
DEFAULT_SAMPLES = Path(os.environ.get("RICO_SAMPLES", ROOT / "tests" / "data" / "samples"))

#: (name, what it exercises, glob under the samples folder).
CASES = [
    (
        "HySpecNet-11k cube",
        "224-band int16, deflate, band-separate strips",
        "HySpecNet-11k/*/*-SPECTRAL_IMAGE.TIF",
    ),
    (
        "HySpecNet-11k pixel mask",
        "uint8 deflate",
        "HySpecNet-11k/*/*-QL_PIXELMASK.TIF",
    ),
    (
        "Major-TOM B02",
        "uint16 1068x1068, LZW, 1024x1024 tiles",
        "Major-TOM-Core/S2L2A/*/*/*/B02.tif",
    ),
    (
        "Hydro patch",
        "12-band uint16 256x256, LZW + predictor 2, tiled",
        "Hydro/patch_0.tif",
    ),
    (
        "BigEarthNet reference map",
        "uint16 120x120, deflate + predictor 2",
        "BigEarthNet/Reference_Maps/*/*/*_reference_map.tif",
    ),
    (
        "BigEarthNet S2 B02",
        "uint16 120x120, uncompressed strips",
        "BigEarthNet/BigEarthNet-S2/*/*/*_B02.tif",
    ),
]

#: The issue's bar: rasterio ÷ rico at least this, on these cases.
BAR = 1.0
BAR_CASES = {"HySpecNet-11k cube", "Major-TOM B02", "Hydro patch", "BigEarthNet reference map"}


def measure(path: Path, repeat: int) -> dict:
    import numpy as np
    import rasterio
    import rico

    def rasterio_read():
        with rasterio.open(path) as src:
            return src.read()

    expected = rasterio_read()
    got = rico.read_raster(str(path))
    if got.dtype != expected.dtype or not np.array_equal(
        got.view(np.uint8), expected.view(np.uint8)
    ):
        raise SystemExit(f"{path}: rico's pixels differ from rasterio's")
    times = {"rasterio": [], "rico": []}
    for _ in range(repeat):
        for name, read in (
            ("rasterio", rasterio_read),
            ("rico", lambda: rico.read_raster(str(path))),
        ):
            start = time.perf_counter()
            read()
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "shape": list(expected.shape),
        "dtype": str(expected.dtype),
        "rasterio_ms": med["rasterio"] * 1e3,
        "rico_ms": med["rico"] * 1e3,
        "rasterio_over_rico": med["rasterio"] / med["rico"],
    }


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    import rasterio

    rows = []
    for name, what, pattern in CASES:
        matches = sorted(args.samples.glob(pattern))
        if not matches:
            print(f"skipped {name}: no file matches {pattern} under {args.samples}")
            continue
        row = {"name": name, "what": what, **measure(matches[0], args.repeat)}
        rows.append(row)

    print(f"Decode one file, median of {args.repeat} interleaved runs (page cache warm)")
    print(f"{'sample':<28}{'layout':<48}{'rasterio ms':>12}{'rico ms':>10}{'ras/rico':>10}")
    for r in rows:
        print(
            f"{r['name']:<28}{r['what']:<48}{r['rasterio_ms']:>12.2f}{r['rico_ms']:>10.2f}"
            f"{r['rasterio_over_rico']:>9.2f}x"
        )
    bar_rows = [r for r in rows if r["name"] in BAR_CASES]
    met = len(bar_rows) == len(BAR_CASES) and all(r["rasterio_over_rico"] >= BAR for r in bar_rows)
    print(f"Bar: rasterio ÷ rico >= {BAR} on {sorted(BAR_CASES)}: {'met' if met else 'NOT met'}")

    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "revision": git_revision(),
        "repeat": args.repeat,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "rasterio": rasterio.__version__,
            "gdal": rasterio.__gdal_version__,
        },
        "bar": {"min_ratio": BAR, "cases": sorted(BAR_CASES), "met": met},
        "rows": rows,
    }
    (args.out / "decode.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'decode.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
