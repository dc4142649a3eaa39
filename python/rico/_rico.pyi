"""Typed stubs of rico's native module (``rico._rico``)."""

from os import PathLike
from typing import Any, Optional, TypedDict, Union, final, type_check_only

import numpy as np
import numpy.typing as npt
from typing_extensions import Unpack

__all__ = [
    "__version__",
    "RicoError",
    "DataError",
    "UsageError",
    "OutputError",
    "Database",
    "Prefetcher",
    "RecordMemory",
    "BatchMemory",
    "BatchRing",
    "read_raster",
    "convert",
    "plan_shards",
    "write_manifest",
    "verify",
    "parse_convert",
    "datasets",
    "main",
    "bench",
    "stats",
    "thread_count",
    "MAX_THREADS",
    "CONVERT_OPTIONS",
    "MAX_SIZE",
    "shard_name",
    "MANIFEST",
    "SHARD_MARKER",
    "PLAN",
    "SHARD_PLAN",
    "PLAN_SPOOL",
    "SKIPPED_REPORT",
    "LABELS_TABLE",
    "_force_cold_path",
]

__version__: str

#: The most threads any one count may ask for (``threads``, ``io_depth``): a count outside
#: ``1..=MAX_THREADS`` is refused with :class:`UsageError` before any thread starts.
MAX_THREADS: int

#: The largest ``size`` (pixels per side) a batch takes.
MAX_SIZE: int

# The names of the files and folders rico writes into a target directory.

#: The manifest at the root of a finished sharded dataset (``rico-manifest.json``).
MANIFEST: str

#: The marker a finished shard holds in its directory: its record count and key range.
SHARD_MARKER: str

#: The root file of a sharded dataset that says every shard's plan is written.
PLAN: str

#: A shard's part of the plan, in the shard's directory.
SHARD_PLAN: str

#: The plan of every shard while the planner writes it (at the root; removed once cut).
PLAN_SPOOL: str

#: The report of the patches left out with ``skip_invalid``.
SKIPPED_REPORT: str

#: The labels table written beside a database of a dataset with labels.
LABELS_TABLE: str

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

@type_check_only
class ConvertOptions(TypedDict, total=False):
    """The conversion options the engine takes as keywords (:data:`CONVERT_OPTIONS`), in the
    user's units; see :func:`rico.convert` for each. Unset = the default."""

    threads: Optional[int]
    io_depth: Optional[int]
    buffer_mb: Optional[int]
    max_held_mb: Optional[int]
    fetch_parts: Optional[int]
    fetch_part_mb: Optional[int]
    read_timeout: Optional[float]
    insecure_tls: bool
    keys: Optional[list[str]]
    progress: Optional[bool]
    resume: bool
    skip_invalid: bool
    shards: Optional[int]
    shard_index: Optional[int]

#: The names of the keys of :class:`ConvertOptions`, the keywords of :func:`convert`,
#: :func:`plan_shards` and :func:`verify`.
CONVERT_OPTIONS: tuple[str, ...]

def convert(
    dataset: str,
    target_dir: str,
    sources: dict[str, Union[str, list[str]]],
    params: Optional[dict[str, str]] = None,
    **options: Unpack[ConvertOptions],
) -> dict[str, Any]:
    """Convert a dataset; see :func:`rico.convert`. With ``shards`` and ``shard_index``, only
    that shard (one task of a cluster run, resumable, no manifest), converted from the plan
    that :func:`plan_shards` wrote: the task does not walk the sources."""

def plan_shards(
    dataset: str,
    target_dir: str,
    sources: dict[str, Union[str, list[str]]],
    params: Optional[dict[str, str]] = None,
    **options: Unpack[ConvertOptions],
) -> int:
    """Plan a sharded conversion once (``shards`` of them, default 1) and write each shard's
    part of the plan into its directory (a resume reuses the plan, and refuses another
    ``shards``); the number of patches.

    >>> import rico._rico as native, tempfile
    >>> native.plan_shards("bigearthnet", tempfile.mkdtemp(), {}, shards=4)
    Traceback (most recent call last):
    ...
    rico._rico.UsageError: no source directory given; give at least one of --bigearthnet-s1-dir, --bigearthnet-s2-dir or --bigearthnet-reference-maps-dir
    """

def write_manifest(target_dir: str, dataset: str, shards: int) -> dict[str, Any]:
    """Write ``rico-manifest.json`` once every shard is finished; returns it."""

def shard_name(index: int) -> str:
    """The name of the directory of shard ``index`` under a sharded dataset's root
    (``shard-00042``)."""

def verify(
    dataset: str,
    target_dir: str,
    sources: dict[str, Union[str, list[str]]],
    params: Optional[dict[str, str]] = None,
    **options: Unpack[ConvertOptions],
) -> dict[str, Any]:
    """Compare a database with its sources; see :func:`rico.verify`."""

def parse_convert(argv: list[str]) -> Optional[dict[str, Any]]:
    """Parse a conversion command line without running it (None for other subcommands):
    ``dataset``, ``target_dir``, ``sources``, ``params``, ``options`` (the conversion options
    given, as keywords of :func:`rico.convert`), ``quiet`` and ``scheduler``."""

