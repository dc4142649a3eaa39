"""``rico.BigEarthNet``: one split of BigEarthNet v2 from a converted database and its
``metadata.parquet``, as samples and batches."""

from __future__ import annotations

import functools
import numbers
import os
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np

from .._handle import PerProcess
from .._rico import UsageError
from ..dataset import Dataset
from .checks import InputValueError, check_size, check_threads
from .loader import BigEarthNetLoader
from .metadata import bool_column, check_unique, multi_hot, read_metadata, string_column
from .normalization import Normalize, normalization
from .tables import (
    CLASSES,
    MAP_BAND,
    MAP_SUFFIX,
    S1_BANDS,
    S2_BANDS,
    SPLITS,
    resolve_bands,
    to_classes,
)

PathLike = Union[str, "os.PathLike[str]"]


class BigEarthNet:
    """One split of BigEarthNet v2 from a converted database and its ``metadata.parquet``.

    Rows are the table's rows of ``split``, in table order, without the patches marked as
    seasonal snow or cloud/shadow (the reBEN paper's recommendation) unless
    ``include_snow_cloud``. ``ben[i]`` is a dict:

    - ``"image"``: float32 ``(C, size, size)``: S2 bands from the row's ``patch_id`` record,
      S1 bands (VV, VH) from its ``s1_name`` record, in the order of ``bands``;
    - ``"label"``: float32 ``(19,)`` multi-hot in the order of ``ben.classes``;
    - ``"mask"``: uint8 ``(size, size)``: the reference map (record ``<patch_id>_reference_map``,
      band ``Data``) with CLC codes mapped to class indices by :data:`CLC_TO_CLASS`, 255 elsewhere
      (only when the database holds reference maps, or ``masks=True``);
    - ``"key"``: the ``patch_id``.

    Args:
        db: a database converted by rico or rico-hdl (``rico bigearthnet ...``), path or
            :class:`rico.Dataset`.
        metadata: BigEarthNet v2's ``metadata.parquet``; a relative path not found from the
            working directory is looked up beside the database.
        split: ``"train"``, ``"validation"`` (or ``"val"``), ``"test"``; ``None`` = every row.
        bands: a preset name (see the module's table: ``"S1"``, ``"S2"``, ``"ALL"``, ``"RGB"``,
            ``"10m"``, ``"20m"``, ``"60m"``, ``10``, ``12``, ...) or a list of band names.
        size: every band is resampled to ``size x size`` (the masks too, nearest).
        resample: ``"nearest"`` (whole factors: repetition), ``"bilinear"`` (torch's
            ``align_corners=True``, ConfigILM's convention) or ``"bilinear-gdal"`` (rasterio's
            bilinear reads, TorchGeo's convention; ``"bilinear-gdal:nodata=0"`` for
            BigEarthNet's Sentinel-2 files, which declare nodata 0).
        normalize: ``None`` (raw values); ``"bigearthnet-v2"`` (ConfigILM's published train-split
            statistics at ``size`` and ``resample``); the path of a ``rico stats`` JSON file;
            or ``(mean, std)`` / ``{"mean": [...], "std": [...]}``, one value per band.
        include_snow_cloud: keep the patches marked as snow or cloud/shadow.
        label_order: ``"nomenclature"`` (:data:`CLASSES`, the default) or ``"lexicographic"``
            (sorted: ConfigILM's default order).
        masks: ``None`` = when the database holds the first row's reference map; ``True``
            requires them; ``False`` leaves them out.
        on_missing: ``"raise"`` (default): a ``patch_id``, ``s1_name`` or reference map missing
            from the database is an error naming it; ``"drop"``: such rows are left out
            (``ben.dropped`` lists their ``patch_id``).
        threads: threads for batches, 1 to 1024 (default: one per core).

    Raises:
        rico.UsageError: a missing column, an unknown label or band, a split that selects no
            row, a key missing from the database (with ``on_missing="raise"``).
        rico.bigearthnet.InputValueError: (a ``rico.UsageError`` and a ``ValueError``) a table
            without rows, a ``patch_id`` in more than one row, a null ``patch_id``,
            ``s1_name`` or ``labels``, a ``size`` outside 1..65536, a ``normalize`` without
            ``mean`` or ``std``, or with a mean that is not finite or a std not above 0; each
            names the file, column and row, or the argument.
        rico.bigearthnet.InputTypeError: (a ``rico.UsageError`` and a ``TypeError``) a column
            of the wrong type (``patch_id`` or ``s1_name`` not text, ``labels`` not lists of
            text, the snow and cloud columns not booleans), a ``size`` that is not a whole
            number, a ``normalize`` or statistics value of the wrong type.
        ImportError: pyarrow is not installed (``pip install 'rico-eo[bigearthnet]'``).

    >>> ben = rico.BigEarthNet("BigEarthNet.lmdb", split="val", bands="RGB")  # doctest: +SKIP
    >>> ben[0]["image"].shape, ben.classes[0]  # doctest: +SKIP
    ((3, 120, 120), 'Urban fabric')
    """

    #: The 19 classes in the nomenclature's order; ``ben.classes`` is the order in use.
    classes: tuple[str, ...] = CLASSES

    def __init__(
        self,
        db: Union[PathLike, Dataset],
        metadata: PathLike = "metadata.parquet",
        split: Optional[str] = "train",
        bands: Union[str, int, Sequence[str]] = "ALL",
        size: int = 120,
        resample: str = "nearest",
        normalize: Normalize = None,
        include_snow_cloud: bool = False,
        label_order: str = "nomenclature",
        masks: Optional[bool] = None,
        on_missing: str = "raise",
        threads: Optional[int] = None,
    ) -> None:
        self.path = db.path if isinstance(db, Dataset) else os.fspath(db)
        # Opened on first use in each process (re-opened after a fork), so that it pickles.
        self._ds = PerProcess(
            functools.partial(Dataset, self.path), db if isinstance(db, Dataset) else None
        )
        self.bands = resolve_bands(bands)
        if resample not in ("nearest", "bilinear") and not (
            resample == "bilinear-gdal" or str(resample).startswith("bilinear-gdal:nodata=")
        ):
            raise UsageError(
                f'unknown resample {resample!r}; use "nearest", "bilinear" or "bilinear-gdal" '
                '(rasterio\'s bilinear, "bilinear-gdal:nodata=V" for bands with nodata V)'
            )
        if on_missing not in ("raise", "drop"):
            raise UsageError(f'on_missing must be "raise" or "drop", not {on_missing!r}')
        self.size, self.resample = check_size(size), resample
        self.threads = check_threads(threads)
        if label_order == "nomenclature":
            self.classes = CLASSES
        elif label_order == "lexicographic":
            self.classes = tuple(sorted(CLASSES))
        else:
            raise UsageError(
                f'label_order must be "nomenclature" or "lexicographic", not {label_order!r}'
            )
        if split is not None and split not in SPLITS:
            raise UsageError(
                f"unknown split {split!r}; use train, validation (or val), test, or None for all rows"
            )
        self.split = None if split is None else SPLITS[split]
        self.mean, self.std = normalization(normalize, self.bands, self.size, self.resample)

        # Channel positions of each sensor's bands (the image is read in runs: see _runs).
        self._s2 = [(c, b) for c, b in enumerate(self.bands) if b in S2_BANDS]
        self._s1 = [(c, b) for c, b in enumerate(self.bands) if b in S1_BANDS]

        self.metadata = self._find_metadata(os.fspath(metadata))
        columns = ["patch_id", "labels", "split"]
        if self._s1:
            columns.append("s1_name")
        if not include_snow_cloud:
            columns += ["contains_seasonal_snow", "contains_cloud_or_shadow"]
        table = read_metadata(self.metadata, columns)
        if table.num_rows == 0:
            raise InputValueError(
                f"{self.metadata} has no rows; give BigEarthNet v2's metadata.parquet "
                "(one row per patch)"
            )
        # Column types, nulls and duplicate patches are checked on the whole table, so that
        # an error names the file's row.
        every_row = np.arange(table.num_rows)
        patch_ids = string_column(table, "patch_id", self.metadata, every_row)
        check_unique(patch_ids, self.metadata)
        s1_names = string_column(table, "s1_name", self.metadata, every_row) if self._s1 else None
        keep = np.ones(table.num_rows, dtype=bool)
        if self.split is not None:
            splits = table.column("split").to_numpy(zero_copy_only=False)
            keep &= splits == self.split
            if not keep.any():
                have = sorted({str(s) for s in splits})
                raise UsageError(
                    f"split {split!r} selects no row of {self.metadata}; its splits are {', '.join(have)}"
                )
        if not include_snow_cloud:
            marked = bool_column(table, "contains_seasonal_snow", self.metadata) | bool_column(
                table, "contains_cloud_or_shadow", self.metadata
            )
            if keep.any() and not (keep & ~marked).any():
                raise UsageError(
                    f"every row of split {split!r} in {self.metadata} is marked as snow or cloud; "
                    "pass include_snow_cloud=True to keep them"
                )
            keep &= ~marked
        rows = np.flatnonzero(keep)
        table = table.take(rows)
        self.keys: list[str] = [patch_ids[i] for i in rows]
        self.s1_names: Optional[list[str]] = (
            None if s1_names is None else [s1_names[i] for i in rows]
        )
        self.labels = multi_hot(table, self.classes, self.metadata, rows)
        self.masks = self._check_records(masks, on_missing)

    # -- setup ------------------------------------------------------------------------------
    def _find_metadata(self, metadata: str) -> str:
        if not os.path.isabs(metadata) and not os.path.exists(metadata):
            beside = os.path.join(os.path.dirname(os.path.abspath(self.path)), metadata)
            if os.path.exists(beside):
                return beside
        return metadata

    def _check_records(self, masks: Optional[bool], on_missing: str) -> bool:
        db = self.dataset
        if masks is None:
            masks = bool(self.keys) and self.keys[0] + MAP_SUFFIX in db
        needed: list[tuple[str, list[str]]] = []
        if self._s2:
            needed.append(("patch_id", self.keys))
        if self._s1:
            needed.append(("s1_name", self.s1_names or []))
        if masks:
            needed.append(("reference map", [k + MAP_SUFFIX for k in self.keys]))
        ok = np.ones(len(self.keys), dtype=bool)
        for what, keys in needed:
            present = np.fromiter((k in db for k in keys), dtype=bool, count=len(keys))
            if not present.all() and on_missing == "raise":
                first = keys[int(np.flatnonzero(~present)[0])]
                raise UsageError(
                    f"{what} {first!r} is not in the database {self.path} "
                    f"({int((~present).sum())} of {len(keys)} rows miss their {what} record); "
                    "convert the missing patches, or pass on_missing='drop' to leave such rows out"
                )
            ok &= present
        self.dropped: list[str] = [k for k, o in zip(self.keys, ok) if not o]
        if self.dropped:
            self._keep_rows(np.flatnonzero(ok))
            if not self.keys:
                raise UsageError(f"no row of the split has its records in the database {self.path}")
        return bool(masks)

    def _keep_rows(self, rows: Sequence[int]) -> None:
        """Keeps only ``rows`` (positions of the current rows, in the order given)."""
        self.keys = [self.keys[i] for i in rows]
        if self.s1_names is not None:
            self.s1_names = [self.s1_names[i] for i in rows]
        self.labels = self.labels[np.asarray(rows, dtype=np.int64)]

    @property
    def dataset(self) -> Dataset:
        """The open database (re-opened after a fork)."""
        return self._ds.get()

    # -- samples and batches ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.keys)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for {n} rows")
        batch = self.batch([index % n], threads=1)
        return {k: v[0] for k, v in batch.items()}

    def batch(self, indices: Sequence[int], threads: Optional[int] = None) -> dict[str, Any]:
        """The rows ``indices`` as one batch: ``image`` ``(N, C, size, size)``, ``label``
        ``(N, 19)``, ``mask`` ``(N, size, size)`` and ``key`` (a list). No indices give an
        empty batch of those shapes (N = 0); an index out of range raises ``IndexError``.

        >>> b = ben.batch(range(32))  # doctest: +SKIP
        >>> b["image"].shape  # doctest: +SKIP
        (32, 14, 120, 120)
        """
        n = len(self.keys)
        rows = []
        for i in indices:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral):
                raise TypeError(f"batch indices must be whole numbers, not {i!r}")
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of range for {n} rows")
            rows.append(int(i) % n)
        threads = self.threads if threads is None else check_threads(threads)
        if not rows:
            empty: dict[str, Any] = {
                "image": np.empty((0, len(self.bands), self.size, self.size), dtype=np.float32),
                "label": self.labels[:0],
            }
            if self.masks:
                empty["mask"] = np.empty((0, self.size, self.size), dtype=np.uint8)
            empty["key"] = []
            return empty
        out: dict[str, Any] = {"image": self._images(rows, threads)}
        out["label"] = self.labels[rows]
        if self.masks:
            out["mask"] = self._masks(rows, threads)
        out["key"] = [self.keys[i] for i in rows]
        return out

    def _group_args(self, group: list[tuple[int, str]]) -> dict[str, Any]:
        channels = [c for c, _ in group]
        return dict(
            bands=[b for _, b in group],
            size=self.size,
            resample=self.resample,
            mean=None if self.mean is None else [self.mean[c] for c in channels],
            std=None if self.std is None else [self.std[c] for c in channels],
        )

    def _sensors(self) -> list[tuple[list[tuple[int, str]], list[str]]]:
        """(channels, keys of every row) of each sensor asked for: S2 bands from the patch_ids,
        S1 bands from the s1_names."""
        groups = []
        if self._s2:
            groups.append((self._s2, self.keys))
        if self._s1:
            groups.append((self._s1, self.s1_names or []))
        return groups

    def _band_records(self) -> list[str]:
        """The records of every row that hold the bands asked for: the patch_ids for S2 bands,
        then the s1_names for S1 bands (the keys ``rico stats`` reads)."""
        return [key for _, keys in self._sensors() for key in keys]

    def _runs(self) -> list[tuple[slice, dict[str, Any], list[str]]]:
        """The image's channels cut into runs of one sensor's bands, in channel order: (the
        run's channels, its batch arguments, the records of every row that hold them: patch_ids
        for S2 bands, s1_names for S1 bands). Rust writes each run in place into the image (no
        per-sensor arrays, no interleaving copy), in batches and in the loader alike."""
        runs: list[tuple[bool, list[tuple[int, str]]]] = []
        for c, band in enumerate(self.bands):
            s1 = band in S1_BANDS
            if runs and runs[-1][0] == s1:
                runs[-1][1].append((c, band))
            else:
                runs.append((s1, [(c, band)]))
        return [
            (
                slice(group[0][0], group[-1][0] + 1),
                self._group_args(group),
                (self.s1_names or []) if s1 else self.keys,
            )
            for s1, group in runs
        ]

    def _images(self, rows: list[int], threads: Optional[int]) -> np.ndarray:
        """The one place a batch's images are read: one Rust batch per run of channels."""
        ds = self.dataset
        image = np.empty((len(rows), len(self.bands), self.size, self.size), dtype=np.float32)
        for channels, args, keys in self._runs():
            ds.batch([keys[i] for i in rows], threads=threads, out=image[:, channels], **args)
        return image

    def _masks(self, rows: list[int], threads: Optional[int]) -> np.ndarray:
        keys = [self.keys[i] + MAP_SUFFIX for i in rows]
        codes = self.dataset.batch(
            keys, [MAP_BAND], size=self.size, resample="nearest", threads=threads
        )
        return to_classes(codes)

    def loader(
        self,
        batch_size: int = 32,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
        threads: Optional[int] = None,
        prefetch: int = 2,
        keep: int = 1,
    ) -> BigEarthNetLoader:
        """Batches of this split, assembled and prefetched by Rust threads (rico-core's
        prefetcher and batch ring, as :class:`rico.Loader`'s). Same order rules as
        :class:`rico.Loader`: each epoch's order depends only on ``seed`` and the epoch
        (:meth:`BigEarthNetLoader.set_epoch`), and ``world_size`` ranks get disjoint parts of
        equal size.

        Same memory rule as :class:`rico.Loader`: images are written into a ring of
        ``keep + 1 + prefetch`` reused buffers and masks into ``keep + 1`` (no fresh memory per
        batch: a 512-batch of 14 bands is 413 MB), so a yielded batch stays valid while
        ``keep`` further batches are yielded. Copy what you keep longer.

        >>> for batch in ben.loader(batch_size=64, seed=0):  # doctest: +SKIP
        ...     x, y = batch["image"], batch["label"]
        """
        return BigEarthNetLoader(
            self, batch_size, shuffle, seed, rank, world_size, drop_last,
            self.threads if threads is None else threads, prefetch, keep,
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"rico.BigEarthNet({self.path!r}, split={self.split!r}, {len(self)} rows, "
            f"bands={self.bands}, size={self.size}, resample={self.resample!r})"
        )
