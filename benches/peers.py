#!/usr/bin/env python3
"""rico against the real packages users train BigEarthNet v2 with, on one tree, in one run.

The peers are the published packages, imported by name (``requirements-bench.txt``), each run
with its documented defaults and with its best settings (persistent workers; shuffle on and
off where it has the choice):

- **ConfigILM** (``configilm``): ``BENv2DataSet[i]`` against ``rico.BigEarthNet[i]``, and
  ``BENv2DataModule``'s train loader against ``rico.lightning.BigEarthNetDataModule``'s, on
  the database rico wrote (ConfigILM reads rico-hdl's format, which rico writes);
- **LitData** (``litdata``): ``optimize`` of the S2 patches (rasterio per patch) against the
  ``rico`` binary converting them, then ``StreamingDataset`` + ``StreamingDataLoader`` against
  ``rico.torch.Loader``, each yielding the same 12-band 120x120 float32 batches;
- **TorchGeo** (``torchgeo``): ``BigEarthNetV2`` (its S1 + S2 images, reference map and labels
  per sample, read with rasterio) in a torch ``DataLoader`` against ``rico.BigEarthNet``'s
  loader with masks, bilinear, the same 14 bands.

Every contender runs in a process of its own (its peak RSS is its own; workers' too, summed),
on a generated BigEarthNet-shaped tree of real-size records (``make_bigearthnet.py``: 120x120
S2 10 m bands, the real GeoTIFF profiles, a ``metadata.parquet`` of the real schema, split as
BigEarthNet ships: the snow and cloud/shadow patches in their own table). Loader figures are
the best epoch of ``--epochs``, each epoch timed from ``iter()`` to its last batch (so a loader
that starts its workers every epoch pays for it every epoch); conversions are the best of
``--repeat``. Writes ``peers.json`` (stamped with commit, date, machine and the packages'
versions) and ``peers.png``.

    python benches/peers.py --patches 2000                 # make bench-report's run
    python benches/peers.py --patches 300 --epochs 2       # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BINARY = ROOT / "target" / "release" / "rico"
sys.path.insert(0, str(HERE))

import _tests_path  # noqa: E402, F401  (first: tests/ on sys.path)
import baselines  # noqa: E402
import charts  # noqa: E402
import stamp  # noqa: E402
from support.bands import S2_BANDS  # noqa: E402

os.environ.setdefault("CPL_LOG", "/dev/null")

BATCH = 32
WORKERS = 2
SIZE = 120
PACKAGES = [
    "configilm",
    "litdata",
    "torchgeo",
    "torch",
    "lightning",
    "rasterio",
    "lmdb",
    "safetensors",
]
#: ConfigILM's 12-channel configuration (its DataModule has statistics for 12, not for 14).
CONFIGILM_CHANNELS = 12
SNOW_CLOUD = "metadata_for_patches_with_snow_cloud_or_shadow.parquet"


def cache_dir() -> Path:
    return Path(os.environ.get("RICO_BENCH_CACHE") or Path(tempfile.gettempdir()) / "rico-bench")


def ensure_tree(patches: int) -> Path:
    """The cached BigEarthNet v2-shaped tree of ``patches`` patches with its metadata tables as
    BigEarthNet ships them: ``metadata.parquet`` without the snow and cloud/shadow patches,
    which are in ``metadata_for_patches_with_snow_cloud_or_shadow.parquet``."""
    tree = cache_dir() / f"ben-{patches}-v1"
    if (tree / SNOW_CLOUD).is_file():
        return tree
    partial = tree.with_name(tree.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"writing a {patches}-patch tree (cached for later runs) ...", file=sys.stderr, flush=True
    )
    subprocess.run(
        [
            sys.executable,
            str(HERE / "make_bigearthnet.py"),
            "--patches",
            str(patches),
            str(partial),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    import pandas as pd

    s1_as_shipped(partial / "BigEarthNet-S1")
    table = pd.read_parquet(partial / "metadata.parquet")
    flagged = table["contains_seasonal_snow"] | table["contains_cloud_or_shadow"]
    table[~flagged].to_parquet(partial / "metadata.parquet", index=False)
    table[flagged].to_parquet(partial / SNOW_CLOUD, index=False)
    shutil.rmtree(tree, ignore_errors=True)
    partial.rename(tree)
    return tree


def s1_as_shipped(root: Path) -> None:
    """BigEarthNet-S1's folders as the data set ships them (and TorchGeo globs them): each
    patch under its product's name, ``S1A_IW_GRDH_1SDV_<time>/<product>_<tile>_<x>_<y>/``,
    not under ``<product>_<tile>/`` as the generator writes them."""
    for tile in sorted(p for p in root.iterdir() if p.is_dir()):
        for patch in sorted(tile.iterdir()):
            product = root / "_".join(patch.name.split("_")[:-3])
            if product == tile:
                continue
            product.mkdir(exist_ok=True)
            patch.rename(product / patch.name)
        if not any(tile.iterdir()):
            tile.rmdir()


def data_dirs(tree: Path, db: Path) -> dict[str, str]:
    return {
        "images_lmdb": str(db),
        "metadata_parquet": str(tree / "metadata.parquet"),
        "metadata_snow_cloud_parquet": str(tree / SNOW_CLOUD),
    }


# -- timing helpers (in the child) ------------------------------------------------------------


def epochs(make_iter: Callable[[int], Any], count: int, n_epochs: int) -> dict:
    """Times ``n_epochs`` passes of ``make_iter(epoch)``; each yields ``count`` samples."""
    seconds = []
    for epoch in range(n_epochs):
        start = time.perf_counter()
        seen = 0
        for batch in make_iter(epoch):
            seen += _batch_len(batch)
        seconds.append(time.perf_counter() - start)
        if seen != count:
            raise SystemExit(f"an epoch yielded {seen} samples, not {count}")
    return best_of(count, seconds)


def best_of(count: int, seconds: list[float]) -> dict:
    """The result of passes over ``count`` samples that took ``seconds`` each: the best's."""
    best = min(seconds)
    return {
        "samples": count,
        "seconds": best,
        "all_seconds": seconds,
        "samples_per_second": count / best,
    }


