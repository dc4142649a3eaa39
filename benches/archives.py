"""Converting BigEarthNet as it ships: three ``.tar.zst`` archives, read in one pass.

One run, same machine, same archives (made here from a generated real-size tree of ``--patches``
patches: the real band sizes, dtypes and compression, ``tar | zstd -3`` as the data record packs
them). Rows:

- ``zstd -dc`` of the three archives to ``/dev/null``: decompression alone;
- the archive floor: ``zstd -dc`` of the three archives one after another into one file, then
  ``sync`` (decompress the bytes and write them once);
- ``tar --zstd -x`` of the three archives, then rico on the unpacked folders (what users do
  today), with the two parts apart;
- rico from the archives (the binary, default settings), with its peak RSS;
- a Python streaming baseline of the kind users write: ``zstandard`` + ``tarfile`` (stream mode)
  + ``rasterio.MemoryFile`` + ``safetensors`` + py-lmdb, one process.

Warm (the archives in the page cache) always; cold as well (page cache dropped before each row)
where this process may drop it (root). The records from the archives are checked equal to those
of the folders. Writes ``benches/results/archives.json`` and ``archives.png``.

    python benches/archives.py --patches 2000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

import _tests_path  # noqa: F401  (first: tests/ on sys.path)
from commands import shell, timed
from packed import RESULTS, packed_tree, rico_convert, work_options
from pagecache import drop_caches
from support.bigearthnet import SOURCES
from support.lmdb_records import read_lmdb


def python_baseline(archives: list[Path], target: Path) -> int:
    """What users write today: stream each .tar.zst, group a patch's bands, decode each band with
    rasterio from memory, write safetensors records with py-lmdb."""
    import lmdb
    import numpy as np
    import zstandard
    from rasterio.io import MemoryFile
    from safetensors.numpy import save

    records = 0
    env = lmdb.open(str(target), map_size=1 << 40)
    for archive in archives:
        maps = archive.name.startswith("Reference_Maps")
        with open(archive, "rb") as raw, env.begin(write=True) as txn:
            stream = zstandard.ZstdDecompressor().stream_reader(raw)
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                patch: str | None = None
                bands: dict = {}
                for member in tar:
                    if not member.isfile() or not member.name.endswith(".tif"):
                        continue
                    folder, name = member.name.rsplit("/", 1)
                    stem = name[: -len(".tif")]
                    if maps:
                        key, band = stem, "Data"
                    else:
                        key, band = folder.rsplit("/", 1)[-1], stem.rsplit("_", 1)[1]
                    if key != patch:
                        if patch and bands:
                            txn.put(patch.encode(), save(dict(sorted(bands.items()))))
                            records += 1
                        patch, bands = key, {}
                    data = tar.extractfile(member).read()
                    with MemoryFile(data) as mem, mem.open() as src:
                        bands[band] = np.ascontiguousarray(src.read(1))
                if patch and bands:
                    txn.put(patch.encode(), save(dict(sorted(bands.items()))))
                    records += 1
    env.sync()
    env.close()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    work_options(parser)
    parser.add_argument("--no-baseline", action="store_true", help="skip the Python baseline")
    args = parser.parse_args()
    work, tree, packed = packed_tree(args, "rico-archives-")
    archives = {o: packed / f"{name}.tar.zst" for o, name in SOURCES.items()}
    arch_list = " ".join(str(p) for p in archives.values())
    sizes = {p.name: p.stat().st_size for p in archives.values()}
    unpacked_bytes = sum(f.stat().st_size for f in tree.rglob("*") if f.is_file())
    cold_ok = drop_caches()
    results: dict = {
        "patches": args.patches,
        "records": 3 * args.patches,
        "archive_bytes": sizes,
        "unpacked_bytes": unpacked_bytes,
        "cpus": os.cpu_count(),
        "cold_measured": cold_ok,
        "rows": {},
    }

    def prepare() -> None:
        """Untimed, before every row: no output of an earlier row left, nothing left to write
        back (a row must not pay for the previous one's dirty pages)."""
        for path in (from_archives, from_dirs, baseline, unpacked):
            shutil.rmtree(path, ignore_errors=True)
        one.unlink(missing_ok=True)
        os.sync()

    def row(name: str, fn, cold: bool) -> float:
        prepare()
        if cold and not drop_caches():
            return float("nan")
        seconds = fn()
        key = f"{name} ({'cold' if cold else 'warm'})"
        results["rows"][key] = seconds
        print(f"{key:55s} {seconds:7.2f} s", file=sys.stderr)
        return seconds

    one = work / "one-file"
    unpacked = work / "unpacked"
    from_dirs = work / "from-dirs.lmdb"
    from_archives = work / "from-archives.lmdb"
    baseline = work / "baseline.lmdb"

    def decompress_null() -> float:
        return shell(f"zstd -q -dc {arch_list} > /dev/null")

    def archive_floor() -> float:
        return shell(f"zstd -q -dc {arch_list} > {one} && sync")

    def untar_then_rico() -> float:
        unpacked.mkdir()
        untar = shell(" && ".join(f"tar --zstd -xf {p} -C {unpacked}" for p in archives.values()))
        dirs = {o: unpacked / name for o, name in SOURCES.items()}
        convert, _ = timed(rico_convert(from_dirs, dirs))
        results.setdefault("split", {})["tar -x"] = untar
        results["split"]["rico on the folders"] = convert
        return untar + convert

    def rico_archives() -> float:
        seconds, rss = timed(rico_convert(from_archives, archives))
        results["rico_peak_rss_mb"] = max(results.get("rico_peak_rss_mb", 0), rss)
        return seconds

    def python_stream() -> float:
        start = time.perf_counter()
        n = python_baseline(list(archives.values()), baseline)
        assert n == 3 * args.patches, n
        return time.perf_counter() - start

    modes = [False, True] if cold_ok else [False]
    for cold in modes:
        row("zstd -dc to /dev/null", decompress_null, cold)
        row("archive floor: zstd -dc to one file + sync", archive_floor, cold)
        row("tar --zstd -x, then rico on the folders", untar_then_rico, cold)
        row("rico from the archives", rico_archives, cold)
        if not args.no_baseline:
            row("Python: zstandard + tarfile + rasterio + py-lmdb", python_stream, cold)
    # The last rows' outputs are compared: rebuild them if a later row removed them.
    if not from_archives.exists():
        rico_archives()
    if not from_dirs.exists():
        untar_then_rico()
    got, want = read_lmdb(from_archives), read_lmdb(from_dirs)
    results["records_equal"] = got == want and len(got) == 3 * args.patches
    if not args.no_baseline:
        if not baseline.exists():
            python_stream()
        results["baseline_records_equal"] = read_lmdb(baseline) == want
    for temp in ("warm", "cold"):
        rows = results["rows"]
        rico = rows.get(f"rico from the archives ({temp})")
        if rico is None:
            continue
        results[f"ratio_to_floor_{temp}"] = (
            rico / rows[f"archive floor: zstd -dc to one file + sync ({temp})"]
        )
        results[f"speedup_over_untar_{temp}"] = (
            rows[f"tar --zstd -x, then rico on the folders ({temp})"] / rico
        )
    print(json.dumps({k: v for k, v in results.items() if k != "rows"}, indent=1), file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "archives.json").write_text(json.dumps(results, indent=1) + "\n")
    chart(results)
    one.unlink(missing_ok=True)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def chart(results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    names = [k for k in rows if k.endswith("(warm)")]
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * len(rows)))
    labels, values, colors = [], [], []
    for name in names:
        base = name[: -len(" (warm)")]
        for temp, color in (("warm", "#4c72b0"), ("cold", "#c44e52")):
            key = f"{base} ({temp})"
            if key in rows:
                labels.append(f"{base} ({temp})")
                values.append(rows[key])
                colors.append("#dd8452" if base.startswith("rico from") else color)
    ax.barh(labels[::-1], values[::-1], color=colors[::-1])
    ax.set_xlabel("seconds (less is better)")
    ax.set_title(
        f"BigEarthNet as shipped: {results['patches']} patches,\n"
        f"three .tar.zst ({sum(results['archive_bytes'].values()) / 1e6:.0f} MB), one run",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(RESULTS / "archives.png", dpi=110)


if __name__ == "__main__":
    main()
