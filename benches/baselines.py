#!/usr/bin/env python3
"""What rico is measured against: the ways users convert and read these datasets without it.

Every baseline is a plain function over a BigEarthNet-shaped tree (``benches/make_dataset.py``)
or a database, returning a dict of figures. ``benches/compare.py`` runs each one in its own
process (so that its peak RSS is its own) through ``python benches/baselines.py NAME ...``,
which prints one JSON line.

- ``reference_convert``: a converter built the way the reference tool is: rasterio reads in a
  ``ProcessPoolExecutor(max_workers=N)``, ``safetensors.numpy.save`` per patch, py-lmdb
  transactions of 512 records. Same keys and band names as rico, so the two databases are
  equal record for record (``compare.py`` asserts it).
- ``lmdb_safetensors_read``: py-lmdb ``get`` + ``safetensors.numpy.load`` per record.
- ``configilm_batches``: the ConfigILM-style training sample: load, nearest-upsample every
  band to the target size with ``numpy.repeat``, stack, float32; batches stacked as a torch
  collate would.
- ``rasterio_read``: reading the GeoTIFFs directly with rasterio, one patch at a time.
- ``copy_floor``: copy every source byte into one file and fsync it: no converter can write a
  database of the same bytes faster.
- ``memcpy_bandwidth``: numpy copy of a large buffer: the ceiling of any batch assembly.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import _tests_path  # noqa: F401  (first: tests/ on sys.path)
import numpy as np
from support.bands import S2_BANDS
from support.bigearthnet import source_dirs

os.environ.setdefault("CPL_LOG", "/dev/null")  # GDAL's chatter

# The BigEarthNet preset's patterns (rust/rico-core/src/datasets.rs), on '/'-separated paths
# relative to each source root.
S1_PATTERN = re.compile(r"(?:^|/)(?P<key>S1[AB]_IW_GRDH_[^/]*_\d+_\d+)/[^/]*_(?P<band>VH|VV)\.tif$")
S2_PATTERN = re.compile(
    r"(?:^|/)(?P<key>S2[AB]_MSIL2A_[^/]*_\d+_\d+)/[^/]*_(?P<band>B0[1-9]|B1[12]|B8A)\.tif$"
)
MAP_PATTERN = re.compile(r"(?:^|/)(?P<key>S2[AB]_MSIL2A_[^/]*_\d+_\d+_reference_map)\.tif$")

#: Records per write transaction, as the reference tool commits them.
TXN_RECORDS = 512
#: The reference tool maps generously up front; 64 GiB is plenty and safe on this machine.
MAP_SIZE = 64 << 30

Patch = tuple[str, list[tuple[str, str]]]  # (key, [(band, path), ...])


def _walk(root: Path) -> Iterable[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            yield name if rel == "." else f"{rel}/{name}".replace(os.sep, "/")


def find_patches(tree: Path) -> list[Patch]:
    """Every patch of the tree: key and (band, path) of its files, sorted by key."""
    patches: dict[str, list[tuple[str, str]]] = {}
    dirs = source_dirs(tree)
    for source, pattern in (("s1", S1_PATTERN), ("s2", S2_PATTERN), ("maps", MAP_PATTERN)):
        root = dirs[source]
        if not root.is_dir():
            continue
        for rel in _walk(root):
            m = pattern.search(rel)
            if m is None:
                continue
            band = m.group("band") if source != "maps" else "Data"
            patches.setdefault(m.group("key"), []).append((band, str(root / rel)))
    return sorted((key, sorted(files)) for key, files in patches.items())


def source_files(tree: Path) -> list[str]:
    """Every source file the conversion reads."""
    return [path for _, files in find_patches(tree) for _, path in files]


# -- conversion -------------------------------------------------------------------------------


def encode_patch(patch: Patch) -> tuple[bytes, bytes, int]:
    """Reads a patch's files with rasterio; returns (key, safetensors bytes, source bytes)."""
    import rasterio
    from safetensors.numpy import save

    key, files = patch
    bands = {}
    source_bytes = 0
    for band, path in files:
        with rasterio.open(path) as src:
            bands[band] = src.read(1)
        source_bytes += os.path.getsize(path)
    return key.encode(), save(bands), source_bytes