def _batch_len(batch: Any) -> int:
    if isinstance(batch, dict):
        batch = batch.get("image", batch.get("image_s2", next(iter(batch.values()))))
    if isinstance(batch, (tuple, list)):
        batch = batch[0]
    return int(batch.shape[0])


def per_sample(get: Callable[[int], Any], count: int, repeat: int) -> dict:
    """Best of ``repeat`` passes of ``get(i)`` over ``range(count)``."""
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(count):
            get(i)
        seconds.append(time.perf_counter() - start)
    return best_of(count, seconds)


# -- contenders (each in its own process) -----------------------------------------------------


def configilm_dataset(p: dict) -> dict:
    from configilm.extra.DataSets.BENv2_DataSet import BENv2DataSet

    ds = BENv2DataSet(
        data_dirs(Path(p["tree"]), Path(p["db"])),
        split="train",
        img_size=(CONFIGILM_CHANNELS, SIZE, SIZE),
    )
    return per_sample(ds.__getitem__, len(ds), p["repeat"])


def rico_dataset(p: dict) -> dict:
    import rico
    from rico.lightning import CONFIGILM_BANDS

    ben = rico.BigEarthNet(
        p["db"],
        metadata=Path(p["tree"]) / "metadata.parquet",
        split="train",
        bands=CONFIGILM_BANDS[CONFIGILM_CHANNELS],
        size=SIZE,
        resample="nearest",
        label_order="lexicographic",
    )
    return per_sample(ben.__getitem__, len(ben), p["repeat"])


def set_up(datamodule: Any, p: dict, **kwargs: Any) -> Any:
    """A BigEarthNet v2 data module (ConfigILM's or rico's) of the tree and database in ``p``,
    of the batch and image size every contender takes, set up for fitting."""
    dm = datamodule(
        data_dirs(Path(p["tree"]), Path(p["db"])),
        batch_size=BATCH,
        img_size=(CONFIGILM_CHANNELS, SIZE, SIZE),
        **kwargs,
    )
    dm.setup("fit")
    assert dm.train_ds is not None
    return dm


