#!/usr/bin/env python3
"""Bilinear batches: rico against the ConfigILM-style torch path, at 1 and 2 threads, one run.

On a converted BigEarthNet-shaped database (``make_dataset.py``), batches of 32 Sentinel-2
records, 12 bands upsampled to 120x120 float32 with ``align_corners=True``:

- ConfigILM-style: py-lmdb get + ``safetensors.numpy.load``, each band a float32 tensor through
  ``torch.nn.functional.interpolate(mode="bilinear", align_corners=True)``, stacked
  (``torch.set_num_threads(t)``);
- rico: ``ds.batch(keys, bands, size=120, resample="bilinear", threads=t)``, and
  ``rico.Loader`` (Rust prefetch thread + ``threads`` assembly threads).

The two must agree within 1 ulp (asserted before timing). Best of ``--repeat`` passes over
``--batches`` batches, page cache warm. Prints a table and writes ``--out/bilinear.json``.

    python benches/bench_bilinear.py --patches 500
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import _tests_path  # noqa: F401  (first: tests/ on sys.path)
import lmdb
import numpy as np
import rico
import torch
from safetensors.numpy import load
from support.bands import S2_BANDS
from support.trees import make_dataset

BATCH, SIZE = 32, 120


def configilm_batch(txn, keys: list[str]) -> np.ndarray:
    """ConfigILM's BigEarthNet path: every band interpolated on its own, then stacked."""
    images = []
    for key in keys:
        bands = load(txn.get(key.encode()))
        planes = [
            torch.nn.functional.interpolate(
                torch.tensor(bands[b], dtype=torch.float32)[None, None],
                size=(SIZE, SIZE),
                mode="bilinear",
                align_corners=True,
            )[0, 0]
            for b in S2_BANDS
        ]
        images.append(torch.stack(planes))
    return torch.stack(images).numpy()


def cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def best(repeat: int, run) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the fastest of ``repeat`` runs. CPU time shows what the
    work costs when other processes take cores: flat CPU per sample from 1 to 2 threads means
    the threads add no overhead, and wall time scales as far as free cores allow."""
    runs = []
    for _ in range(repeat):
        start, cpu = time.perf_counter(), cpu_seconds()
        run()
        runs.append((time.perf_counter() - start, cpu_seconds() - cpu))
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patches", type=int, default=500)
    parser.add_argument("--batches", type=int, default=8, help="batches per pass")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rico-bilinear-"))
    make_dataset(work / "tree", args.patches)
    db = work / "ben.lmdb"
    rico.convert(
        "bigearthnet", db, bigearthnet_s2_dir=work / "tree" / "BigEarthNet-S2", progress=False
    )
    ds = rico.open(db)
    keys = ds.keys(bands=S2_BANDS)
    n = min(args.batches * BATCH, len(keys) // BATCH * BATCH)
    groups = [keys[i : i + BATCH] for i in range(0, n, BATCH)]
    env = lmdb.open(str(db), readonly=True, lock=False)
    txn = env.begin()

    ours, theirs = (
        ds.batch(groups[0], S2_BANDS, size=SIZE, resample="bilinear"),
        configilm_batch(txn, groups[0]),
    )
    worst = int(
        np.abs(ours.view(np.int32).astype(np.int64) - theirs.view(np.int32).astype(np.int64)).max()
    )
    assert worst <= 1, f"rico and torch differ by {worst} ulp"

    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        t_cfg = best(args.repeat, lambda: [configilm_batch(txn, g) for g in groups])
        t_batch = best(
            args.repeat,
            lambda t=threads: [
                ds.batch(g, S2_BANDS, size=SIZE, resample="bilinear", threads=t) for g in groups
            ],
        )
        loader = rico.Loader(
            ds,
            keys=keys[:n],
            bands=S2_BANDS,
            size=SIZE,
            batch_size=BATCH,
            resample="bilinear",
            threads=threads,
        )
        t_loader = best(args.repeat, lambda loader=loader: sum(len(b) for b in loader))
        for name, (t, cpu) in [
            ("ConfigILM-style (safetensors load + torch interpolate per band)", t_cfg),
            ("rico ds.batch(resample='bilinear')", t_batch),
            ("rico Loader(resample='bilinear')", t_loader),
        ]:
            rows.append(
                {
                    "name": name,
                    "threads": threads,
                    "seconds": t,
                    "samples_per_second": n / t,
                    "cpu_us_per_sample": cpu / n * 1e6,
                }
            )

    base = {
        r["threads"]: r["samples_per_second"] for r in rows if r["name"].startswith("ConfigILM")
    }
    lines = [
        f"Bilinear batches: {n} S2 records, {len(S2_BANDS)} bands -> {SIZE}x{SIZE} float32, batch {BATCH}, "
        f"max difference to torch {worst} ulp",
        f"{'':66} threads  samples/s  vs ConfigILM  CPU us/sample",
    ]
    for r in rows:
        lines.append(
            f"{r['name']:66} {r['threads']:>7} {r['samples_per_second']:>10,.0f} "
            f"{r['samples_per_second'] / base[r['threads']]:>11.2f}x {r['cpu_us_per_sample']:>14,.0f}"
        )
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bilinear.json").write_text(
        json.dumps({"rows": rows, "max_ulp": worst, "records": n, "text": text}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
