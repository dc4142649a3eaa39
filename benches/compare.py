#!/usr/bin/env python3
"""rico side by side with the baselines (benches/baselines.py), on one tree, in one run.

Makes (or reuses) a BigEarthNet-shaped tree of ``--patches`` patches, then measures

- conversion: the copy floor, the reference-style converter and rico (binary and Python API)
  at each ``--threads`` count; the reference database must equal rico's record for record;
- reading (page cache warm, one thread unless said): ``ds[key]`` against py-lmdb +
  ``safetensors.numpy.load``, ``ds.batch`` of the 12 S2 bands at 120x120 float32 against the
  numpy sample (py-lmdb, safetensors, ``np.repeat``, stack: ConfigILM's sample path without
  torch; values asserted identical; ConfigILM itself is measured by ``peers.py``), the Loader with 2 threads, rasterio on
  the GeoTIFFs, and numpy's memcpy bandwidth as the ceiling;

each contender in its own process, best of ``--repeat`` runs, with its peak RSS. Prints one
table, writes ``compare.json`` and ``compare.png`` under ``--out``.

    python benches/compare.py --patches 2000                    # the README's table
    python benches/compare.py --patches 2000 --rss-scaling 10000 # + peak RSS at 2,000 vs 10,000
    python benches/compare.py --patches 200 --repeat 1          # a quick look

Trees are cached under ``$RICO_BENCH_CACHE`` (default: ``$TMPDIR/rico-bench``) by patch count.
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
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BINARY = ROOT / "target" / "release" / "rico"
sys.path.insert(0, str(HERE))

import _tests_path  # noqa: E402, F401  (first: tests/ on sys.path)
import baselines  # noqa: E402
import charts  # noqa: E402
import stamp  # noqa: E402
from support.bands import S2_BANDS  # noqa: E402
from support.bigearthnet import flags, sources  # noqa: E402

BATCH = 32
SIZE = 120


# -- the tree ---------------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("RICO_BENCH_CACHE") or Path(tempfile.gettempdir()) / "rico-bench")


def ensure_tree(patches: int) -> Path:
    """The cached tree of ``patches`` patches, written on first use."""
    tree = cache_dir() / f"tree-{patches}-v2"
    if tree.is_dir():
        return tree
    partial = tree.with_name(tree.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"writing a {patches}-patch tree under {tree} (cached for later runs) ...",
        file=sys.stderr,
        flush=True,
    )
    subprocess.run(
        [sys.executable, str(HERE / "make_dataset.py"), "--patches", str(patches), str(partial)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    partial.rename(tree)
    return tree


# -- measuring a contender in its own process -------------------------------------------------


def _tree_rss(pid: int) -> tuple[int, int]:
    """Resident bytes of ``pid`` and all its descendants: (sum, largest); (0, 0) once gone."""
    total = largest = 0
    todo = [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                rss = int(f.read().split()[1]) * page
            total += rss
            largest = max(largest, rss)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total, largest


def measure(argv: Sequence[str]) -> dict:
    """Runs ``argv`` (which prints one JSON line with its own ``rss_mb``) and adds RSS figures.

    ``rss_mb``: the largest process's peak resident set: the contender's own VmHWM (the rico
    binary's is polled by its wrapper), or a descendant's if sampling saw a larger one;
    ``tree_rss_mb``: the sum over all processes of the contender, sampled every 50 ms (what
    a process pool costs in all).
    """
    # numpy's OpenBLAS threads spin idle on a 2-core machine; no contender does linear algebra.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, text=True, env=env)
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            total, largest = _tree_rss(proc.pid)
            peak[0], peak[1] = max(peak[0], total), max(peak[1], largest)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"contender failed (exit {proc.returncode}): {' '.join(map(str, argv))}")
    result = json.loads(out.strip().splitlines()[-1])
    if not result.get("rss_is_child"):
        result["rss_mb"] = max(result["rss_mb"], peak[1] / 2**20)
    result["tree_rss_mb"] = max(peak[0] / 2**20, result["rss_mb"])
    return result


def run_baseline(*args: object) -> dict:
    return measure([sys.executable, str(HERE / "baselines.py"), *map(str, args)])


def run_rico(*args: object) -> dict:
    return measure([sys.executable, str(Path(__file__).resolve()), "--run-one", *map(str, args)])


# -- rico's contenders (run inside the child process) -----------------------------------------


def _best(repeat: int, run) -> dict:
    return baselines.best_of(repeat, run)


def one_convert_binary(tree: Path, target: Path, threads: int, repeat: int) -> dict:
    argv = [
        str(BINARY),
        "bigearthnet",
        "--quiet",
        "--threads",
        str(threads),
        "--target-dir",
        str(target),
        *flags(tree),
    ]
    rss = {"VmHWM": 0.0, "RssAnon": 0.0, "RssFile": 0.0}

    def run() -> dict:
        shutil.rmtree(target, ignore_errors=True)
        start = time.perf_counter()
        proc = subprocess.Popen(argv)
        # The binary's own high-water mark, polled until it exits (ru_maxrss would include
        # this wrapper's resident set at the spawn), and the peaks of its private (anonymous)
        # and file-backed (the database's memory map: page cache) parts.
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        field = line.split(":", 1)[0]
                        if field in rss:
                            rss[field] = max(rss[field], int(line.split()[1]) / 1024)
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.005)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"rico failed with exit code {proc.returncode}")
        return {"seconds": seconds}

    out = _best(repeat, run)
    import lmdb

    with lmdb.open(str(target), readonly=True, lock=False) as env:
        out["records"] = env.stat()["entries"]
    out["rss_mb"] = rss["VmHWM"]
    out["anon_rss_mb"] = rss["RssAnon"]
    out["file_rss_mb"] = rss["RssFile"]
    out["rss_is_child"] = True  # the wrapper is not the contender
    return out


def one_convert_api(tree: Path, target: Path, threads: int, repeat: int) -> dict:
    import rico

    def run() -> dict:
        shutil.rmtree(target, ignore_errors=True)
        start = time.perf_counter()
        summary = rico.convert(
            "bigearthnet", target, threads=threads, progress=False, **sources(tree)
        )
        seconds = time.perf_counter() - start
        return {
            "records": summary.records,
            "source_bytes": summary.source_bytes,
            "record_bytes": summary.record_bytes,
            "seconds": seconds,
        }

    out = _best(repeat, run)
    shutil.rmtree(target, ignore_errors=True)
    return out


def s2_str_keys(db: Path) -> list[str]:
    return [k.decode() for k in baselines.s2_keys(db)]


def one_get(db: Path, repeat: int) -> dict:
    import rico

    ds = rico.open(db)
    keys = s2_str_keys(db)
    nbytes = sum(a.nbytes for a in ds[keys[0]].values())

    def run() -> dict:
        start = time.perf_counter()
        for key in keys:
            record = ds[key]
        seconds = time.perf_counter() - start
        assert len(record) == 12
        return {"records": len(keys), "bytes": nbytes * len(keys), "seconds": seconds}

    run()  # warm-up
    return _best(repeat, run)


def one_batch(db: Path, repeat: int, threads: int) -> dict:
    import rico

    ds = rico.open(db)
    keys = s2_str_keys(db)
    batches = [keys[i : i + BATCH] for i in range(0, len(keys), BATCH)]

    def run() -> dict:
        start = time.perf_counter()
        produced = 0
        for group in batches:
            produced += ds.batch(group, S2_BANDS, size=SIZE, threads=threads).nbytes
        return {"records": len(keys), "bytes": produced, "seconds": time.perf_counter() - start}

    run()
    return _best(repeat, run)


def one_loader(db: Path, repeat: int, threads: int) -> dict:
    import rico

    ds = rico.open(db)
    keys = s2_str_keys(db)

    def run() -> dict:
        loader = rico.Loader(
            ds, keys=keys, bands=S2_BANDS, size=SIZE, batch_size=BATCH, threads=threads
        )
        start = time.perf_counter()
        produced = samples = 0
        for x in loader:
            produced += x.nbytes
            samples += len(x)
        return {"records": samples, "bytes": produced, "seconds": time.perf_counter() - start}

    run()
    return _best(repeat, run)


def run_one(argv: Sequence[str]) -> None:
    name, rest = argv[0], argv[1:]
    if name == "convert-binary":
        out = one_convert_binary(Path(rest[0]), Path(rest[1]), int(rest[2]), int(rest[3]))
    elif name == "convert-api":
        out = one_convert_api(Path(rest[0]), Path(rest[1]), int(rest[2]), int(rest[3]))
    elif name == "get":
        out = one_get(Path(rest[0]), int(rest[1]))
    elif name == "batch":
        out = one_batch(Path(rest[0]), int(rest[1]), int(rest[2]))
    elif name == "loader":
        out = one_loader(Path(rest[0]), int(rest[1]), int(rest[2]))
    else:
        raise SystemExit(f"unknown contender {name}")
    out.setdefault("rss_mb", baselines.peak_rss_mb())
    print(json.dumps(out))


# -- checks -----------------------------------------------------------------------------------


def assert_same_database(reference: Path, ours: Path) -> int:
    """The two databases hold the same keys with byte-identical values; returns the count."""
    import lmdb

    with (
        lmdb.open(str(reference), readonly=True, lock=False) as a,
        lmdb.open(str(ours), readonly=True, lock=False) as b,
    ):
        with a.begin() as ta, b.begin() as tb:
            ca, cb = ta.cursor(), tb.cursor()
            n = 0
            for (ka, va), (kb, vb) in zip(ca, cb):
                assert ka == kb, f"key {n}: reference {bytes(ka)!r} vs rico {bytes(kb)!r}"
                assert va == vb, (
                    f"record {bytes(ka)!r} differs between the reference converter and rico"
                )
                n += 1
            assert ta.stat()["entries"] == tb.stat()["entries"] == n, (
                "the databases hold different numbers of records"
            )
    return n


def assert_batches_identical(db: Path, batches: int = 8) -> None:
    """``ds.batch`` equals the numpy batch, value for value."""
    import numpy as np
    import rico

    keys = baselines.s2_keys(db)[: batches * BATCH]
    groups = [keys[i : i + BATCH] for i in range(0, len(keys), BATCH)]
    ds = rico.open(db)
    for group, want in zip(groups, baselines.configilm_batches(db, groups, S2_BANDS, SIZE)):
        got = ds.batch(group, S2_BANDS, size=SIZE, threads=1)
        assert got.dtype == want.dtype == np.float32 and got.shape == want.shape, (
            got.shape,
            want.shape,
        )
        assert np.array_equal(got, want), "ds.batch differs from the numpy batch"


# -- the report -------------------------------------------------------------------------------


def row(section: str, name: str, result: dict, records: int, nbytes: int, **extra) -> dict:
    seconds = result["seconds"]
    return {
        "section": section,
        "name": name,
        "seconds": seconds,
        "all_seconds": result.get("all_seconds", [seconds]),
        "records": records,
        "records_per_second": records / seconds,
        "mb_per_second": nbytes / seconds / 1e6,
        "rss_mb": result.get("rss_mb"),
        "tree_rss_mb": result.get("tree_rss_mb"),
        **extra,
    }


def fmt(v: Optional[float], spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[dict]) -> str:
    head = f"{'':<62} {'time s':>8} {'records/s':>10} {'MB/s':>8} {'vs base':>8} {'vs floor':>8} {'RSS MB':>7} {'all MB':>7}"
    lines = []
    section = None
    for r in rows:
        if r["section"] != section:
            section = r["section"]
            lines += ["", section, head]
        lines.append(
            f"{r['name']:<62} {fmt(r['seconds'], '>8.3f'):>8} {fmt(r['records_per_second'], '>10,.0f'):>10} "
            f"{r['mb_per_second']:>8,.0f} "
            f"{fmt(r.get('vs_baseline'), '>7.2f') + 'x' if r.get('vs_baseline') else '-':>8} "
            f"{fmt(r.get('vs_floor'), '>8.2f')} {fmt(r['rss_mb'], '>7.0f')} {fmt(r['tree_rss_mb'], '>7.0f')}"
        )
    return "\n".join(lines).lstrip("\n")


def chart(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sections = list(dict.fromkeys(r["section"] for r in rows))
    fig, axes = plt.subplots(
        len(sections), 1, figsize=(10, 1.2 + 0.42 * len(rows) + 0.6 * len(sections))
    )
    axes = [axes] if len(sections) == 1 else list(axes)
    for ax, section in zip(axes, sections):
        part = [r for r in rows if r["section"] == section and not r.get("no_chart")]
        names = [r["name"] for r in part][::-1]
        values = [r["records_per_second"] for r in part][::-1]
        rico = [r["name"].startswith("rico") for r in part][::-1]
        labels = []
        for r in part[::-1]:
            label = f" {r['records_per_second']:,.0f}/s"
            if r.get("vs_baseline") and r["name"].startswith("rico"):
                label += f"  ({r['vs_baseline']:.1f}x baseline)"
            labels.append(label)
        charts.bars(ax, names, values, rico, labels, fontsize=8)
        ax.set_xlabel(
            "records per second (log scale)"
            if "onversion" in section
            else "records (samples) per second (log scale)"
        )
        ax.set_title(section, fontsize=10, loc="left")
        ax.set_xlim(min(values) / 2, max(values) * 30)
        ax.tick_params(axis="y", labelsize=8)
    charts.save(fig, title, 11, path)


def rss_of_conversion(tree: Path, work: Path, threads: int) -> dict:
    """Peak RSS of a binary conversion of ``tree``: in all, private (anonymous), file-backed."""
    target = work / "rss-db"
    result = run_rico("convert-binary", tree, target, threads, 1)
    shutil.rmtree(target, ignore_errors=True)
    return {
        "rss_mb": result["rss_mb"],
        "anon_rss_mb": result["anon_rss_mb"],
        "file_rss_mb": result["file_rss_mb"],
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--run-one":
        run_one(argv[1:])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--patches", type=int, default=2000, help="patches in the tree (default 2000)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[1, 2],
        help="conversion thread counts (default 1 2)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of each rico contender; the best counts (default 3)",
    )
    parser.add_argument(
        "--baseline-repeat", type=int, default=2, help="runs of each slow baseline (default 2)"
    )
    parser.add_argument(
        "--rasterio-patches", type=int, default=500, help="patches rasterio reads (default 500)"
    )
    parser.add_argument(
        "--rss-scaling",
        type=int,
        default=None,
        metavar="N",
        help="also measure a conversion's peak RSS on an N-patch tree (e.g. 10000; writing it takes minutes)",
    )
    parser.add_argument(
        "--out", type=Path, default=HERE / "results", help="where compare.json and compare.png go"
    )
    parser.add_argument("--chart", type=Path, default=None, help="the chart (OUT/compare.png)")
    parser.add_argument(
        "--bigearthnet",
        action="store_true",
        help="use benches/peers.py's tree (with metadata tables) instead of make_dataset.py's",
    )
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="scratch directory for databases (default: a temp dir)",
    )
    args = parser.parse_args(argv)

    if not BINARY.is_file():
        raise SystemExit(f"{BINARY} is missing: run `make build` first")
    if args.bigearthnet:
        import peers

        tree = peers.ensure_tree(args.patches)
    else:
        tree = ensure_tree(args.patches)
    work = Path(tempfile.mkdtemp(prefix="rico-compare-", dir=args.work))
    args.out.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    try:
        rows: list[dict] = []
        # -- conversion --
        log("conversion: copy floor ...")
        floor = run_baseline(
            "copy-floor", "--tree", tree, "--target", work / "floor", "--repeat", args.repeat
        )
        records, source_bytes = None, floor["source_bytes"]
        conv = f"Conversion: {args.patches} patches, {source_bytes / 1e6:.0f} MB of GeoTIFFs, page cache warm"
        converted: dict[int, dict[str, Path]] = {}
        per_threads: list[tuple[int, dict, dict, dict]] = []
        for threads in args.threads:
            log(f"conversion: reference-style, {threads} worker(s) ...")
            ref_target = work / f"reference-{threads}"
            ref = run_baseline(
                "reference-convert",
                "--tree",
                tree,
                "--target",
                ref_target,
                "--workers",
                threads,
                "--repeat",
                args.baseline_repeat,
            )
            log(f"conversion: rico binary, {threads} thread(s) ...")
            bin_target = work / f"rico-{threads}"
            ours_bin = run_rico("convert-binary", tree, bin_target, threads, args.repeat)
            log(f"conversion: rico.convert, {threads} thread(s) ...")
            ours_api = run_rico(
                "convert-api", tree, work / f"rico-api-{threads}", threads, args.repeat
            )
            records = ref["records"]
            assert ours_bin["records"] == ours_api["records"] == records, (
                ours_bin["records"],
                ours_api["records"],
                records,
            )
            n = assert_same_database(ref_target, bin_target)
            log(f"  reference and rico databases equal, {n} records")
            converted[threads] = {"reference": ref_target, "rico": bin_target}
            per_threads.append((threads, ref, ours_bin, ours_api))
        assert records is not None
        rows.append(
            row(
                conv,
                "copy floor: read every source file, write one file, fsync",
                floor,
                records,
                source_bytes,
                vs_floor=1.0,
            )
        )
        for threads, ref, ours_bin, ours_api in per_threads:
            ref_rate = records / ref["seconds"]
            unit = "worker" if threads == 1 else "workers"
            rows.append(
                row(
                    conv,
                    f"reference-style (rasterio, ProcessPool, py-lmdb), {threads} {unit}",
                    ref,
                    records,
                    source_bytes,
                    vs_baseline=1.0,
                    vs_floor=ref["seconds"] / floor["seconds"],
                    threads=threads,
                )
            )
            for label, result in (("rico binary", ours_bin), ("rico.convert", ours_api)):
                rows.append(
                    row(
                        conv,
                        f"{label}, {threads} thread{'s' if threads > 1 else ''}",
                        result,
                        records,
                        source_bytes,
                        vs_baseline=(records / result["seconds"]) / ref_rate,
                        vs_floor=result["seconds"] / floor["seconds"],
                        threads=threads,
                    )
                )
        # Keep one database for reading; drop the rest (they are large).
        read_db = converted[max(converted)]["rico"]
        for paths in converted.values():
            for path in paths.values():
                if path != read_db:
                    shutil.rmtree(path, ignore_errors=True)

        # -- reading --
        log("reading: checking ds.batch against the numpy batch ...")
        assert_batches_identical(read_db)
        s2 = len(baselines.s2_keys(read_db))
        read = f"Reading: {s2} S2 records (12 bands), page cache warm, 1 thread unless said"
        log("reading: memcpy ...")
        memcpy = run_baseline("memcpy")
        memcpy_mb = memcpy["bytes_per_second"] / 1e6
        log("reading: lmdb + safetensors ...")
        lm = run_baseline("lmdb-read", "--db", read_db, "--repeat", args.repeat)
        log("reading: rico ds[key] ...")
        get = run_rico("get", read_db, args.repeat)
        log("reading: rasterio ...")
        rio = run_baseline(
            "rasterio-read",
            "--tree",
            tree,
            "--limit",
            args.rasterio_patches,
            "--repeat",
            args.baseline_repeat,
        )
        log("reading: numpy batches ...")
        cfg = run_baseline(
            "configilm", "--db", read_db, "--batch", BATCH, "--size", SIZE, "--repeat", args.repeat
        )
        log("reading: rico ds.batch ...")
        bat = run_rico("batch", read_db, args.repeat, 1)
        log("reading: rico Loader, 2 threads ...")
        loa = run_rico("loader", read_db, args.repeat, 2)
        lm_rate, cfg_rate = s2 / lm["seconds"], s2 / cfg["seconds"]
        record_bytes = lm["bytes"]
        mem = lambda r: r["bytes"] / r["seconds"] / 1e6 / memcpy_mb  # noqa: E731

        def read_row(name: str, result: dict, records: int, nbytes: int, base: float | None):
            """A reading row: its rate against ``base`` records/s (None: it is that baseline)
            and its bytes/s against memcpy's."""
            vs = 1.0 if base is None else (records / result["seconds"]) / base
            return row(read, name, result, records, nbytes, vs_baseline=vs, vs_floor=mem(result))

        rows += [
            read_row(
                f"rasterio: open + read the GeoTIFFs ({rio['records']} patches)",
                rio,
                rio["records"],
                rio["bytes"],
                lm_rate,
            ),
            read_row("py-lmdb get + safetensors.numpy.load", lm, s2, record_bytes, None),
            read_row("rico ds[key] (zero-copy views)", get, s2, get["bytes"], lm_rate),
            read_row(
                f"numpy batch of {BATCH} (py-lmdb, safetensors, np.repeat, stack, float32)",
                cfg,
                s2,
                cfg["bytes"],
                None,
            ),
            read_row(
                f"rico ds.batch of {BATCH}, 12 bands at {SIZE}x{SIZE} float32, threads=1",
                bat,
                s2,
                bat["bytes"],
                cfg_rate,
            ),
            read_row(
                f"rico Loader, batch {BATCH}, 2 threads",
                loa,
                loa["records"],
                loa["bytes"],
                cfg_rate,
            ),
            {
                "section": read,
                "name": "memcpy (numpy copy of 256 MiB): the ceiling",
                "seconds": None,
                "records": None,
                "records_per_second": None,
                "mb_per_second": memcpy_mb,
                "vs_floor": 1.0,
                "rss_mb": None,
                "tree_rss_mb": None,
                "no_chart": True,
            },
        ]

        scaling = None
        if args.rss_scaling:
            log(f"RSS scaling: conversions of {args.patches} and {args.rss_scaling} patches ...")
            big = ensure_tree(args.rss_scaling)
            threads = max(args.threads)
            scaling = {
                "threads": threads,
                str(args.patches): rss_of_conversion(tree, work, threads),
                str(args.rss_scaling): rss_of_conversion(big, work, threads),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    text = table(rows)
    text += (
        "\n\nvs base: records/s over the baseline's (conversion: the reference-style converter at the same cores;"
        "\n  reading: lmdb+safetensors for records, the numpy batch for batches)."
        "\nvs floor: conversion: time over the copy floor's; reading: MB/s over memcpy's."
        "\nMB/s: conversion: source bytes; records: record bytes; batches: float32 bytes produced."
        "\nRSS MB: the largest process's peak; all MB: all processes of a contender together (sampled)."
    )
    if scaling:
        text += f"\n\nPeak RSS of a conversion (rico binary, {scaling['threads']} threads):"
        for n in (args.patches, args.rss_scaling):
            r = scaling[str(n)]
            text += (
                f"\n  {n:>6} patches: {r['rss_mb']:.0f} MB in all (VmHWM); peaks of its parts: "
                f"{r['anon_rss_mb']:.0f} MB private, {r['file_rss_mb']:.0f} MB of the database's memory map"
            )
    print(text)

    report = {
        "patches": args.patches,
        "stamp": stamp.stamp(
            "python benches/compare.py " + " ".join(argv),
            work=args.work,
            packages=["rasterio", "lmdb", "safetensors"],
        ),
        "memcpy_mb_per_second": memcpy_mb,
        "rows": rows,
        "rss_scaling": scaling,
        "table": text,
    }
    (args.out / "compare.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    chart_path = args.chart or args.out / "compare.png"
    chart(
        rows,
        chart_path,
        f"rico vs baselines: {args.patches}-patch BigEarthNet-shaped tree, {os.cpu_count()} cores",
    )
    print(f"\nwrote {args.out / 'compare.json'} and {chart_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
