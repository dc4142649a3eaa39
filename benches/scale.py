#!/usr/bin/env python3
"""Converting BigEarthNet at full scale: memory, time to the first record, throughput, cold disks.

Builds hard-linked BigEarthNet-shaped trees (same bytes, other names: no data is copied) of
N patches from a generated tree of 100 patches (BigEarthNet's names, layout, bands and dtypes),
converts each with the rico binary and reports, per size. Two record sizes:

- ``--record-size tiny`` (default): 12x12 rasters, so that the databases of 549,488 patches fit
  on a small disk (~1.5 KB a record) while planning and the pipeline do per patch what they do
  for the real one;
- ``--record-size real``: the real band sizes, dtypes and compression (29-160 KB records, the
  tree of ``make_dataset.py``); 50,000 patches make a 15 GB database.

Per size:

- peak RSS of the conversion (``wait4``'s ``ru_maxrss``), and the peaks of its anonymous and
  file-backed parts (``RssAnon``/``RssFile`` of ``/proc/PID/status``, polled every 20 ms);
- time to the first committed record (the database is polled while the run goes);
- records/s over the whole run;
- optionally (``--cold N``) the cold-cache ratio on a tree of N real-size patches, copied (not
  linked) so that each file has its own blocks: a default conversion over a 32-reader parallel
  read of the same files, each after dropping the page cache (as root; the script says so
  where it cannot), best of three each.

``--dask`` adds a Dask run (2 workers, real LocalCluster on loopback): 64 shards against 4.
``--baseline-bin`` measures another rico binary (e.g. the previous release) in the same run.

    python benches/scale.py --sizes 5000 50000 --json benches/results/scale.json
    python benches/scale.py --record-size real --sizes 5000 50000 --json benches/results/scale-real.json
    python benches/scale.py --sizes --cold 2000 --dask 2000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _tests_path  # noqa: E402, F401  (first: tests/ on sys.path)
from pagecache import drop_caches  # noqa: E402
from support.bands import S1_BANDS, S2_BANDS  # noqa: E402
from support.bigearthnet import S1_TILE, S2_TILE, flags, patch_names, sources  # noqa: E402
from support.cluster import local_cluster  # noqa: E402
from support.trees import link_tree, make_dataset, write_band  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BASE_PATCHES = 100  # the generated tree every hard-linked one is made of
SOURCES = ("BigEarthNet-S1", "BigEarthNet-S2", "Reference_Maps")


def make_small_base(out: Path, patches: int = BASE_PATCHES) -> None:
    """A BigEarthNet-shaped tree (names, layout, bands, dtypes) of 12x12 rasters: the records of
    a 549,488-patch tree then fit on a small disk (~1.5 KB a record), while planning and the
    pipeline do per patch what they do for the real one."""
    import numpy as np

    for i in range(patches):
        rng = np.random.default_rng(i)
        s2, s1 = patch_names(i)
        x, y = i % 100, i // 100
        dirs = {
            "s2": out / "BigEarthNet-S2" / S2_TILE / s2,
            "s1": out / "BigEarthNet-S1" / S1_TILE / s1,
            "map": out / "Reference_Maps" / S2_TILE / s2,
        }
        for band in S2_BANDS:
            values = rng.integers(0, 12000, size=(12, 12), dtype=np.uint16)
            write_band(dirs["s2"] / f"{s2}_{band}.tif", values, 100.0, x, y, 12, nodata=0)
        for band in S1_BANDS:
            values = rng.normal(-15.0, 5.0, size=(12, 12)).astype(np.float32)
            write_band(dirs["s1"] / f"{s1}_{band}.tif", values, 100.0, x, y, 12)
        labels = rng.integers(100, 500, size=(12, 12), dtype=np.uint16)
        write_band(dirs["map"] / f"{s2}_reference_map.tif", labels, 100.0, x, y, 12, nodata=0)


def records_in(target: Path) -> int:
    import lmdb

    if not (target / "data.mdb").exists():
        return 0
    try:
        env = lmdb.open(str(target), readonly=True, lock=False, subdir=True)
    except lmdb.Error:
        return 0
    try:
        return env.stat()["entries"]
    finally:
        env.close()


def convert(binary: Path, tree: Path, target: Path, *extra: str) -> dict:
    """Runs one conversion; its seconds, peak RSS (MB), time to the first record, records."""
    shutil.rmtree(target, ignore_errors=True)
    cmd = [str(binary), "bigearthnet", *flags(tree), "--target-dir", str(target), *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first: list[float] = []
    peaks = {"RssAnon": 0, "RssFile": 0}

    def watch() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    name, _, value = line.partition(":")
                    if name in peaks:
                        peaks[name] = max(peaks[name], int(value.split()[0]))
            except (OSError, ValueError):
                pass
            if not first and records_in(target) > 0:
                first.append(time.perf_counter() - start)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    watcher.join()
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"conversion failed ({proc.returncode}): {err}")
    records = records_in(target)
    return {
        "seconds": seconds,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "peak_anon_mb": peaks["RssAnon"] / 1024,
        "peak_file_mb": peaks["RssFile"] / 1024,
        "first_record_s": first[0] if first else seconds,
        "records": records,
        "records_per_s": records / seconds,
    }


def all_files(tree: Path) -> list[str]:
    out = []
    for src in SOURCES:
        for dirpath, _, files in os.walk(tree / src):
            out.extend(os.path.join(dirpath, f) for f in files)
    return out


def parallel_read(tree: Path, readers: int = 32) -> float:
    """Seconds to list the tree and read every file with ``readers`` parallel ``cat`` processes
    (64 files each, as ``xargs -P`` hands them out): the floor a conversion, which walks the
    same cold tree, can reach. Python threads are no floor here: on 30,000 small files they
    wait on the GIL, not on the disk."""
    start = time.perf_counter()
    files = "\0".join(all_files(tree)).encode()
    subprocess.run(
        ["xargs", "-0", "-P", str(readers), "-n", "64", "cat"],
        input=files,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - start


def cold(binary: Path, tree: Path, work: Path, runs: int = 3) -> dict:
    """Best of ``runs`` cold conversions (default settings) and cold 32-reader reads."""
    reads, converts = [], []
    dropped = True
    for _ in range(runs):
        dropped &= drop_caches()
        reads.append(parallel_read(tree))
        dropped &= drop_caches()
        converts.append(convert(binary, tree, work / "cold-db", "--quiet")["seconds"])
    return {
        "page_cache_dropped": dropped,
        "parallel_read_32_s": min(reads),
        "convert_default_s": min(converts),
        "ratio": min(converts) / min(reads),
        "all_reads_s": reads,
        "all_converts_s": converts,
    }


def dask_shards(tree: Path, work: Path, shard_counts=(4, 64), runs: int = 2) -> dict:
    """A real 2-worker LocalCluster on loopback: seconds for each number of shards (best of runs)."""
    import rico

    out = {}
    with local_cluster(n_workers=2) as (_, client):
        for n in shard_counts:
            times = []
            for _ in range(runs):
                target = work / f"dask-{n}"
                shutil.rmtree(target, ignore_errors=True)
                start = time.perf_counter()
                rico.convert(
                    "bigearthnet", target, shards=n, client=client, progress=False, **sources(tree)
                )
                times.append(time.perf_counter() - start)
            out[str(n)] = min(times)
    out["ratio_64_vs_4"] = out[str(shard_counts[-1])] / out[str(shard_counts[0])]
    return out


def chart(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    series = sorted({(r["binary"], r.get("record_size", "tiny")) for r in results})
    for name, size in series:
        rows = sorted(
            (r for r in results if (r["binary"], r.get("record_size", "tiny")) == (name, size)),
            key=lambda r: r["patches"],
        )
        ax.plot(
            [r["patches"] for r in rows],
            [r["peak_rss_mb"] for r in rows],
            marker="o",
            label=f"{name}, {'real-size' if size == 'real' else '12x12'} records",
        )
    ax.set_xscale("log")
    ax.set_xlabel("patches (x3 records: S1, S2, reference map)")
    ax.set_ylabel("peak RSS, MB")
    ax.set_title("rico convert: peak memory against dataset size")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 549_488])
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (kept)")
    parser.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "rico")
    parser.add_argument("--baseline-bin", type=Path, default=None, help="another rico to compare")
    parser.add_argument(
        "--baseline-name", default="baseline", help="the baseline's name in the report and chart"
    )
    parser.add_argument("--threads", default=None, help="--threads for the RSS runs")
    parser.add_argument(
        "--record-size",
        choices=["tiny", "real"],
        default="tiny",
        help="12x12 rasters (default) or BigEarthNet's real band sizes for the RSS runs",
    )
    parser.add_argument("--extra", default="", help="more options for the RSS runs' command")
    parser.add_argument(
        "--cold", type=int, default=0, help="patches of the cold-cache tree (0: no)"
    )
    parser.add_argument("--dask", type=int, default=0, help="patches of the Dask tree (0: no)")
    parser.add_argument("--keep-trees", action="store_true", help="keep the hard-linked trees")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--chart", type=Path, default=None)
    parser.add_argument(
        "--chart-with",
        type=Path,
        nargs="*",
        default=[],
        help="earlier --json reports whose sizes the chart draws too (e.g. the other record size)",
    )
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="rico-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    base = work / "base"
    if not (base / ".complete").exists():
        shutil.rmtree(base, ignore_errors=True)
        make_dataset(base, BASE_PATCHES)
        (base / ".complete").touch()
    small = work / "small-base"
    if not (small / ".complete").exists():
        shutil.rmtree(small, ignore_errors=True)
        make_small_base(small)
        (small / ".complete").touch()
    binaries = {"rico": args.binary}
    if args.baseline_bin:
        binaries[args.baseline_name] = args.baseline_bin
    extra = ["--quiet"] + (["--threads", args.threads] if args.threads else [])
    extra += args.extra.split()
    linked_from = base if args.record_size == "real" else small
    report: dict = {"sizes": [], "machine_cores": os.cpu_count()}
    for n in args.sizes:
        tree = work / f"{args.record_size}-tree-{n}"
        start = time.perf_counter()
        link_tree(linked_from, tree, n, BASE_PATCHES)
        print(f"{n} patches: tree ready in {time.perf_counter() - start:.0f} s", flush=True)
        for name, binary in binaries.items():
            r = convert(binary, tree, work / "db", *extra)
            r.update(binary=name, patches=n, record_size=args.record_size)
            report["sizes"].append(r)
            print(
                f"  {name:9s} peak RSS {r['peak_rss_mb']:7.1f} MB (anon {r['peak_anon_mb']:.0f}, "
                f"file {r['peak_file_mb']:.0f})  first record after "
                f"{r['first_record_s']:6.2f} s  {r['records']:,} records in {r['seconds']:7.1f} s "
                f"({r['records_per_s']:,.0f} records/s)",
                flush=True,
            )
        shutil.rmtree(work / "db", ignore_errors=True)
        if not args.keep_trees:
            shutil.rmtree(tree)
    if args.cold:
        tree = work / f"copied-tree-{args.cold}"
        link_tree(base, tree, args.cold, BASE_PATCHES, copy=True)
        for name, binary in binaries.items():
            c = cold(binary, tree, work)
            report[f"cold_{name}"] = c
            note = "" if c["page_cache_dropped"] else "  (page cache NOT dropped: not root)"
            print(
                f"cold {args.cold} patches, {name}: default conversion {c['convert_default_s']:.2f} s, "
                f"32-reader read {c['parallel_read_32_s']:.2f} s: ratio {c['ratio']:.2f}{note}",
                flush=True,
            )
    if args.dask:
        tree = work / f"tree-{args.dask}"
        link_tree(base, tree, args.dask, BASE_PATCHES)
        d = dask_shards(tree, work)
        report["dask"] = d
        print(
            f"dask 2 workers, {args.dask} patches: 4 shards {d['4']:.2f} s, 64 shards "
            f"{d['64']:.2f} s: ratio {d['ratio_64_vs_4']:.2f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.chart:
        rows = list(report["sizes"])
        for earlier in args.chart_with:
            rows += json.loads(earlier.read_text())["sizes"]
        if rows:
            chart(rows, args.chart)


if __name__ == "__main__":
    main()