def datasets() -> dict[str, list[str]]:
    """Options of each dataset: source directories (``*_dir``), then value options."""

def main(argv: list[str]) -> int:
    """Run the ``rico`` command line; returns the exit code."""

def _force_cold_path(cold: Optional[bool] = None) -> None:
    """For tests that compare the two read paths: forces the path every record of a loader
    takes in this process (True: read whole by the cold path, False: in place through the
    memory map, None: chosen per record by whether it is in the page cache)."""

def thread_count(threads: Optional[int] = None) -> int:
    """The number of threads a call given ``threads`` uses: ``threads`` itself, or one per
    core (at most :data:`MAX_THREADS`) when None. Every entry point that takes a thread count
    (loaders, batches, conversion, verification, statistics, the benchmark) applies this rule.

    >>> thread_count(4)
    4
    >>> thread_count(100000)
    Traceback (most recent call last):
    ...
    rico._rico.UsageError: threads must be between 1 and 1024, not 100000; leave it unset for the default (one per core: ... here)
    """

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

@final
class RecordMemory:
    """One record's private copy-on-write memory: the base of that record's views.

    Writes that go around numpy's read-only flag (``torch.from_numpy``, DLPack) land in
    pages private to this record, never in the database.
    """

    @property
    def mapped(self) -> bool:
        """True when the record is a private mapping of the file (False: a private copy)."""

@final
class BatchMemory:
    """The 64-byte aligned memory of a batch: the base of the batch's array."""

    def __len__(self) -> int: ...

@final
class BatchRing:
    """Reusable batch memory of a loader: ``slots`` buffers handed out in turn.

    >>> ring = BatchRing(4)  # doctest: +SKIP
    >>> len(ring)  # doctest: +SKIP
    4
    """

    def __new__(cls, slots: int) -> BatchRing: ...
    def __len__(self) -> int: ...

@final
class Database:
    """A database opened read-only; the Python face is :class:`rico.Dataset`."""

    def __new__(cls, path: Union[str, PathLike[str]]) -> Database: ...
    @property
    def path(self) -> str: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: Union[str, bytes], /) -> bool: ...
    def keys(self) -> list[Union[str, bytes]]:
        """Every key, sorted; str where the key is UTF-8."""
    def select_keys(
        self, prefix: Optional[Union[str, bytes]] = None, bands: Optional[list[str]] = None
    ) -> list[Union[str, bytes]]:
        """Keys, sorted, of the records that start with ``prefix`` and hold every band of
        ``bands`` (headers only); see :meth:`rico.Dataset.keys`.

        >>> db.select_keys(prefix="S2", bands=["B04"])[:1]  # doctest: +SKIP
        ['S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_0_0']
        """
    def why_empty(
        self, prefix: Optional[Union[str, bytes]] = None, bands: Optional[list[str]] = None
    ) -> Optional[str]:
        """Why :meth:`select_keys` with these arguments keeps no record (the database, the
        bands no record holds and the bands its records hold, or the sets of bands the records
        hold when no single record holds them all), or None when it keeps some."""
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
        out: Optional[npt.NDArray[np.floating[Any]]] = None,
    ) -> npt.NDArray[np.floating[Any]]:
        """An ``(N, C, H, W)`` batch assembled in Rust (into ``out`` when given); ``resample`` is ``"nearest"`` (whole
        factors), ``"nearest-any"``, ``"bilinear"`` (torch's ``align_corners=True``) or
        ``"bilinear-half-pixel"`` (``align_corners=False``) or ``"bilinear-gdal"`` (rasterio's bilinear,
        ``"bilinear-gdal:nodata=V"`` with nodata); see :meth:`rico.Dataset.batch`."""

@final
class Prefetcher:
    """Batches assembled ahead by a Rust thread; iterate to receive them in order.

    ``extra`` adds channels from other records of the same samples, after ``bands``: each part
    is ``(batches, bands, mean, std)`` with batches of the same sizes (e.g. a BigEarthNet
    patch's S1 record beside its S2 record), written in place into the one batch.

    A second thread keeps about 32 MB (at least 64 records) of the records still to come read
    ahead from storage, so that a cold disk always has reads in flight; ``then`` lists keys to
    read ahead once the last batch's are (the next epoch's first batch).
    """

    def __new__(
        cls,
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
        ring: Optional[BatchRing] = None,
        keep: int = 1,
        extra: Optional[
            list[
                tuple[
                    list[list[Union[str, bytes]]],
                    list[str],
                    Optional[list[float]],
                    Optional[list[float]],
                ]
            ]
        ] = None,
        then: Optional[list[Union[str, bytes]]] = None,
    ) -> Prefetcher: ...
    def __iter__(self) -> Prefetcher: ...
    def __next__(self) -> npt.NDArray[np.floating[Any]]: ...
    def close(self) -> None:
        """Stop the background thread and end the iteration."""
