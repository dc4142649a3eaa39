#!/usr/bin/env python3
"""rico.BigEarthNet against the paths BigEarthNet users run today, same tree, same run.

Contenders, all producing the same sample (image of BANDS at 120x120 float32, 19-class
multi-hot label) for the rows of the train split without snow/cloud:

- ConfigILM-style: py-lmdb get of the S2 and the S1 record, ``safetensors.numpy.load`` (copies),
  ``torch.nn.functional.interpolate`` per band to 120, ``torch.stack``, labels from a pandas
  table (ConfigILM's BENv2 LMDB reader does this per sample);
- TorchGeo-style: rasterio opens and reads every band's GeoTIFF per sample, resampled to 120
  on read (``out_shape``), labels from the pandas row (TorchGeo's ``BigEarthNetV2``);
- rico: ``ben[i]``, ``ben.batch``, ``ben.loader`` and ``rico.torch.BigEarthNet`` in a DataLoader.

    python benches/bigearthnet.py                  # 500 patches under a temporary directory
    python benches/bigearthnet.py --root /tmp/benb --patches 2000

Writes benches/results/bigearthnet.json and prints the table. Page cache warm; best of 3;
one torch thread.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import _tests_path  # noqa: F401  (first: tests/ on sys.path)
import lmdb
import numpy as np
import pandas as pd
import rasterio
import rico
import rico.torch
import torch
import torch.nn.functional as F
from rasterio.enums import Resampling
from rico.bigearthnet import CLASSES
from safetensors.numpy import load as st_load
from support.bigearthnet import S1_TILE, S2_TILE, convert
from support.trees import make_bigearthnet

BANDS = ["B04", "B03", "B02", "B08", "B05", "B11", "B01", "VV", "VH"]
S1 = {"VV", "VH"}
RESULTS = Path(__file__).resolve().parent / "results"


def converted_tree(root: Path | None, patches: int, prefix: str) -> tuple[Path, Path, Path]:
    """(source tree, database, its ``metadata.parquet``): a BigEarthNet v2 tree of ``patches``
    patches in ``src/`` of ``root`` (default: a new temporary folder named from ``prefix``) and
    its conversion in ``ben.lmdb/``, both made unless the database is there already."""
    root = root or Path(tempfile.mkdtemp(prefix=prefix))
    src, db = root / "src", root / "ben.lmdb"
    if not (db / "data.mdb").exists():
        make_bigearthnet(src, patches)
        convert(src, db, progress=False)
    return src, db, src / "metadata.parquet"


def split_rows(metadata: Path, split: str) -> pd.DataFrame:
    """The rows of ``split`` in ``metadata`` (``metadata.parquet``) without seasonal snow or
    cloud: the rows every contender reads."""
    table = pd.read_parquet(metadata)
    return table[
        (table.split == split) & ~table.contains_seasonal_snow & ~table.contains_cloud_or_shadow
    ]


def stacked_at_120(bands: dict[str, np.ndarray], names: list[str]) -> torch.Tensor:
    """The bands ``names`` of ``bands`` as float32, each resampled (nearest) to 120x120 with
    ``torch.nn.functional.interpolate`` as ConfigILM's reader does, stacked."""
    planes = []
    for b in names:
        x = torch.from_numpy(np.float32(bands[b]))
        if x.shape != (120, 120):
            x = F.interpolate(x[None, None], (120, 120), mode="nearest")[0, 0]
        planes.append(x)
    return torch.stack(planes)


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


class ConfigILMStyle:
    """Per sample: py-lmdb + safetensors.numpy.load + torch interpolate per band + stack;
    labels from pandas, as ConfigILM's BENv2 reader does."""

    def __init__(self, db: Path, metadata: Path, split: str) -> None:
        table = split_rows(metadata, split)
        self.keys = list(table.patch_id)
        self.s1 = dict(zip(table.patch_id, table.s1_name))
        self.labels = dict(zip(table.patch_id, table.labels))
        self.index = {c: i for i, c in enumerate(CLASSES)}
        self.env = lmdb.open(str(db), readonly=True, lock=False, readahead=False, meminit=False)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = self.keys[i]
        bands: dict[str, np.ndarray] = {}
        with self.env.begin(buffers=True) as txn:
            bands.update(st_load(bytes(txn.get(key.encode()))))
            bands.update(st_load(bytes(txn.get(self.s1[key].encode()))))
        label = np.zeros(len(CLASSES), dtype=np.float32)
        label[[self.index[n] for n in self.labels[key]]] = 1.0
        return stacked_at_120(bands, BANDS), torch.from_numpy(label)


