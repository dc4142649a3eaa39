"""rico: remote-sensing datasets to LMDB + safetensors, read back zero-copy.

Convert a dataset once, then train from the database::

    import rico
    summary = rico.convert(
        "bigearthnet",
        target_dir="ben.lmdb",
        bigearthnet_s2_dir="BigEarthNet-S2",
        bigearthnet_s1_dir="BigEarthNet-S1",
    )
    print(summary.records, "records")

Every record is ``patch name -> safetensors(band -> 2-D array)``, byte-identical to what the
reference tool (rico-hdl) writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

from . import _rico
from ._rico import DataError, OutputError, RicoError, UsageError, read_raster

__version__: str = _rico.__version__

__all__ = [
    "ConvertSummary",
    "DataError",
    "OutputError",
    "RicoError",
    "UsageError",
    "convert",
    "datasets",
    "read_raster",
]

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

    @property
    def patches_per_second(self) -> float:
        """Records written per second of wall-clock time."""
        return self.records / max(self.seconds, 1e-9)

    def __str__(self) -> str:
        return self.line


def datasets() -> dict[str, list[str]]:
    """The datasets :func:`convert` knows, with the source options of each.

    >>> "bigearthnet_s2_dir" in rico.datasets()["bigearthnet"]
    True
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
    **sources: PathLike,
) -> ConvertSummary:
    """Convert ``dataset`` from its source directories into an LMDB database at ``target_dir``.

    The Rust engine runs with the GIL released: decoding in ``threads`` threads (default one
    per core), one writer committing records in sorted source order.

    Args:
        dataset: a name from :func:`datasets`, e.g. ``"bigearthnet"``.
        target_dir: a new or empty directory (or, with ``resume``, an existing database).
        threads: decoder threads; ``None`` = one per core.
        progress: draw a progress bar on stderr; ``None`` = only when stderr is a terminal.
        resume: finish an interrupted conversion into ``target_dir``.
        skip_invalid: leave out patches with bad files (listed in ``rico-skipped.tsv``).
        **sources: the dataset's source directories, named like the CLI flags with
            underscores, e.g. ``bigearthnet_s2_dir="BigEarthNet-S2"``.

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
    summary = _rico.convert(
        dataset,
        os.fspath(target_dir),
        {name: os.fspath(path) for name, path in sources.items()},
        threads=threads,
        progress=progress,
        resume=resume,
        skip_invalid=skip_invalid,
    )
    return ConvertSummary(**summary)

from .dataset import Dataset, info, open  # noqa: E402
from .loader import Loader, load_labels  # noqa: E402

__all__ += ["Dataset", "Loader", "info", "load_labels", "open"]
