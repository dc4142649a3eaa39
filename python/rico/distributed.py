"""Sharded conversion on a Dask cluster.

The client walks the sources once and writes each shard's part of the plan into its directory
(``shard-NNNNN/rico-plan.jsonl``). Each shard is then one Dask task that runs the Rust engine
on a worker from its plan alone (no task walks the tree again) and writes an ordinary LMDB
directory ``shard-NNNNN/``; the client draws one progress bar (tqdm) over all shards and writes
``rico-manifest.json`` when every shard is complete. Paths must be visible to every worker and
to the client (a shared filesystem).

    from dask.distributed import Client
    import rico

    client = Client("tcp://scheduler:8786")
    rico.convert("ssl4eo-s12", "ssl4eo.lmdb", shards=64, client=client,
                 s2_l2a_dir="/shared/ssl4eo/s2a")
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from . import _rico

# The names of the files and folders of a sharded dataset, as the engine writes them.
MANIFEST = _rico.MANIFEST
SHARD_MARKER = _rico.SHARD_MARKER


def shard_dir(target: Path, index: int) -> Path:
    """The directory of shard ``index``."""
    return target / _rico.shard_name(index)


def _convert_shard(
    index: int, dataset: str, target: str, sources: dict, params: dict, options: dict
) -> dict:
    """One Dask task: shard ``index`` of ``options["shards"]``, from the plan the client wrote
    into the shard's directory; resumable (a rerun after a lost worker finishes what the first
    attempt committed)."""
    from rico import _rico as native

    task = {**options, "progress": False, "resume": True, "shard_index": index}
    return dict(native.convert(dataset, target, sources, params, **task))


def _records_written(target: Path, shards: int) -> int:
    total = 0
    for i in range(shards):
        d = shard_dir(target, i)
        if (d / "data.mdb").exists():
            try:
                total += len(_rico.Database(str(d)))
            except _rico.RicoError:
                pass  # created but not yet readable: counts as empty
    return total


def _follow(futures: list, target: Path, shards: int, total: int) -> None:
    """Draws the records written so far, over all shards, until every task is done."""
    from tqdm import tqdm

    with tqdm(total=total, unit="patch", file=sys.stderr, dynamic_ncols=True) as bar:
        while True:
            finished = all(f.done() for f in futures)
            bar.update(_records_written(target, shards) - bar.n)
            if finished:
                break
            time.sleep(0.5)


def convert_on_cluster(
    client: Any, dataset: str, target_dir: str, sources: dict, params: dict, options: dict
) -> dict:
    """Runs one Dask task per shard and writes the manifest; returns the summary as a dict.
    ``options``: the engine's keywords (:data:`rico._rico.CONVERT_OPTIONS`), ``shards`` among
    them."""
    target = Path(target_dir)
    shards: int = options["shards"]
    resume, threads, progress = (options.get(k) for k in ("resume", "threads", "progress"))
    start = time.time()
    # Checks the target and the sources on the client, walks them once and writes each shard's
    # part of the plan (a resume reuses the plan, and refuses another number of shards).
    total = _rico.plan_shards(dataset, target_dir, sources, params, **options)
    target.mkdir(parents=True, exist_ok=True)
    todo = [
        i for i in range(shards) if not (resume and (shard_dir(target, i) / SHARD_MARKER).is_file())
    ]
    futures = client.map(
        _convert_shard,
        todo,
        dataset=dataset,
        target=os.fspath(target),
        sources=sources,
        params=params,
        options=options,
        pure=False,
    )
    show = sys.stderr.isatty() if progress is None else progress
    if show:
        _follow(futures, target, shards, total)
    results = client.gather(futures)
    manifest = _rico.write_manifest(os.fspath(target), dataset, shards)
    summary = {
        k: 0
        for k in ("records", "already_present", "skipped", "files", "source_bytes", "record_bytes")
    }
    for r in results:
        for k in summary:
            summary[k] += r[k]
    summary["already_present"] = manifest["records"] - summary["records"]
    summary["seconds"] = time.time() - start
    summary["threads"] = threads or 0
    summary["labels_table"] = None
    summary["line"] = (
        f"rico: wrote {summary['records']} records in {shards} shards on the cluster "
        f"({summary['record_bytes'] / 1e6:.1f} MB) in {summary['seconds']:.2f} s"
    )
    return summary
