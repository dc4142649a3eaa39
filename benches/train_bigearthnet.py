#!/usr/bin/env python3
"""The training loop of examples/train_bigearthnet.py on CPU, fed by rico and by a
ConfigILM-style DataLoader: samples per second, step time and time spent waiting for a batch.

Same model (``--arch``), same batch, same bands (the reBEN 10 m + 20 m bands at 120 x 120,
nearest, normalised with the published statistics), same optimiser, same run:

- rico: ``rico.torch.BigEarthNetLoader`` (batches assembled by Rust threads in the training
  process);
- ConfigILM-style: a ``torch.utils.data.DataLoader`` with worker processes over a map-style
  dataset that does per sample what ConfigILM's BENv2 reader does: py-lmdb get,
  ``safetensors.numpy.load``, ``torch.nn.functional.interpolate`` (nearest) per band to 120,
  ``torch.stack``, normalisation, labels from the pandas table. ConfigILM itself is not
  installed: its pins (numpy < 2, pyarrow < 13) conflict with this environment; the per-sample
  path is the one benches/bigearthnet.py checks byte for byte against rico.

Also the loaders alone (no model), the ceiling each puts on a step. The contenders alternate
for ``--rounds`` rounds; each figure is the best round's.

    python benches/train_bigearthnet.py                      # 600 patches, temporary directory
    python benches/train_bigearthnet.py --root bench-train --steps 30 --arch resnet18

Writes benches/results/train_bigearthnet.json and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import _tests_path  # noqa: F401  (first: tests/ on sys.path)
import lmdb
import rico
import rico.torch
import torch
from bigearthnet import converted_tree, split_rows, stacked_at_120
from rico.bigearthnet import CLASSES, published_stats, resolve_bands
from safetensors.numpy import load as st_load

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from train_bigearthnet import make_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BANDS = resolve_bands(10)


class ConfigILMStyle(torch.utils.data.Dataset):
    """Per sample: py-lmdb + safetensors.numpy.load + interpolate per band + stack +
    normalisation; labels from pandas."""

    def __init__(self, db: Path, metadata: Path, split: str) -> None:
        table = split_rows(metadata, split)
        self.db, self.keys = str(db), list(table.patch_id)
        self.labels = dict(zip(table.patch_id, table.labels))
        self.index = {c: i for i, c in enumerate(CLASSES)}
        mean, std = published_stats(BANDS, 120, "nearest")
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.env = None  # opened in each worker

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.env is None:
            self.env = lmdb.open(self.db, readonly=True, lock=False, readahead=False, meminit=False)
        key = self.keys[i]
        with self.env.begin(buffers=True) as txn:
            bands = st_load(bytes(txn.get(key.encode())))
        label = torch.zeros(len(CLASSES))
        label[[self.index[n] for n in self.labels[key]]] = 1.0
        return (stacked_at_120(bands, BANDS) - self.mean) / self.std, label


def train_loop(batches, model, steps: int, warmup: int) -> dict:
    """``warmup`` untimed steps, then ``steps`` timed ones, as the example's loop takes them."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    criterion = torch.nn.BCEWithLogitsLoss()
    model.train()
    wait, start, done = 0.0, None, 0
    it = iter(batches)
    while done < warmup + steps:
        t = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(batches)
            continue
        if done >= warmup:
            wait += time.perf_counter() - t
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done += 1
        if done == warmup:
            start, wait = time.perf_counter(), 0.0
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "steps": steps, "wait_s": wait}


def loader_only(batches, steps: int) -> dict:
    it, done = iter(batches), 0
    next(it)
    start = time.perf_counter()
    while done < steps:
        try:
            next(it)
            done += 1
        except StopIteration:
            it = iter(batches)
    return {"seconds": time.perf_counter() - start, "steps": steps, "wait_s": None}


class RicoPairs:
    """rico.torch.BigEarthNetLoader's dict batches as (image, label)."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def __iter__(self):
        return ((b["image"], b["label"]) for b in self.loader)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--root", type=Path, help="working directory (default: a temporary one)")
    p.add_argument("--patches", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2, help="best of this many alternating rounds")
    p.add_argument("--arch", default="small", choices=["small", "resnet18", "resnet50"])
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DataLoader workers")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="rico threads")
    args = p.parse_args()
    _, db, metadata = converted_tree(args.root, args.patches, "rico-train-")
    ben = rico.BigEarthNet(
        db, metadata=metadata, split="train", bands=BANDS, normalize="bigearthnet-v2", masks=False
    )
    cfg = ConfigILMStyle(db, metadata, "train")
    assert cfg.keys == ben.keys
    x, _ = cfg[0]  # the same sample up to float rounding of the normalisation
    assert torch.allclose(x, torch.from_numpy(ben[0]["image"]), atol=1e-5)

    def rico_batches():
        return RicoPairs(
            rico.torch.BigEarthNetLoader(
                ben, batch_size=args.batch_size, seed=0, drop_last=True, threads=args.threads
            )
        )

    def configilm_batches():
        return torch.utils.data.DataLoader(
            cfg, batch_size=args.batch_size, shuffle=True, drop_last=True,
            num_workers=args.workers, persistent_workers=args.workers > 0,
        )  # fmt: skip

    contenders = [
        ("rico.torch.BigEarthNetLoader", rico_batches),
        (f"ConfigILM-style DataLoader, {args.workers} workers", configilm_batches),
    ]
    # Rounds alternate the contenders (the machine's load drifts); each figure is its best round.
    best: dict[tuple[str, str], dict] = {}
    for _ in range(args.rounds):
        for name, make in contenders:
            runs = {"loader only": loader_only(make(), args.steps * 2)}
            torch.manual_seed(0)
            runs["training loop"] = train_loop(
                make(), make_model(args.arch, len(BANDS)), args.steps, args.warmup
            )
            for what, r in runs.items():
                if (name, what) not in best or r["seconds"] < best[name, what]["seconds"]:
                    best[name, what] = r
    rows = []
    for (name, what), r in best.items():
        per_step = r["seconds"] / r["steps"]
        row = {
            "contender": name,
            "what": what,
            "samples_per_s": args.batch_size / per_step,
            "ms_per_step": 1000 * per_step,
            "wait_ms_per_step": None if r["wait_s"] is None else 1000 * r["wait_s"] / r["steps"],
        }
        rows.append(row)
        wait = (
            "" if row["wait_ms_per_step"] is None else f", waiting {row['wait_ms_per_step']:.1f} ms"
        )
        print(f"  {name}, {what}: {row['samples_per_s']:,.0f} samples/s, {row['ms_per_step']:.1f} ms/step{wait}", flush=True)  # fmt: skip
    out = {
        "patches": args.patches,
        "train_rows": len(ben),
        "batch_size": args.batch_size,
        "arch": args.arch,
        "bands": BANDS,
        "steps": args.steps,
        "rounds": args.rounds,
        "workers": args.workers,
        "threads": args.threads,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "train_bigearthnet.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
