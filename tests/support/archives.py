"""Archives and Parquet files built from a source folder the way datasets ship them: ``tar`` (plain,
gzip, zstd) and ``zip`` with the folder as their one top-level entry (or packed from inside it),
members in name order or shuffled, and Major-TOM's hub Parquet schema (one row group per
product)."""

from __future__ import annotations

import gzip
import io
import random
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Optional


def members(src: Path, top: bool = True) -> list[tuple[str, Optional[Path]]]:
    """(name in the archive, file or ``None`` for a folder) of every folder and file under
    ``src``, in name order; names start with ``src.name/`` when ``top``, else with ``./`` (as
    ``tar -C src -cf out .`` writes them)."""
    out: list[tuple[str, Optional[Path]]] = []
    prefix = src.name + "/" if top else "./"
    out.append((prefix, None))
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        out.append((prefix + rel + ("/" if path.is_dir() else ""), None if path.is_dir() else path))
    return out


def _compress(raw: bytes, out: Path) -> bytes:
    name = out.name.lower()
    if name.endswith((".tar.gz", ".tgz")):
        return gzip.compress(raw, compresslevel=6, mtime=0)
    if name.endswith((".tar.zst", ".tzst")):
        import zstandard

        return zstandard.ZstdCompressor(level=3).compress(raw)
    if name.endswith(".tar"):
        return raw
    raise ValueError(f"not a tar archive name: {out}")


def pack_tar(
    src: Path,
    out: Path,
    *,
    top: bool = True,
    shuffle: Optional[int] = None,
    entries: Optional[Iterable[tuple[str, Optional[Path]]]] = None,
) -> Path:
    """Packs ``src`` into the tar archive ``out``, compressed by its ending (``.tar``,
    ``.tar.gz``/``.tgz``, ``.tar.zst``). ``shuffle=seed`` puts the files in a seeded random
    order (folders dropped, as an archive written from an unsorted listing may); ``entries``
    replaces the member list."""
    items = list(entries) if entries is not None else members(src, top)
    if shuffle is not None:
        items = [m for m in items if m[1] is not None]
        random.Random(shuffle).shuffle(items)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in items:
            info = tarfile.TarInfo(name.rstrip("/") if path is None else name)
            info.mtime = 0
            if path is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                data = path.read_bytes()
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    out.write_bytes(_compress(buf.getvalue(), out))
    return out


def pack_zip(src: Path, out: Path, *, top: bool = True) -> Path:
    """Packs ``src`` into the zip archive ``out`` (deflate), folders included."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, path in members(src, top):
            if path is None:
                z.writestr(zipfile.ZipInfo(name), b"")
            else:
                z.write(path, name)
    return out


#: The band columns of Major-TOM Core-S2L2A's hub Parquet files.
MAJOR_TOM_S2_BANDS = [
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12",
]  # fmt: skip


def major_tom_parquet(products: Iterable[Path], out: Path) -> Path:
    """Writes ``out``, a Parquet file of Major-TOM's hub schema holding each product folder
    (``.../<grid_cell>/<product_id>/``) as one row, in a row group of its own: ``product_id``,
    ``grid_cell``, ``timestamp``, one binary column of GeoTIFF bytes per band, ``cloud_mask``,
    ``thumbnail``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for product in products:
        row = {
            "product_id": product.name,
            "grid_cell": product.parent.name,
            "timestamp": product.name.split("_")[2],
        }
        for band in MAJOR_TOM_S2_BANDS:
            row[band] = (product / f"{band}.tif").read_bytes()
        row["cloud_mask"] = (product / "cloud_mask.tif").read_bytes()
        row["thumbnail"] = (product / "thumbnail.png").read_bytes()
        rows.append(row)
    schema = pa.schema(
        [("product_id", pa.string()), ("grid_cell", pa.string()), ("timestamp", pa.string())]
        + [(b, pa.binary()) for b in MAJOR_TOM_S2_BANDS]
        + [("cloud_mask", pa.binary()), ("thumbnail", pa.binary())]
    )
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, out, row_group_size=1, compression="snappy")
    return out