def configilm_datamodule(p: dict) -> dict:
    import torch
    from configilm.extra._defaults import default_transform
    from configilm.extra.BENv2_utils import band_combi_to_mean_std
    from configilm.extra.DataModules.BENv2_DataModule import BENv2DataModule

    kwargs: dict[str, Any] = {}
    if p["best"]:
        # The same work as rico's loader: normalisation, no augmentation.
        mean, std = band_combi_to_mean_std(CONFIGILM_CHANNELS)
        kwargs["train_transforms"] = default_transform(img_size=(SIZE, SIZE), mean=mean, std=std)
    dm = set_up(BENv2DataModule, p, num_workers_dataloader=WORKERS, **kwargs)
    if p["best"]:
        loader = torch.utils.data.DataLoader(
            dm.train_ds,
            batch_size=BATCH,
            shuffle=True,
            num_workers=WORKERS,
            persistent_workers=True,
        )
    else:
        loader = dm.train_dataloader()
    return epochs(lambda _e: loader, len(dm.train_ds), p["epochs"])


def rico_datamodule(p: dict) -> dict:
    from rico.lightning import BigEarthNetDataModule

    dm = set_up(BigEarthNetDataModule, p, threads=WORKERS)
    loader = dm.train_dataloader()
    return epochs(lambda _e: loader, len(dm.train_ds), p["epochs"])


def _read_patch(patch: tuple[str, list[tuple[str, str]]]) -> dict:
    """LitData's item for one S2 patch: every band as rasterio reads it, and the key."""
    import rasterio

    key, files = patch
    item: dict[str, Any] = {"key": key}
    for band, path in sorted(files):
        with rasterio.open(path) as src:
            item[band] = src.read(1)
    return item


def s2_patches(tree: Path) -> list:
    return [
        p
        for p in baselines.find_patches(tree)
        if p[0].startswith("S2") and not p[0].endswith("_reference_map")
    ]


def litdata_optimize(p: dict) -> dict:
    from litdata import optimize

    patches = s2_patches(Path(p["tree"]))
    target = Path(p["target"])
    seconds = []
    for _ in range(p["repeat"]):
        shutil.rmtree(target, ignore_errors=True)
        start = time.perf_counter()
        optimize(
            fn=_read_patch,
            inputs=patches,
            output_dir=str(target),
            num_workers=WORKERS,
            chunk_bytes="64MB",
        )
        seconds.append(time.perf_counter() - start)
    best = min(seconds)
    return {"records": len(patches), "seconds": best, "all_seconds": seconds}


def rico_convert_s2(p: dict) -> dict:
    target = Path(p["target"])
    argv = [
        str(BINARY),
        "bigearthnet",
        "--quiet",
        "--threads",
        str(WORKERS),
        "--target-dir",
        str(target),
        "--bigearthnet-s2-dir",
        str(Path(p["tree"]) / "BigEarthNet-S2"),
    ]
    seconds, rss = [], 0.0
    for _ in range(p["repeat"]):
        shutil.rmtree(target, ignore_errors=True)
        start = time.perf_counter()
        proc = subprocess.Popen(argv)
        while proc.poll() is None:
            try:
                rss = max(rss, baselines.peak_rss_mb(proc.pid))
            except OSError:
                pass
            time.sleep(0.005)
        seconds.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise SystemExit(f"rico failed with exit code {proc.returncode}")
    import lmdb

    with lmdb.open(str(target), readonly=True, lock=False) as env:
        records = env.stat()["entries"]
    return {
        "records": records,
        "seconds": min(seconds),
        "all_seconds": seconds,
        "rss_mb": rss,
        "rss_is_child": True,
    }


