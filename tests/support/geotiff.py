"""The GeoTIFF writer of the tests and the generated trees: rasterio (GDAL), as the datasets'
own files are written."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import rasterio


def write_tif(path: Path, array: np.ndarray, **profile: Any) -> Path:
    """A GeoTIFF of ``array``, ``(bands, rows, cols)`` or ``(rows, cols)``, as GDAL writes it
    with ``profile``'s creation options (``crs``, ``transform``, ``blockysize``, ``compress``,
    ``interleave`` ...); its directory is made. Returns ``path``."""
    array = array if array.ndim == 3 else array[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            count=array.shape[0],
            height=array.shape[1],
            width=array.shape[2],
            dtype=array.dtype,
            **profile,
        ) as dst:
            dst.write(array)
    return path