def reference_convert(tree: Path, target: Path, workers: int) -> dict:
    """The reference-style converter: rasterio in a process pool, py-lmdb, 512 records a txn."""
    import lmdb

    start = time.perf_counter()
    patches = find_patches(tree)
    target.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(target), map_size=MAP_SIZE)
    records = source_bytes = record_bytes = 0
    # chunksize keeps inter-process traffic per task reasonable; the default of 1 is slower still.
    with ProcessPoolExecutor(max_workers=workers) as pool:
        txn = env.begin(write=True)
        for key, value, n in pool.map(encode_patch, patches, chunksize=16):
            txn.put(key, value)
            records += 1
            source_bytes += n
            record_bytes += len(value)
            if records % TXN_RECORDS == 0:
                txn.commit()
                txn = env.begin(write=True)
        txn.commit()
    env.sync()
    env.close()
    seconds = time.perf_counter() - start
    return {
        "records": records,
        "source_bytes": source_bytes,
        "record_bytes": record_bytes,
        "seconds": seconds,
    }


def copy_floor(tree: Path, target: Path) -> dict:
    """Copies every source byte into one file and fsyncs it: the I/O any converter must do."""
    start = time.perf_counter()
    files = source_files(tree)
    target.mkdir(parents=True, exist_ok=True)
    total = 0
    fd = os.open(target / "all-sources.bin", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for path in files:
            with open(path, "rb", buffering=0) as f:
                data = f.read()
            os.write(fd, data)
            total += len(data)
        os.fsync(fd)
    finally:
        os.close(fd)
    seconds = time.perf_counter() - start
    return {
        "records": len(find_patches(tree)),
        "files": len(files),
        "source_bytes": total,
        "seconds": seconds,
    }


# -- reading ----------------------------------------------------------------------------------


def open_reference_env(db: Path):
    """The database opened the way the reference readers do."""
    import lmdb

    return lmdb.open(str(db), readonly=True, lock=False, readahead=False, meminit=False)


def lmdb_safetensors_read(db: Path, keys: Sequence[bytes]) -> tuple[float, int]:
    """Reads every record of ``keys`` into ``{band: array}``; returns (seconds, record bytes)."""
    from safetensors.numpy import load

    env = open_reference_env(db)
    total = 0
    start = time.perf_counter()
    with env.begin(buffers=False) as txn:
        for key in keys:
            value = txn.get(key)
            bands = load(value)
            total += len(value)
    seconds = time.perf_counter() - start
    env.close()
    assert bands  # the last record decoded
    return seconds, total


def upsample_nearest(band: np.ndarray, size: int) -> np.ndarray:
    """``band`` brought to ``size x size`` by repeating pixels (integer factors only)."""
    factor = size // band.shape[0]
    if factor == 1:
        return band
    return np.repeat(np.repeat(band, factor, axis=0), factor, axis=1)


def configilm_sample(bands: dict[str, np.ndarray], names: Sequence[str], size: int) -> np.ndarray:
    """One ConfigILM-style training sample: upsample each band, stack, float32: (C, size, size)."""
    return np.stack([upsample_nearest(bands[name], size) for name in names]).astype(np.float32)


def configilm_batches(
    db: Path, batches: Sequence[Sequence[bytes]], names: Sequence[str], size: int
):
    """Yields ``(N, C, size, size)`` float32 batches built the ConfigILM way."""
    from safetensors.numpy import load

    env = open_reference_env(db)
    with env.begin(buffers=False) as txn:
        for keys in batches:
            yield np.stack([configilm_sample(load(txn.get(k)), names, size) for k in keys])
    env.close()


def rasterio_read(patches: Sequence[Patch]) -> tuple[float, int]:
    """Reads the GeoTIFFs of ``patches`` directly; returns (seconds, source bytes)."""
    import rasterio

    total = 0
    start = time.perf_counter()
    for _, files in patches:
        bands = {}
        for band, path in files:
            with rasterio.open(path) as src:
                bands[band] = src.read(1)
            total += bands[band].nbytes
    return time.perf_counter() - start, total


def memcpy_bandwidth(megabytes: int = 256, repeat: int = 5) -> float:
    """Bytes per second numpy copies between two large buffers (best of ``repeat``)."""
    src = np.ones(megabytes << 20, dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the pages in
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(repeat))
    return src.nbytes / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- command line: one baseline per process ---------------------------------------------------


def s2_keys(db: Path) -> list[bytes]:
    """The Sentinel-2 record keys of a BigEarthNet database, sorted."""
    env = open_reference_env(db)
    with env.begin() as txn:
        keys = [bytes(k) for k in txn.cursor().iternext(keys=True, values=False)]
    env.close()
    return [k for k in keys if k.startswith(b"S2") and not k.endswith(b"_reference_map")]


def peak_rss_mb(pid: object = "self") -> float:
    """The process's own peak resident set (VmHWM), in MB.

    Not ``ru_maxrss``: a child's ``ru_maxrss`` starts from its parent's resident set at the
    fork/vfork that spawned it, so a small program started by a large one reads large.
    """
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def best_of(repeat: int, run) -> dict:
    """Runs ``run()`` (returning a dict with ``seconds``) ``repeat`` times; the fastest."""
    results = [run() for _ in range(repeat)]
    best = min(results, key=lambda r: r["seconds"])
    best["all_seconds"] = [r["seconds"] for r in results]
    return best


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="name", required=True)
    p = sub.add_parser("reference-convert", help="the reference-style converter")
    p.add_argument("--tree", type=Path, required=True)
    p.add_argument("--target", type=Path, required=True)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeat", type=int, default=1)
    p = sub.add_parser("copy-floor", help="copy every source byte into one file, fsync")
    p.add_argument("--tree", type=Path, required=True)
    p.add_argument("--target", type=Path, required=True)
    p.add_argument("--repeat", type=int, default=1)
    p = sub.add_parser("lmdb-read", help="py-lmdb + safetensors.numpy.load of every S2 record")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--repeat", type=int, default=3)
    p = sub.add_parser("configilm", help="ConfigILM-style batches of the S2 records")
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=120)
    p.add_argument("--repeat", type=int, default=3)
    p = sub.add_parser("rasterio-read", help="read S2 patches from the GeoTIFFs with rasterio")
    p.add_argument("--tree", type=Path, required=True)
    p.add_argument("--limit", type=int, default=500, help="patches to read (rasterio is slow)")
    p.add_argument("--repeat", type=int, default=2)
    p = sub.add_parser("memcpy", help="numpy copy bandwidth")
    p.add_argument("--megabytes", type=int, default=256)
    args = parser.parse_args(argv)

    if args.name == "reference-convert":

        def run() -> dict:
            shutil.rmtree(args.target, ignore_errors=True)
            return reference_convert(args.tree, args.target, args.workers)

        out = best_of(args.repeat, run)
    elif args.name == "copy-floor":

        def run() -> dict:
            shutil.rmtree(args.target, ignore_errors=True)
            result = copy_floor(args.tree, args.target)
            return result

        out = best_of(args.repeat, run)
        shutil.rmtree(args.target, ignore_errors=True)
    elif args.name == "lmdb-read":
        keys = s2_keys(args.db)
        lmdb_safetensors_read(args.db, keys)  # warm-up pass: page cache and allocator

        def run() -> dict:
            seconds, total = lmdb_safetensors_read(args.db, keys)
            return {"records": len(keys), "bytes": total, "seconds": seconds}

        out = best_of(args.repeat, run)
    elif args.name == "configilm":
        keys = s2_keys(args.db)
        batches = [keys[i : i + args.batch] for i in range(0, len(keys), args.batch)]
        for _ in configilm_batches(args.db, batches, S2_BANDS, args.size):  # warm-up
            pass

        def run() -> dict:
            start = time.perf_counter()
            produced = 0
            for x in configilm_batches(args.db, batches, S2_BANDS, args.size):
                produced += x.nbytes
            return {"records": len(keys), "bytes": produced, "seconds": time.perf_counter() - start}

        out = best_of(args.repeat, run)
    elif args.name == "rasterio-read":
        patches = [
            p
            for p in find_patches(args.tree)
            if p[0].startswith("S2") and not p[0].endswith("_reference_map")
        ]
        patches = patches[: args.limit]
        rasterio_read(patches[:20])  # warm-up: GDAL's driver registration

        def run() -> dict:
            seconds, total = rasterio_read(patches)
            return {"records": len(patches), "bytes": total, "seconds": seconds}

        out = best_of(args.repeat, run)
    else:
        out = {"bytes_per_second": memcpy_bandwidth(args.megabytes)}
    out["rss_mb"] = peak_rss_mb()
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
