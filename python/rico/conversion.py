"""What ``rico.convert``, ``rico.verify`` and ``rico.datasets`` do: the Python surface of the
Rust conversion engine (and of Dask-sharded conversions, :mod:`rico.distributed`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional, Union

from . import _rico
from ._rico import UsageError

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class ConvertSummary:
    """What a conversion did.

    >>> s = ConvertSummary(records=2, already_present=0, skipped=0, files=3,
    ...                    source_bytes=10, record_bytes=12, seconds=0.5, threads=2, line="")
    >>> s.patches_per_second
    4.0
    """

    records: int
    already_present: int
    skipped: int
    files: int
    source_bytes: int
    record_bytes: int
    seconds: float
    threads: int
    line: str
    labels_table: Optional[str] = None
    """Path of the labels table written beside the database (``labels.csv``), if any."""

    @property
    def patches_per_second(self) -> float:
        """Records written per second of wall-clock time."""
        return self.records / max(self.seconds, 1e-9)

    def __str__(self) -> str:
        return self.line


def datasets() -> dict[str, list[str]]:
    """The datasets :func:`convert` knows, with the options of each: source directories
    (names ending in ``_dir``), then value options.

    >>> "bigearthnet_s2_dir" in rico.datasets()["bigearthnet"]
    True
    >>> rico.datasets()["bands"]
    ['dataset_dir', 'pattern']
    """
    return dict(_rico.datasets())


def convert(
    dataset: str,
    target_dir: PathLike,
    *,
    threads: Optional[int] = None,
    progress: Optional[bool] = None,
    resume: bool = False,
    skip_invalid: bool = False,
    shards: Optional[int] = None,
    client: Optional[object] = None,
    io_depth: Optional[int] = None,
    buffer_mb: Optional[int] = None,
    max_held_mb: Optional[int] = None,
    fetch_parts: Optional[int] = None,
    fetch_part_mb: Optional[int] = None,
    insecure_tls: bool = False,
    read_timeout: Optional[float] = None,
    keys: Optional[Sequence[str]] = None,
    **options: Union[PathLike, int, Sequence[str]],
) -> ConvertSummary:
    """Convert ``dataset`` from its source directories into an LMDB database at ``target_dir``.

    The Rust engine runs with the GIL released: decoding in ``threads`` threads (default one
    per core), one writer committing records in sorted source order.

    Args:
        dataset: a name from :func:`datasets`, e.g. ``"bigearthnet"``.
        target_dir: a new or empty directory (or, with ``resume``, an existing database).
        threads: decoder threads, 1 to 1024 (``rico._rico.MAX_THREADS``); ``None`` = one per
            core. A count outside that range raises :class:`UsageError` before any work.
        io_depth: source files read at once, apart from the decoders, 1 to 1024; ``None`` = 32
            (serves cold local disks and NFS; raise it for high-latency filesystems such as
            Lustre).
        buffer_mb: megabytes of source files and records held at once (the chunks between
            reading, decoding and writing, and the open transaction), 4 to 65536; ``None`` =
            64, about 110 MB peak memory converting BigEarthNet at any size. Lower it on a
            crowded node; raise it for fewer, larger commits.
        max_held_mb: with archives and Parquet files, the most megabytes of incomplete patches
            held while one is read (and the largest member read); ``None`` = 1024. Raise it for
            an archive whose members come shuffled.
        fetch_parts: with URLs (``https://``, ``s3://``), ranged requests in flight for one
            object; ``None`` = 4.
        fetch_part_mb: with URLs, megabytes asked for by one ranged request; ``None`` = 4.
        insecure_tls: accept ``https://`` certificates that do not verify (off by default).
        read_timeout: with URLs, seconds a request may go without receiving a byte before it
            is abandoned and retried; ``None`` = 30. A range that gets nothing for three times
            this stops the conversion with an error naming the URL. Above 0, at most 86400.
        keys: convert only the patches with these keys; files of other patches are not read
            (archive members skipped, Parquet row groups not fetched).
        progress: draw a progress bar on stderr; ``None`` = only when stderr is a terminal.
        resume: finish an interrupted conversion into ``target_dir``.
        skip_invalid: leave out patches with bad files (listed in ``rico-skipped.tsv``).
        shards: cut the sorted patch list into this many contiguous shards, each an LMDB
            directory ``shard-NNNNN/`` under ``target_dir``, plus ``rico-manifest.json``;
            :func:`open` reads them as one database.
        client: a ``dask.distributed.Client``: each shard runs as one task on a worker (the
            paths must be on a filesystem every worker and the client see). Needs ``shards``.
        **options: the dataset's options, named like the CLI flags with underscores:
            its sources (every name ending in ``_dir``), e.g.
            ``bigearthnet_s2_dir="BigEarthNet-S2"``: a folder, the archive it ships as
            (``.tar``, ``.tar.gz``, ``.tar.zst``, ``.zip``; ``"BigEarthNet-S2.tar.zst"``), a
            Major-TOM Parquet file or folder of them, a glob (``"hyspecnet-*.tar.gz"``), a
            list of parts, or any of these behind an ``https://`` or ``s3://`` URL (credentials
            from ``AWS_*`` and the AWS profile files); and its value options, e.g.
            ``pattern=r"(?P<key>.+)_(?P<band>B\\d+)\\.tif$"`` for ``"bands"``,
            ``key_parents=1`` or ``band_names=["Red", "Green", "Blue"]`` for
            ``"image-folder"`` (a list is joined with commas, a number written out).

    Returns:
        A :class:`ConvertSummary`.

    Raises:
        UsageError: unknown dataset or option, a missing or empty source, an unusable target.
        DataError: a bad source file (the message names it), a missing band, a duplicate key.
        OutputError: the database cannot be written.

    >>> import rico, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "db"
    >>> rico.convert("bigearthnet", out)  # no source given
    Traceback (most recent call last):
    ...
    rico._rico.UsageError: no source directory given; give at least one of --bigearthnet-s1-dir, --bigearthnet-s2-dir or --bigearthnet-reference-maps-dir
    """
    sources, params = _split_options(options)
    # The keywords above that are engine options (all but `client`), passed on as given.
    engine = {k: v for k, v in locals().items() if k in _rico.CONVERT_OPTIONS}
    if keys is not None:
        engine["keys"] = [str(k) for k in keys]
    if client is not None:
        if not shards:
            raise UsageError("a Dask client runs shards: pass shards=N as well")
        from .distributed import convert_on_cluster

        summary = convert_on_cluster(
            client, dataset, os.fspath(target_dir), sources, params, engine
        )
        return ConvertSummary(**summary)
    summary = _rico.convert(dataset, os.fspath(target_dir), sources, params, **engine)
    return ConvertSummary(**summary)


def verify(
    dataset: str,
    target_dir: PathLike,
    **options: Union[PathLike, int, float, Sequence[str], None],
) -> dict:
    """Re-decode the sources of a conversion and compare them with the database record by record.

    Takes the same options as :func:`convert` (those that writing alone has, such as
    ``resume`` or ``shards``, do nothing here). Returns ``{"ok", "checked", "matching",
    "missing", "extra", "differing", "unreadable", "manifest", "text"}`` (``missing``, ``extra``
    and ``differing``: lists of keys; ``manifest``: where a sharded dataset's manifest, shard
    markers or plans disagree with its shards).

    >>> report = rico.verify("bigearthnet", "ben.lmdb", bigearthnet_s2_dir="BigEarthNet-S2")  # doctest: +SKIP
    >>> report["ok"]  # doctest: +SKIP
    True
    """
    engine = {k: options.pop(k) for k in list(options) if k in _rico.CONVERT_OPTIONS}
    sources, params = _split_options(options)
    return dict(_rico.verify(dataset, os.fspath(target_dir), sources, params, **engine))


def _split_options(options: dict) -> tuple[dict[str, str], dict[str, str]]:
    """(source directories, value options) of a dataset's options, as the engine takes them."""
    # Source options all end in `_dir` (a rule of rico's presets); the rest are values.
    sources = {k: _source_value(v) for k, v in options.items() if k.endswith("_dir")}
    params = {k: _param_value(v) for k, v in options.items() if not k.endswith("_dir")}
    return sources, params


def _source_value(value: object) -> Union[str, list[str]]:
    """A source option's value: one path (a folder, an archive, a Parquet file or a glob of
    them), or a list of paths (the parts of one source)."""
    if isinstance(value, (list, tuple)):
        return [os.fspath(v) for v in value]
    return os.fspath(value)  # type: ignore[arg-type]


def _param_value(value: object) -> str:
    """A value option as the CLI would take it: lists comma-joined, numbers written out."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        raise TypeError(f"a value option cannot be a bool ({value!r})")
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)
