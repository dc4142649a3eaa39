"""Reading a converted database: zero-copy records and batches assembled in Rust."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from typing import Optional, Union

import numpy as np

from . import _rico
from ._handle import PerProcess

Key = Union[str, bytes]


class Dataset:
    """A converted database, opened read-only.

    Records come back as ``{band: numpy.ndarray}`` whose arrays are read-only views into the
    database's memory map: no copy. A view stays valid as long as it lives, even after
    :meth:`close`.

    >>> import rico
    >>> with rico.open("BigEarthNet.lmdb") as ds:  # doctest: +SKIP
    ...     print(len(ds), ds.keys()[0])
    ...     bands = ds[ds.keys()[0]]
    ...     s2 = ds.keys(bands=["B04", "B03", "B02"])  # the records that hold these bands
    ...     x = ds.batch(s2[:32], ["B04", "B03", "B02"], size=120)
    """

    def __init__(self, path: Union[str, os.PathLike[str]]) -> None:
        self._path = os.fspath(path)
        self._db: Optional[PerProcess[_rico.Database]] = self._open()
        self._keys: Optional[list[Key]] = None

    def _open(self) -> PerProcess[_rico.Database]:
        # Opened now (a bad path fails here), and again in a forked child (a DataLoader
        # worker), which must not use its parent's LMDB environment. Views made in the parent
        # stay valid.
        make = functools.partial(_rico.Database, self._path)
        return PerProcess(make, make())

    # -- lifecycle --------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        # Pickled as its path (spawned DataLoader workers, multiprocessing): each process
        # opens its own environment, as LMDB requires.
        return {"path": self._path, "closed": self._db is None}

    def __setstate__(self, state: dict) -> None:
        self._path, self._keys = state["path"], None
        self._db = None if state["closed"] else self._open()

    def close(self) -> None:
        """Release the database. Views already handed out stay valid."""
        self._db = None

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> _rico.Database:
        if self._db is None:
            raise ValueError(f"the dataset {self._path} is closed")
        return self._db.get()

    @property
    def path(self) -> str:
        """The database directory."""
        return self._path

    # -- mapping ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.db)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (str, bytes)):
            return False
        return key in self.db

    def keys(
        self, bands: Optional[Sequence[str]] = None, prefix: Optional[Key] = None
    ) -> list[Key]:
        """Keys, sorted (as LMDB orders them: by UTF-8 bytes): every key, or only those of the
        records that hold all of ``bands`` and start with ``prefix``.

        The selection reads only the records' headers, in Rust (a BigEarthNet database mixes
        Sentinel-1 records, Sentinel-2 records and reference maps).

        >>> s2 = ds.keys(bands=["B04", "B03", "B02"])  # doctest: +SKIP
        >>> s1 = ds.keys(prefix="S1")  # doctest: +SKIP
        """
        if bands is None and prefix is None:
            if self._keys is None:
                self._keys = self.db.keys()
            return list(self._keys)
        if isinstance(bands, str):
            bands = [bands]
        return self.db.select_keys(prefix, None if bands is None else [str(b) for b in bands])

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys())

    def __getitem__(self, key: Key) -> dict[str, np.ndarray]:
        """``{band: read-only array}`` of the record ``key`` (str or bytes); ``KeyError`` if absent."""
        return self.db.record(key)

    def get(self, key: Key, default: object = None) -> object:
        """The record of ``key``, or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def raw(self, key: Key) -> Optional[bytes]:
        """The record's safetensors bytes (a copy), or None."""
        return self.db.raw(key)

    # -- batches ----------------------------------------------------------------------------
    def batch(
        self,
        keys: Sequence[Key],
        bands: Sequence[str],
        size: Optional[int] = None,
        resample: str = "nearest",
        dtype: str = "float32",
        mean: Optional[Sequence[float]] = None,
        std: Optional[Sequence[float]] = None,
        threads: Optional[int] = None,
        out: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        """Stack ``bands`` of the records ``keys`` into an ``(N, C, H, W)`` array.

        Assembled in Rust with the GIL released, in parallel over records, into a new
        64-byte aligned array (shared without a copy by ``torch.from_dlpack`` and
        ``jax.numpy.from_dlpack``), or into ``out``.

        Args:
            keys: record keys.
            bands: band names, in channel order.
            size: resample every band to ``size x size``; without it all bands must share a shape.
            resample: ``"nearest"`` (whole factors only; upsampling by f is
                ``a.repeat(f, 0).repeat(f, 1)``), ``"nearest-any"`` (any ratio:
                ``out[y] = in[floor(y * h / H)]``), ``"bilinear"`` (equal to
                ``torch.nn.functional.interpolate(mode="bilinear", align_corners=True)`` on
                float32, ConfigILM's BigEarthNet upsampling) or ``"bilinear-half-pixel"``
                (the same with ``align_corners=False``). Bilinear resamples in the batch's
                dtype, then normalises. ``"bilinear-gdal"``: rasterio's bilinear reads
                (GDAL's arithmetic, byte for byte: ``read(out_shape=..., out_dtype=dtype,
                resampling=Resampling.bilinear)``), ``"bilinear-gdal:nodata=V"`` for bands whose
                files declare nodata ``V``; see the TorchGeo page of the docs.
            dtype: ``"float32"`` or ``"float64"``.
            mean, std: per band; the batch holds ``(value - mean) / std``.
            threads: threads to use, 1 to 1024 (default: one per core); another count
                raises :class:`rico.UsageError`.
            out: a writeable array of the batch's shape and ``dtype`` to fill and return:
                a C-contiguous one, or a channel range ``big[:, a:b]`` of one (so that bands
                of several record kinds land in one array without a copy). Reusing one buffer
                saves allocating (and faulting in) a new one per call, which dominates large
                batches.

        >>> x = ds.batch(ds.keys()[:4], ["B02", "B03", "B04"], size=120)  # doctest: +SKIP
        >>> x.shape, x.dtype  # doctest: +SKIP
        ((4, 3, 120, 120), dtype('float32'))
        >>> buf = np.empty((4, 3, 120, 120), np.float32)  # doctest: +SKIP
        >>> ds.batch(ds.keys()[4:8], ["B02", "B03", "B04"], size=120, out=buf) is buf  # doctest: +SKIP
        True
        >>> both = np.empty((4, 5, 120, 120), np.float32)  # doctest: +SKIP
        >>> _ = ds.batch(s1_keys, ["VV", "VH"], size=120, out=both[:, 3:])  # doctest: +SKIP
        """
        return self.db.batch(
            list(keys),
            list(bands),
            size,
            resample,
            dtype,
            None if mean is None else [float(m) for m in mean],
            None if std is None else [float(s) for s in std],
            threads,
            out,
        )

    def info(self, sample: int = 64) -> dict:
        """Records, size in bytes, whether sharded, and ``{band: {"dtype", "shapes"}}`` from
        up to ``sample`` records spread over the keys (what ``rico info PATH`` prints).

        >>> rico.open("BigEarthNet.lmdb").info()["records"]  # doctest: +SKIP
        549488
        """
        return dict(self.db.summary(sample))

    def bands(self) -> list[str]:
        """Band names of the first record (empty for an empty database)."""
        keys = self.keys()
        return list(self[keys[0]]) if keys else []

    def __repr__(self) -> str:
        state = "closed" if self._db is None else f"{len(self)} records"
        return f"rico.Dataset({self._path!r}, {state})"


def info(path: Union[str, os.PathLike[str]], sample: int = 64) -> dict:
    """Describe the database at ``path``; see :meth:`Dataset.info`."""
    with Dataset(path) as ds:
        return ds.info(sample)


def open(path: Union[str, os.PathLike[str]]) -> Dataset:  # noqa: A001 - the rasterio idiom
    """Open a database written by rico or by rico-hdl, read-only.

    >>> import rico
    >>> ds = rico.open("BigEarthNet.lmdb")  # doctest: +SKIP
    """
    return Dataset(path)


def bench(
    path: Union[str, os.PathLike[str]],
    bands: Optional[Sequence[str]] = None,
    size: Optional[int] = None,
    batch: int = 32,
    threads: Optional[int] = None,
    seconds: float = 2.0,
) -> dict:
    """Measure what this machine and its storage deliver from the database at ``path``
    (what ``rico bench PATH`` prints): compare local SSD, NFS or a parallel filesystem before
    training.

    Three measurements of ``seconds`` each, with ``threads`` reader threads (1 to 1024;
    default: one per core): ``"sequential"`` and ``"random"`` record reads (get, header checks, a byte of every
    4 KiB page touched so that the OS really reads) and ``"batches"`` of ``batch`` records
    assembled as :meth:`Dataset.batch` does (``bands``, default the first record's; ``size``,
    default their own shape or the largest side). Each is a dict with ``records``, ``bytes``,
    ``seconds``, ``records_per_second``, ``mb_per_second`` and ``passes`` (records read over
    records available: above 1, the rest came from the page cache). ``"text"`` holds the table.

    >>> report = rico.bench("BigEarthNet.lmdb", bands=["B04", "B03", "B02"], size=120)  # doctest: +SKIP
    >>> report["random"]["records_per_second"]  # doctest: +SKIP
    41873.2
    """
    return dict(
        _rico.bench(
            os.fspath(path),
            None if bands is None else [str(b) for b in bands],
            size,
            batch,
            threads,
            float(seconds),
        )
    )
