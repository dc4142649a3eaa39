"""Typed stubs of rico's native module (``rico._rico``)."""

from os import PathLike
from typing import Any, Optional, Union

import numpy as np
import numpy.typing as npt

__version__: str

class RicoError(Exception):
    """Base class of rico's errors; the message names the file and what to do."""

class DataError(RicoError):
    """A source file is bad: unreadable, corrupt, unsupported, a band missing, a duplicate key."""

class UsageError(RicoError):
    """Bad arguments: a missing or empty source directory, an unusable target."""

class OutputError(RicoError):
    """The database cannot be written (e.g. the disk is full)."""

def read_raster(path: Union[str, PathLike[str]]) -> npt.NDArray[Any]:
    """Decode a raster file into an array of shape ``(bands, rows, cols)``.

    Bit-identical to ``rasterio.open(path).read()`` for GeoTIFFs as GDAL writes them.

    >>> import rico
    >>> rico.read_raster("S2A_MSIL2A_..._B02.tif").shape  # doctest: +SKIP
    (1, 120, 120)
    """

def convert(
    dataset: str,
    target_dir: str,
    sources: dict[str, str],
    threads: Optional[int] = None,
    progress: Optional[bool] = None,
    resume: bool = False,
    skip_invalid: bool = False,
) -> dict[str, Any]:
    """Convert a dataset; see :func:`rico.convert`."""

def datasets() -> dict[str, list[str]]:
    """Source options of each dataset."""

def main(argv: list[str]) -> int:
    """Run the ``rico`` command line; returns the exit code."""