class TorchGeoStyle:
    """Per sample: rasterio opens each band's GeoTIFF and reads it at 120x120."""

    def __init__(self, root: Path, metadata: Path, split: str) -> None:
        self.table = split_rows(metadata, split).reset_index(drop=True)
        self.root = root
        self.index = {c: i for i, c in enumerate(CLASSES)}

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = self.table.iloc[i]
        planes = []
        for b in BANDS:
            if b in S1:
                path = (
                    self.root / "BigEarthNet-S1" / S1_TILE / row.s1_name / f"{row.s1_name}_{b}.tif"
                )
            else:
                path = (
                    self.root
                    / "BigEarthNet-S2"
                    / S2_TILE
                    / row.patch_id
                    / f"{row.patch_id}_{b}.tif"
                )
            with rasterio.open(path) as src:
                planes.append(
                    src.read(1, out_shape=(120, 120), resampling=Resampling.nearest).astype(
                        np.float32
                    )
                )
        label = torch.zeros(len(CLASSES))
        label[[self.index[n] for n in row.labels]] = 1.0
        return torch.from_numpy(np.stack(planes)), label


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, help="working directory (default: a temporary one)")
    parser.add_argument("--patches", type=int, default=500)
    parser.add_argument(
        "--torchgeo-samples", type=int, default=100, help="rows TorchGeo-style reads"
    )
    args = parser.parse_args()
    # One torch thread, as in a DataLoader worker: torch's intra-op threads only add contention
    # to per-band interpolation and to collation (10x slower on a busy 2-core machine).
    torch.set_num_threads(1)
    src, db, metadata = converted_tree(args.root, args.patches, "rico-ben-")
    split = "train"

    ben = rico.BigEarthNet(db, metadata=metadata, split=split, bands=BANDS, masks=False)
    ben_masks = rico.BigEarthNet(db, metadata=metadata, split=split, bands=BANDS)
    cfg = ConfigILMStyle(db, metadata, split)
    tg = TorchGeoStyle(src, metadata, split)
    n = len(ben)
    assert cfg.keys == ben.keys
    # Same samples, byte for byte, before anything is timed.
    for i in (0, n - 1):
        x, y = cfg[i]
        assert x.numpy().tobytes() == ben[i]["image"].tobytes()
        assert y.numpy().tobytes() == ben[i]["label"].tobytes()
        x, y = tg[i]
        assert x.numpy().tobytes() == ben[i]["image"].tobytes()

    rows: list[tuple[str, int, float]] = []

    def timed(name: str, samples: int, fn) -> None:
        seconds = best_of(fn)
        rows.append((name, samples, seconds))
        print(f"  {name}: {samples / seconds:,.0f} samples/s", flush=True)

    def each(dataset, count):
        def run():
            for i in range(count):
                dataset[i]

        return run

    m = min(args.torchgeo_samples, n)
    timed("TorchGeo-style: rasterio per GeoTIFF, per sample", m, each(tg, m))
    timed("ConfigILM-style: py-lmdb + safetensors + interpolate, per sample", n, each(cfg, n))
    timed("rico ben[i] (image + label)", n, each(ben, n))
    timed("rico ben[i] (image + label + mask)", n, each(ben_masks, n))

    def batches():
        for s in range(0, n, 32):
            ben.batch(range(s, min(s + 32, n)))

    timed("rico ben.batch of 32", n, batches)

    def loader(dataset, batch_size):
        # One loader per size, iterated for every timing: its buffer ring is made once.
        it = dataset.loader(batch_size=batch_size, shuffle=True, seed=0)

        def run():
            for _ in it:
                pass

        return run

    for size in (32, 256, 512):
        timed(f"rico ben.loader, batch {size}", n, loader(ben, size))
        timed(f"rico ben.loader with masks, batch {size}", n, loader(ben_masks, size))
    tds = rico.torch.BigEarthNet(db, metadata=metadata, split=split, bands=BANDS, masks=False)

    def dataloader(workers: int):
        def run():
            dl = torch.utils.data.DataLoader(tds, batch_size=32, shuffle=True, num_workers=workers)
            for _ in dl:
                pass

        return run

    timed("rico.torch.BigEarthNet, DataLoader batch 32, 0 workers", n, dataloader(0))

    def batched():
        sampler = torch.utils.data.BatchSampler(
            torch.utils.data.RandomSampler(tds), batch_size=32, drop_last=False
        )
        for _ in torch.utils.data.DataLoader(tds, sampler=sampler, batch_size=None):
            pass

    timed("rico.torch.BigEarthNet, DataLoader of whole batches (ds[[...]])", n, batched)
    timed("rico.torch.BigEarthNet, DataLoader batch 32, 2 workers", n, dataloader(2))

    base = next(s / t for name, s, t in rows if name.startswith("ConfigILM"))
    lines = [
        f"BigEarthNet v2 samples: {n} train rows of a {args.patches}-patch database, bands "
        f"{' '.join(BANDS)} at 120x120, nearest; page cache warm, best of 3, {os.cpu_count()} cores",
        f"{'':66} {'samples/s':>10} {'vs ConfigILM':>13}",
    ]
    for name, samples, seconds in rows:
        rate = samples / seconds
        lines.append(f"{name:66} {rate:>10,.0f} {rate / base:>12.2f}x")
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bigearthnet.json").write_text(
        json.dumps(
            {
                "rows": n,
                "patches": args.patches,
                "bands": BANDS,
                "results": [
                    {"name": name, "samples": s, "seconds": t, "samples_per_second": s / t}
                    for name, s, t in rows
                ],
                "text": text,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
