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
    params: Optional[dict[str, str]] = None,
    shards: Optional[int] = None,
    shard_index: Optional[int] = None,
) -> dict[str, Any]:
    """Convert a dataset; see :func:`rico.convert`. With ``shards`` and ``shard_index``, only
    that shard (one task of a cluster run, resumable, no manifest)."""

def count_patches(
    dataset: str,
    target_dir: str,
    sources: dict[str, str],
    params: Optional[dict[str, str]] = None,
    resume: bool = False,
    shards: int = 1,
    skip_invalid: bool = False,
) -> int:
    """Check a sharded target and plan the sources; the number of patches."""

def write_manifest(target_dir: str, dataset: str, shards: int) -> dict[str, Any]:
    """Write ``rico-manifest.json`` once every shard is finished; returns it."""

def verify(
    dataset: str,
    target_dir: str,
    sources: dict[str, str],
    threads: Optional[int] = None,
    progress: Optional[bool] = None,
    params: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    """Compare a database with its sources; see :func:`rico.verify`."""

def parse_convert(argv: list[str]) -> Optional[dict[str, Any]]:
    """Parse a conversion command line without running it (None for other subcommands)."""

def datasets() -> dict[str, list[str]]:
    """Options of each dataset: source directories (``*_dir``), then value options."""

def main(argv: list[str]) -> int:
    """Run the ``rico`` command line; returns the exit code."""

def bench(
    path: Union[str, PathLike[str]],
    bands: Optional[list[str]] = None,
    size: Optional[int] = None,
    batch: int = 32,
    threads: Optional[int] = None,
    seconds: float = 2.0,
) -> dict[str, Any]:
    """Records/s and MB/s of sequential and random record reads and of batches; see :func:`rico.bench`."""

def stats(
    path: Union[str, PathLike[str]],
    bands: list[str],
    keys: Optional[list[str]] = None,
    size: Optional[int] = None,
    resample: str = "nearest",
    threads: Optional[int] = None,
    out: Optional[Union[str, PathLike[str]]] = None,
    split: Optional[str] = None,
) -> dict[str, Any]:
    """Exact per-band mean and std over ``keys`` (every record when None), as the JSON document
    ``rico stats`` writes (to ``out`` when given); see :func:`rico.stats`.

    >>> _rico.stats("ben.lmdb", ["B02"])["bands"]["B02"]["mean"]  # doctest: +SKIP
    438.37...
    """

class SnapshotOwner:
    """Keeps a database snapshot alive while views point into it (the base of every view)."""

class Database:
    """A database opened read-only; the Python face is :class:`rico.Dataset`."""

    def __init__(self, path: Union[str, PathLike[str]]) -> None: ...
    @property
    def path(self) -> str: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: Union[str, bytes]) -> bool: ...
    def keys(self) -> list[Union[str, bytes]]:
        """Every key, sorted; str where the key is UTF-8."""
    def record(self, key: Union[str, bytes]) -> dict[str, npt.NDArray[Any]]:
        """``{band: read-only view}``; ``KeyError`` if absent, ``DataError`` if corrupt."""
    def raw(self, key: Union[str, bytes]) -> Optional[bytes]:
        """The record's safetensors bytes (a copy)."""
    def summary(self, sample: int = 64) -> dict[str, Any]:
        """Records, size, bands with dtypes and shapes."""
    def batch(
        self,
        keys: list[Union[str, bytes]],
        bands: list[str],
        size: Optional[int] = None,
        resample: str = "nearest",
        dtype: str = "float32",
        mean: Optional[list[float]] = None,
        std: Optional[list[float]] = None,
        threads: Optional[int] = None,
    ) -> npt.NDArray[np.floating[Any]]:
        """An ``(N, C, H, W)`` batch assembled in Rust."""

class Prefetcher:
    """Batches assembled ahead by a Rust thread; iterate to receive them in order."""

    def __init__(
        self,
        database: Database,
        batches: list[list[Union[str, bytes]]],
        bands: list[str],
        size: Optional[int] = None,
        resample: str = "nearest",
        dtype: str = "float32",
        mean: Optional[list[float]] = None,
        std: Optional[list[float]] = None,
        threads: Optional[int] = None,
        prefetch: int = 2,
    ) -> None: ...
    def __iter__(self) -> Prefetcher: ...
    def __next__(self) -> npt.NDArray[np.floating[Any]]: ...