def _litdata_dataset_class():
    import numpy as np
    import torch
    from litdata import StreamingDataset

    class S2Stack(StreamingDataset):
        """LitData's items as the training sample: the 12 S2 bands upsampled (nearest) to
        120x120 and stacked, float32, as ConfigILM's sample and ``rico.torch.Loader`` give."""

        def __getitem__(self, index: Any) -> Any:
            item = super().__getitem__(index)
            return torch.from_numpy(baselines.configilm_sample(item, S2_BANDS, SIZE))

    del np
    return S2Stack


def litdata_stream(p: dict) -> dict:
    from litdata import StreamingDataLoader

    S2Stack = _litdata_dataset_class()
    ds = S2Stack(input_dir=str(p["litdata"]), shuffle=p["shuffle"])
    loader = StreamingDataLoader(
        ds,
        batch_size=BATCH,
        num_workers=WORKERS,
        persistent_workers=p["persistent"],
    )
    return epochs(lambda _e: loader, len(ds), p["epochs"])


def rico_loader(p: dict) -> dict:
    import rico.torch

    loader = rico.torch.Loader(
        p["db"], bands=S2_BANDS, size=SIZE, batch_size=BATCH, threads=WORKERS, shuffle=p["shuffle"]
    )
    count = len(loader.keys)
    return epochs(lambda _e: loader, count, p["epochs"])


def torchgeo_loader(p: dict) -> dict:
    import torch
    from torchgeo.datasets import BigEarthNetV2

    ds = BigEarthNetV2(root=p["tree"], split="train", bands="all")
    # Its first rows only: at tens of samples/s a whole split would take minutes an epoch.
    ds = torch.utils.data.Subset(ds, range(min(len(ds), p["limit"])))
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=BATCH,
        shuffle=True,
        num_workers=WORKERS,
        persistent_workers=p["persistent"],
    )
    return epochs(lambda _e: loader, len(ds), p["epochs"])


def rico_ben_loader(p: dict) -> dict:
    import rico

    ben = rico.BigEarthNet(
        p["db"],
        metadata=Path(p["tree"]) / "metadata.parquet",
        split="train",
        bands="ALL",
        size=SIZE,
        resample="bilinear",
        masks=True,
    )
    loader = ben.loader(batch_size=BATCH, shuffle=True, threads=WORKERS)
    return epochs(lambda _e: loader, len(ben), p["epochs"])


CONTENDERS: dict[str, Callable[[dict], dict]] = {
    f.__name__: f
    for f in (
        configilm_dataset,
        rico_dataset,
        configilm_datamodule,
        rico_datamodule,
        litdata_optimize,
        rico_convert_s2,
        litdata_stream,
        rico_loader,
        torchgeo_loader,
        rico_ben_loader,
    )
}


def run_one(name: str, params: str) -> None:
    out = CONTENDERS[name](json.loads(params))
    out.setdefault("rss_mb", baselines.peak_rss_mb())
    print(json.dumps(out))


# -- checks (not timed) -----------------------------------------------------------------------


