#!/usr/bin/env python3
"""Reading at the users' scale: batch sizes 16..1024 warm, and a cold page cache, ours and the
py-lmdb + safetensors baseline in the same run.

    python benches/read_scale.py --patches 3000 --work /tmp/read-scale   # writes benches/results/
    python benches/read_scale.py --patches 50000 --linked --work /tmp/rs50k --cold  # as root

``--linked`` builds the tree from hard links to a 100-patch real-size tree (same record sizes,
no data generated); every record is still its own copy in the database, so a cold read of the
database reads what it would for distinct patches.

Warm (the database read once beforehand), 12 S2 bands at 120x120 float32:
- ``loader``: ``rico.Loader`` (2 threads, shuffled), samples/s over whole epochs;
- ``batch``: ``ds.batch`` returning a new array per call; ``batch_out``: into one reused array;
- ``baseline``: ConfigILM-style batches (py-lmdb get, ``safetensors.numpy.load``, numpy
  nearest upsampling, ``np.stack``), one process.

Cold, with ``--cold`` (or ``--cold-only``; page cache dropped before each figure, needs root
and fio, ``apt-get install -y fio``; each figure in a fresh process, since a drop cannot evict
pages that a live process has mapped):
- ``device``: random reads of one record's size at queue depth 32 on the same data.mdb: fio
  (``fio --name=ref --filename=DB/data.mdb --readonly --rw=randread --bs=REC --iodepth=32
  --ioengine=libaio --direct=1 --runtime=10 --time_based``) when installed, and
  ``rico bench``'s own O_DIRECT reference (no fio needed);
- ``loader``: one shuffled Loader epoch of ``--cold-samples`` (20,000) S2 records drawn at
  random, batch 64, default threads: samples/s over the whole epoch, and ``loader_steady``
  after its first 5% (the disk's steady state), the process's user and system CPU seconds
  over the epoch, and which path its records took (``cold_path``: read whole, not resident,
  or in place; the queue depth measured), in each of ``--cold-runs`` runs (fio measured again
  before each), with the ratios to fio;
- ``getitem``: single ``ds[key]`` on random keys, every byte read, 1 thread, against py-lmdb +
  ``safetensors.numpy.load`` on other random keys.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _tests_path  # noqa: E402, F401  (first: tests/ on sys.path)
import baselines  # noqa: E402
from pagecache import drop_caches  # noqa: E402
from stamp import stamp  # noqa: E402
from support.bands import S2_BANDS  # noqa: E402
from support.bigearthnet import convert  # noqa: E402
from support.trees import link_tree, make_dataset  # noqa: E402

BATCH_SIZES = [16, 32, 64, 128, 256, 512, 1024]
SIZE = 120
COLD_SAMPLES = 20000


def warm(path: Path) -> None:
    with open(path / "data.mdb", "rb") as f:
        while f.read(16 << 20):
            pass


def timed_epochs(run_epoch, min_seconds: float) -> float:
    """Samples/s of whole epochs, repeated until ``min_seconds`` have passed (one warm-up)."""
    run_epoch()
    samples, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        samples += run_epoch()
    return samples / (time.perf_counter() - start)


def make_loader(ds, keys, batch: int, threads):
    """One Loader for every epoch, as a training script keeps it (its buffer ring is reused)."""
    import rico

    return rico.Loader(
        ds, keys=keys, bands=S2_BANDS, size=SIZE, batch_size=batch, threads=threads,
        drop_last=True,
    )  # fmt: skip


def loader_epoch(loader) -> int:
    loader.set_epoch(loader.epoch + 1)
    n = 0
    for x in loader:
        n += len(x)
    return n


def batch_calls(ds, keys, batch: int, buf) -> int:
    """One epoch of ``ds.batch`` calls: new arrays (``buf`` None) or into ``buf``."""
    order = random.sample(keys, len(keys))
    n = 0
    for i in range(0, len(order) - batch + 1, batch):
        x = ds.batch(order[i : i + batch], S2_BANDS, size=SIZE, threads=2, out=buf)
        n += len(x)
    return n


def baseline_batches(db: Path, keys, batch: int, seconds: float) -> float:
    order = random.sample(keys, len(keys))
    groups = [order[i : i + batch] for i in range(0, len(order) - batch + 1, batch)]
    n, start = 0, time.perf_counter()
    for x in baselines.configilm_batches(db, groups, S2_BANDS, SIZE):
        n += len(x)
        if time.perf_counter() - start > seconds:
            break
    return n / (time.perf_counter() - start)


def fio_reference(db: Path, record_bytes: int) -> float | None:
    if shutil.which("fio") is None:
        return None
    bs = max(4096, record_bytes // 4096 * 4096)
    cmd = [
        "fio", "--name=ref", f"--filename={db / 'data.mdb'}", "--readonly", "--rw=randread",
        f"--bs={bs}", "--iodepth=32", "--ioengine=libaio", "--direct=1", "--runtime=10",
        "--time_based", "--output-format=json",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(json.loads(out)["jobs"][0]["read"]["iops"])


def cold_loader_epoch(ds, keys) -> dict:
    """One cold shuffled epoch at batch 64 (default threads): samples/s over the epoch and
    after its first 5% (the steady state, once the read-ahead fills the disk's queue), and the
    process's user and system CPU seconds over the epoch (every thread's)."""
    import resource

    loader = make_loader(ds, keys, 64, None)
    loader.set_epoch(1)
    stamps, n = [], 0
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for x in loader:
        n += len(x)
        stamps.append((n, time.perf_counter()))
    end = time.perf_counter()
    after = resource.getrusage(resource.RUSAGE_SELF)
    k = max(1, len(stamps) // 20)
    n0, t0 = stamps[k - 1]
    return {
        "loader": n / (end - start),
        "loader_steady": (n - n0) / (end - t0),
        "user_s": after.ru_utime - before.ru_utime,
        "sys_s": after.ru_stime - before.ru_stime,
        "major_faults": after.ru_majflt - before.ru_majflt,
        # Which path the records took: read whole (not resident) or in place, and the depth.
        "cold_path": ds.db._cold_stats(),
    }


def cold_getitem(ds, keys, n: int = 300) -> float:
    chosen = random.sample(keys, n)
    start = time.perf_counter()
    for k in chosen:
        for a in ds[k].values():
            a.sum()  # every byte read
    return n / (time.perf_counter() - start)


def cold_baseline_getitem(db: Path, keys, n: int = 300) -> float:
    from safetensors.numpy import load

    chosen = random.sample(keys, n)
    env = baselines.open_reference_env(db)
    start = time.perf_counter()
    with env.begin(buffers=False) as txn:
        for k in chosen:
            for a in load(txn.get(k)).values():
                a.sum()
    rate = n / (time.perf_counter() - start)
    env.close()
    return rate


def warm_getitem(ds, db: Path, keys) -> dict:
    from safetensors.numpy import load

    key = keys[len(keys) // 2]
    reps = 20000
    start = time.perf_counter()
    for _ in range(reps):
        ds[key]
    ours = reps / (time.perf_counter() - start)
    env = baselines.open_reference_env(db)
    with env.begin(buffers=False) as txn:
        start = time.perf_counter()
        for _ in range(reps // 10):
            load(txn.get(key))
        theirs = reps // 10 / (time.perf_counter() - start)
    env.close()
    return {"rico": ours, "lmdb_safetensors": theirs, "ratio": ours / theirs}


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    warm_rows = results["warm"]
    xs = [r["batch"] for r in warm_rows]
    for name, label in [
        ("loader", "rico.Loader (ring)"),
        ("batch_out", "ds.batch(out=)"),
        ("batch_new", "ds.batch (new array)"),
        ("baseline", "py-lmdb + safetensors (ConfigILM-style)"),
    ]:
        ax.plot(xs, [r[name] for r in warm_rows], marker="o", label=label)
    cold = results.get("cold")
    if cold:
        ax.axhline(cold["loader"], color="k", ls="--", label="rico.Loader, cold (batch 64)")
        if cold.get("fio"):
            ax.axhline(cold["fio"], color="r", ls=":", label="device: fio random reads, QD32")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("samples/s (12 S2 bands, 120x120 float32)")
    ax.set_title("Reading at scale (2 threads, warm unless noted)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--patches", type=int, default=3000)
    p.add_argument("--work", type=Path, required=True, help="scratch directory (tree, databases)")
    p.add_argument("--seconds", type=float, default=1.0, help="per warm figure and round")
    p.add_argument("--rounds", type=int, default=3, help="warm rounds (best kept)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument(
        "--cold",
        "--cold-only",
        dest="cold_only",
        action="store_true",
        help="the cold figures (each in a process of its own), not the warm ones",
    )
    p.add_argument(
        "--cold-samples", type=int, default=COLD_SAMPLES, help="samples of each cold epoch"
    )
    p.add_argument("--cold-runs", type=int, default=3, help="cold Loader epochs (each vs fio)")
    p.add_argument(
        "--linked", action="store_true", help="tree of hard links to 100 real-size patches"
    )
    args = p.parse_args()

    tree, db = args.work / "tree", args.work / "ben.lmdb"
    if args.linked:
        base = args.work / "base"
        if not (base / ".complete").exists():
            make_dataset(base, 100, workers=os.cpu_count() or 1)
            (base / ".complete").touch()
        link_tree(base, tree, args.patches, 100)
    elif not (tree / "BigEarthNet-S2").is_dir():
        make_dataset(tree, args.patches, workers=os.cpu_count() or 1)
    if not (db / "data.mdb").is_file():
        convert(tree, db, progress=False)
    keys = baselines.s2_keys(db)
    env = baselines.open_reference_env(db)
    with env.begin() as txn:
        record_bytes = len(txn.get(keys[0]))
    env.close()
    command = " ".join(["python", "benches/read_scale.py", *sys.argv[1:]])
    results: dict = {
        "stamp": stamp(command.replace(str(args.work), "DIR"), args.work),
        "records": len(keys),
        "record_bytes": record_bytes,
        "warm": [],
    }
    print(f"{len(keys)} S2 records of {record_bytes} bytes", flush=True)

    # The warm figures keep the database mapped in this process, and a drop of the page cache
    # cannot evict mapped pages: cold figures are taken apart, with --cold-only.
    if not args.cold_only:
        warm_figures(args, db, keys, results)
    elif drop_caches():
        results["cold"] = cold_figures(args, db, record_bytes)
    else:
        print("cold figures need root (to drop the page cache): none taken", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    name = "read_scale_cold" if args.cold_only else "read_scale"
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    if results["warm"]:
        chart(results, args.out / "read_scale.png")
        rows = {r["batch"]: r for r in results["warm"]}
        print(f"Loader batch 512 / batch 32: {rows[512]['loader'] / rows[32]['loader']:.2f}x")


def warm_figures(args, db: Path, keys, results: dict) -> None:
    """The warm rows, in this process (which then keeps the database mapped: the cold figures
    run in processes of their own, since pages a process maps survive a drop of the cache)."""
    import rico

    ds = rico.open(db)
    warm(db)
    # Rounds interleave the batch sizes and each figure is the best round, so that load from
    # other processes on a shared machine hits every batch size alike.
    loaders = {b: make_loader(ds, keys, b, 2) for b in BATCH_SIZES}
    buffers = {b: np.empty((b, 12, SIZE, SIZE), np.float32) for b in BATCH_SIZES}
    best: dict = {b: {"batch": b} for b in BATCH_SIZES}
    for _ in range(args.rounds):
        for b in BATCH_SIZES:
            row = {
                "loader": timed_epochs(lambda lo=loaders[b]: loader_epoch(lo), args.seconds),
                "batch_new": timed_epochs(lambda b=b: batch_calls(ds, keys, b, None), args.seconds),
                "batch_out": timed_epochs(
                    lambda b=b: batch_calls(ds, keys, b, buffers[b]), args.seconds
                ),
                "baseline": baseline_batches(db, keys, b, args.seconds),
            }
            for name, value in row.items():
                best[b][name] = max(best[b].get(name, 0.0), value)
            print(json.dumps({"batch": b, **row}), flush=True)
    results["warm"] = [best[b] for b in BATCH_SIZES if len(best[b]) > 1]
    rounds = [warm_getitem(ds, db, keys) for _ in range(args.rounds)]
    if rounds:
        results["getitem_warm"] = max(rounds, key=lambda r: r["ratio"])
        print("warm ds[key]", json.dumps(results["getitem_warm"]), flush=True)


def cold_keys(db: Path, samples: int) -> list:
    """The keys of a cold epoch: ``samples`` S2 keys drawn at random (seeded), as a training
    split is a subset of the database."""
    keys = baselines.s2_keys(db)
    return sorted(random.Random(0).sample(keys, min(samples, len(keys))))


def cold_child(mode: str, db: str, samples: int = COLD_SAMPLES) -> dict:
    """One cold figure in a fresh process (see :func:`in_child`): ``loader`` (one shuffled
    epoch, batch 64), ``warm`` (the same epoch warm, best of 2), ``getitem``,
    ``getitem_baseline``. The keys are listed first, as a training script lists them."""
    import rico

    path = Path(db)
    keys = cold_keys(path, samples)
    if mode == "getitem_baseline":
        return {mode: cold_baseline_getitem(path, keys)}
    ds = rico.open(path)
    if mode == "loader":
        return cold_loader_epoch(ds, keys)
    if mode == "device":
        # rico's own device reference (O_DIRECT random reads of a record's size, QD32).
        report = rico.bench(path, bands=S2_BANDS, size=SIZE, seconds=2.0)
        device = report["device"]
        return {
            "rico_bench_device": device and device["records_per_second"],
            "cold_path": report.get("cold_path"),
        }
    if mode == "warm":
        warm(path)
        return {"loader_warm": max(cold_loader_epoch(ds, keys)["loader_steady"] for _ in range(2))}
    return {"getitem": cold_getitem(ds, keys)}


def in_child(mode: str, db: Path, samples: int = 0) -> dict:
    """:func:`cold_child` in a new interpreter: a drop of the page cache cannot evict pages
    that a live process has mapped, so a cold figure taken in a process that read the database
    before would be partly warm."""
    code = (
        f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import read_scale; "
        f"print(json.dumps(read_scale.cold_child({mode!r}, {str(db)!r}, {samples or COLD_SAMPLES})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def cold_figures(args, db: Path, record_bytes: int) -> dict:
    """fio and the cold epochs, ``args.cold_runs`` times, each after a drop of the page cache;
    then the same epoch warm, and single cold reads against py-lmdb + safetensors."""
    cold: dict = in_child("device", db)
    runs = []
    for _ in range(args.cold_runs):
        drop_caches()
        run = {"fio": fio_reference(db, record_bytes)}
        drop_caches()
        run.update(in_child("loader", db, args.cold_samples))
        if run["fio"]:
            run["loader_vs_fio"] = run["loader"] / run["fio"]
            run["steady_vs_fio"] = run["loader_steady"] / run["fio"]
        runs.append(run)
        print("cold epoch", json.dumps(run), flush=True)
    cold["runs"] = runs
    cold["fio"] = min((r["fio"] for r in runs if r["fio"]), default=None)
    cold["loader"] = min(r["loader"] for r in runs)
    # The same epoch warm: the loader's own ceiling on this machine's cores. Where fio serves
    # more records/s than that, a cold epoch cannot reach fio, and the ratio that says whether
    # storage is the bottleneck is cold over warm.
    cold.update(in_child("warm", db, args.cold_samples))
    cold["steady_vs_warm"] = [r["loader_steady"] / cold["loader_warm"] for r in runs]
    drop_caches()
    cold.update(in_child("getitem", db))
    drop_caches()
    cold.update(in_child("getitem_baseline", db))
    reference = cold["fio"] or cold["rico_bench_device"]
    cold["loader_vs_device"] = cold["loader"] / reference
    print("cold", json.dumps(cold), flush=True)
    warm(db)
    return cold


if __name__ == "__main__":
    main()
