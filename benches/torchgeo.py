#!/usr/bin/env python3
"""TorchGeo's BigEarthNetV2 in a DataLoader against rico.torchgeo's DataModule, in one run.

Makes (or reuses) a BigEarthNet v2 tree of ``--patches`` patches with its metadata.parquet,
converts it once, then times one shuffled epoch of the train split, batch 32, for

- TorchGeo: ``torchgeo.datasets.BigEarthNetV2(bands="all")`` in a ``torch.utils.data.DataLoader``
  with ``--workers`` worker processes (rasterio reads every band of every sample);
- rico: ``rico.torchgeo.BigEarthNetV2DataModule(bands="all")``'s train loader (Rust threads
  assemble each batch; ``--threads``);

the same rows, the same sample contents (asserted on the first rows), page cache warm (one
untimed epoch of each first), best of ``--repeat``. Prints samples/s of both and their ratio.

    python benches/torchgeo.py --patches 2000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _tests_path  # noqa: E402, F401  (first: tests/ on sys.path)
import torch  # noqa: E402
from stamp import stamp  # noqa: E402
from support.bigearthnet import convert  # noqa: E402
from support.trees import make_bigearthnet  # noqa: E402

# This file is named torchgeo.py: its folder must not shadow the torchgeo package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

BATCH = 32


def tree(patches: int) -> Path:
    cache = Path(os.environ.get("RICO_BENCH_CACHE", Path(tempfile.gettempdir()) / "rico-bench"))
    root = cache / f"torchgeo-{patches}" / "data"
    if not (root / "metadata.parquet").exists():
        make_bigearthnet(root, patches)
    if not (root / "BigEarthNet.lmdb" / "data.mdb").exists():
        convert(root, root / "BigEarthNet.lmdb", progress=False)
    return root


def epoch(batches) -> tuple[int, float]:
    start = time.perf_counter()
    n = 0
    for batch in batches:
        n += len(batch["label"])
    return n, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patches", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="rico's threads (default: cores)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = ap.parse_args()

    from rico.torchgeo import BigEarthNetV2, BigEarthNetV2DataModule
    from torchgeo.datasets import BigEarthNetV2 as TorchGeoBigEarthNetV2

    root = tree(args.patches)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = TorchGeoBigEarthNetV2(root=root, split="train", bands="all")
    ours = BigEarthNetV2(root=root, split="train", bands="all", threads=args.threads)
    assert len(ours) == len(theirs)
    for i in range(3):  # the same samples
        a, b = ours[i], theirs[i]
        assert all(torch.equal(a[k], b[k]) for k in b), i

    loader = torch.utils.data.DataLoader(
        theirs, batch_size=BATCH, shuffle=True, num_workers=args.workers,
        generator=torch.Generator().manual_seed(0), persistent_workers=args.workers > 0,
    )  # fmt: skip
    dm = BigEarthNetV2DataModule(root=root, batch_size=BATCH, bands="all", threads=args.threads)
    dm.setup("fit")
    rico_batches = dm.train_dataloader()

    results: dict[str, float] = {}
    for name, batches in (("torchgeo", loader), ("rico", rico_batches)):
        epoch(batches)  # warm: page cache, workers started
        best = 0.0
        for _ in range(args.repeat):
            n, seconds = epoch(batches)
            assert n == len(theirs)
            best = max(best, n / seconds)
        results[name] = best
    ratio = results["rico"] / results["torchgeo"]
    print(
        f"BigEarthNet v2, {len(theirs)} train rows, bands=all, batch {BATCH}, one shuffled "
        f"epoch, page cache warm, {os.cpu_count()} cores ({platform.machine()})"
    )
    print(
        f"  TorchGeo BigEarthNetV2 + DataLoader({args.workers} workers): {results['torchgeo']:10.1f} samples/s"
    )
    print(
        f"  rico.torchgeo BigEarthNetV2DataModule:               {results['rico']:10.1f} samples/s"
    )
    print(f"  rico / TorchGeo: {ratio:.1f}x")
    if args.out is not None:
        args.out.write_text(
            json.dumps({**results, "ratio": ratio, "rows": len(theirs), "cores": os.cpu_count(),
                        "workers": args.workers, "patches": args.patches,
                        "stamp": stamp(" ".join(["python", "benches/torchgeo.py", *sys.argv[1:]]),
                                       packages=["torchgeo", "torch"])},
                       indent=2) + "\n"
        )  # fmt: skip


if __name__ == "__main__":
    main()