def check_same_values(tree: Path, db: Path, litdata_dir: Path) -> None:
    """ConfigILM's, TorchGeo's and LitData's samples hold the values rico's do."""
    import numpy as np
    import rico
    from configilm.extra.DataSets.BENv2_DataSet import BENv2DataSet
    from rico.lightning import CONFIGILM_BANDS

    cfg = BENv2DataSet(
        data_dirs(tree, db), split="train", img_size=(CONFIGILM_CHANNELS, SIZE, SIZE)
    )
    ben = rico.BigEarthNet(
        db,
        metadata=tree / "metadata.parquet",
        split="train",
        bands=CONFIGILM_BANDS[CONFIGILM_CHANNELS],
        size=SIZE,
        label_order="lexicographic",
    )
    by_key = {k: i for i, k in enumerate(ben.keys)}
    for i in range(0, len(cfg), max(1, len(cfg) // 8)):
        img, label = cfg[i]
        sample = ben[by_key[cfg.patches[i]]]
        assert np.array_equal(img.numpy(), sample["image"]), "ConfigILM's image differs"
        assert np.array_equal(label.numpy(), sample["label"]), "ConfigILM's labels differ"
    S2Stack = _litdata_dataset_class()
    lit = S2Stack(input_dir=str(litdata_dir))
    ds = rico.open(db)
    for i in range(0, len(lit), max(1, len(lit) // 8)):
        item = super(S2Stack, lit).__getitem__(i)
        want = ds.batch([item["key"]], S2_BANDS, size=SIZE)[0]
        assert np.array_equal(lit[i].numpy(), want), "LitData's sample differs from rico's"


# -- the report -------------------------------------------------------------------------------


def chart(groups: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sum(len(g["rows"]) for g in groups)
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 1.0 + 0.36 * rows + 0.7 * len(groups)))
    for ax, g in zip(axes, groups):
        names = [r["name"] for r in g["rows"]][::-1]
        values = [r[g["unit_key"]] for r in g["rows"]][::-1]
        rico = [r["peer"] == "rico" for r in g["rows"]][::-1]
        charts.bars(ax, names, values, rico, [f" {value:,.0f}" for value in values], fontsize=7)
        ax.set_xlabel(g["unit"] + " (log scale)", fontsize=8)
        ax.set_title(g["title"], fontsize=9, loc="left")
        ax.set_xlim(min(values) / 2, max(values) * 6)
        ax.tick_params(axis="y", labelsize=7)
    charts.save(fig, title, 10, path)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--run-one":
        run_one(argv[1], argv[2])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patches", type=int, default=2000, help="patches in the tree (2000)")
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per loader; the best counts (3)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each fast contender (3)")
    parser.add_argument(
        "--slow-repeat", type=int, default=2, help="runs of LitData's optimize and slow loaders (2)"
    )
    parser.add_argument(
        "--torchgeo-rows", type=int, default=320, help="rows TorchGeo reads an epoch (320)"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where peers.json goes")
    parser.add_argument(
        "--chart", type=Path, default=HERE / "results" / "peers.png", help="the chart"
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (a temp dir)")
    args = parser.parse_args(argv)

    if not BINARY.is_file():
        raise SystemExit(f"{BINARY} is missing: run `make build` first")
    from compare import measure

    tree = ensure_tree(args.patches)
    work = Path(tempfile.mkdtemp(prefix="rico-peers-", dir=args.work))
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    def run(name: str, **params: Any) -> dict:
        params = {
            "tree": str(tree),
            **{k: str(v) if isinstance(v, Path) else v for k, v in params.items()},
        }
        log(
            f"  {name} {json.dumps({k: v for k, v in params.items() if k not in ('tree', 'db', 'target', 'litdata')})}"
        )
        result = measure(
            [sys.executable, str(Path(__file__).resolve()), "--run-one", name, json.dumps(params)]
        )
        if "samples_per_second" in result:
            log(
                f"    {result['samples_per_second']:,.0f} samples/s (epochs {', '.join(f'{s:.2f}' for s in result['all_seconds'])} s)"
            )
        else:
            log(f"    {result['seconds']:.2f} s")
        return result

    def row(peer: str, name: str, settings: str, result: dict) -> dict:
        return {"peer": peer, "name": name, "settings": settings, **result}

    try:
        db = work / "ben.lmdb"
        subprocess.run(
            [str(BINARY), "bigearthnet", "--quiet", "--target-dir", str(db), *flags(tree)],
            check=True,
        )
        ep, rep, slow = args.epochs, args.repeat, args.slow_repeat
        groups: list[dict] = []

        log("ConfigILM: BENv2DataSet[i] ...")
        cfg_ds = run("configilm_dataset", db=db, repeat=rep)
        rico_ds = run("rico_dataset", db=db, repeat=rep)
        log("ConfigILM: BENv2DataModule train loader ...")
        cfg_dm = run("configilm_datamodule", db=db, epochs=ep, best=False)
        cfg_dm_best = run("configilm_datamodule", db=db, epochs=ep, best=True)
        rico_dm = run("rico_datamodule", db=db, epochs=ep)
        groups.append(
            {
                "id": "configilm",
                "title": f"ConfigILM: BigEarthNet v2 train split, {CONFIGILM_CHANNELS} channels at {SIZE}x{SIZE}",
                "unit": "samples/s",
                "unit_key": "samples_per_second",
                "rows": [
                    row(
                        "configilm",
                        "ConfigILM BENv2DataSet[i]",
                        "1 process, nearest, no transform",
                        cfg_ds,
                    ),
                    row(
                        "rico",
                        "rico BigEarthNet[i]",
                        "1 process, nearest, no normalisation",
                        rico_ds,
                    ),
                    row(
                        "configilm",
                        "ConfigILM BENv2DataModule, defaults",
                        f"train_dataloader(): batch {BATCH}, {WORKERS} workers (not persistent), "
                        "shuffle, default train transforms (flips, normalisation)",
                        cfg_dm,
                    ),
                    row(
                        "configilm",
                        "ConfigILM BENv2DataModule, best",
                        f"its train set in a DataLoader: batch {BATCH}, {WORKERS} persistent workers, "
                        "shuffle, normalisation only (its eval transform)",
                        cfg_dm_best,
                    ),
                    row(
                        "rico",
                        "rico.lightning BigEarthNetDataModule",
                        f"train_dataloader(): batch {BATCH}, {WORKERS} threads, shuffle, normalisation",
                        rico_dm,
                    ),
                ],
                "ratios": {
                    "dataset": rico_ds["samples_per_second"] / cfg_ds["samples_per_second"],
                    "datamodule_defaults": rico_dm["samples_per_second"]
                    / cfg_dm["samples_per_second"],
                    "datamodule_best": rico_dm["samples_per_second"]
                    / cfg_dm_best["samples_per_second"],
                },
            }
        )

        log("LitData: optimize vs the rico binary (S2 patches) ...")
        lit_dir = work / "litdata"
        lit_opt = run("litdata_optimize", target=lit_dir, repeat=slow)
        rico_s2 = run("rico_convert_s2", target=work / "s2.lmdb", repeat=rep)
        assert lit_opt["records"] == rico_s2["records"], (lit_opt["records"], rico_s2["records"])
        for r in (lit_opt, rico_s2):
            r["records_per_second"] = r["records"] / r["seconds"]
        groups.append(
            {
                "id": "litdata_convert",
                "title": f"LitData optimize vs rico: {rico_s2['records']:,} S2 patches (12 GeoTIFFs each) to a dataset",
                "unit": "patches/s",
                "unit_key": "records_per_second",
                "rows": [
                    row(
                        "litdata",
                        "LitData optimize",
                        f"rasterio per patch, {WORKERS} workers, chunk_bytes 64MB",
                        lit_opt,
                    ),
                    row("rico", "rico binary", f"--threads {WORKERS}, defaults", rico_s2),
                ],
                "ratios": {"convert": lit_opt["seconds"] / rico_s2["seconds"]},
            }
        )

        log("checking ConfigILM's and LitData's samples against rico's ...")
        check_same_values(tree, db, lit_dir)

        log("LitData: StreamingDataLoader vs rico.torch.Loader (S2 records) ...")
        s2db = work / "s2.lmdb"
        stream_rows, stream = [], {}
        for shuffle in (False, True):
            for persistent in (False, True):
                r = run(
                    "litdata_stream",
                    litdata=lit_dir,
                    epochs=ep,
                    shuffle=shuffle,
                    persistent=persistent,
                )
                stream[(shuffle, persistent)] = r
                stream_rows.append(
                    row(
                        "litdata",
                        f"LitData, shuffle {'on' if shuffle else 'off'}, "
                        f"{'persistent workers' if persistent else 'defaults'}",
                        f"StreamingDataset(shuffle={shuffle}) + StreamingDataLoader(batch {BATCH}, "
                        f"{WORKERS} workers, persistent_workers={persistent})",
                        r,
                    )
                )
            r = run("rico_loader", db=s2db, epochs=ep, shuffle=shuffle)
            stream[(shuffle, "rico")] = r
            stream_rows.append(
                row(
                    "rico",
                    f"rico.torch.Loader, shuffle {'on' if shuffle else 'off'}",
                    f"batch {BATCH}, {WORKERS} threads, shuffle={shuffle}",
                    r,
                )
            )
        rate = lambda key: stream[key]["samples_per_second"]  # noqa: E731
        groups.append(
            {
                "id": "litdata_stream",
                "title": f"LitData streaming vs rico.torch.Loader: 12 S2 bands at {SIZE}x{SIZE} float32, batch {BATCH}",
                "unit": "samples/s",
                "unit_key": "samples_per_second",
                "rows": stream_rows,
                "ratios": {
                    "shuffle_off_defaults": rate((False, "rico")) / rate((False, False)),
                    "shuffle_off_best": rate((False, "rico")) / rate((False, True)),
                    "shuffle_on_defaults": rate((True, "rico")) / rate((True, False)),
                    "shuffle_on_best": rate((True, "rico")) / rate((True, True)),
                },
            }
        )

        log("TorchGeo: BigEarthNetV2 in a DataLoader ...")
        tg = run(
            "torchgeo_loader", epochs=min(ep, slow), persistent=False, limit=args.torchgeo_rows
        )
        tg_best = run(
            "torchgeo_loader", epochs=min(ep, slow), persistent=True, limit=args.torchgeo_rows
        )
        rico_ben = run("rico_ben_loader", db=db, epochs=ep)
        groups.append(
            {
                "id": "torchgeo",
                "title": f"TorchGeo BigEarthNetV2 vs rico.BigEarthNet: S2 + S1 (14 bands) at {SIZE}x{SIZE}, bilinear, reference map, labels",
                "unit": "samples/s",
                "unit_key": "samples_per_second",
                "rows": [
                    row(
                        "torchgeo",
                        "TorchGeo BigEarthNetV2, defaults",
                        f"DataLoader(batch {BATCH}, {WORKERS} workers, shuffle), bands='all', "
                        f"the split's first {tg['samples']} rows",
                        tg,
                    ),
                    row(
                        "torchgeo",
                        "TorchGeo BigEarthNetV2, persistent workers",
                        f"DataLoader(batch {BATCH}, {WORKERS} persistent workers, shuffle), "
                        f"the split's first {tg_best['samples']} rows",
                        tg_best,
                    ),
                    row(
                        "rico",
                        "rico BigEarthNet.loader, masks",
                        f"batch {BATCH}, {WORKERS} threads, shuffle, bands='ALL', bilinear, masks, "
                        f"the whole split ({rico_ben['samples']} rows)",
                        rico_ben,
                    ),
                ],
                "ratios": {
                    "defaults": rico_ben["samples_per_second"] / tg["samples_per_second"],
                    "best": rico_ben["samples_per_second"] / tg_best["samples_per_second"],
                },
            }
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report = {
        "stamp": stamp.stamp(
            "python benches/peers.py " + " ".join(argv), work=args.work, packages=PACKAGES
        ),
        "scope": {
            "patches": args.patches,
            "records": "real size: S2 bands 120x120 / 60x60 / 20x20 uint16, S1 120x120 float32",
            "page_cache": "warm",
            "workers_or_threads": WORKERS,
            "batch": BATCH,
            "epochs": args.epochs,
            "repeat": args.repeat,
            "slow_repeat": args.slow_repeat,
        },
        "groups": groups,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peers.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    args.chart.parent.mkdir(parents=True, exist_ok=True)
    machine = report["stamp"]["machine"]
    chart(
        groups,
        args.chart,
        f"rico vs the real packages: {args.patches}-patch BigEarthNet-shaped tree, "
        f"{machine['cores']} cores, page cache warm",
    )
    log(f"wrote {args.out / 'peers.json'} and {args.chart}")
    return 0


def flags(tree: Path) -> list[str]:
    from support.bigearthnet import flags as tree_flags

    return tree_flags(tree)


if __name__ == "__main__":
    sys.exit(main())
