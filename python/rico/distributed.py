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
from typing import Any, Optional

from . import _rico

# The names of the files and folders of a sharded dataset, as the engine writes them.
MANIFEST = _rico.MANIFEST
SHARD_MARKER = _rico.SHARD_MARKER


def shard_dir(target: Path, index: int) -> Path:
    """The directory of shard ``index``."""
    return target / _rico.shard_name(index)


def _convert_shard(
    index: int,
    dataset: str,
    target: str,
    shards: int,
    sources: dict,
    params: dict,
    threads: Optional[int],
    skip_invalid: bool,
    fetch: Optional[dict] = None,
) -> dict:
    """One Dask task: shard ``index`` of ``shards``, from the plan the client wrote into the
    shard's directory; resumable (a rerun after a lost worker finishes what the first attempt
    committed)."""
    from rico import _rico as native

    return dict(
        native.convert(
            dataset,
            target,
            sources,
            threads=threads,
            progress=False,
            resume=True,
            skip_invalid=skip_invalid,
            params=params,
            shards=shards,
            shard_index=index,
            **(fetch or {}),
        )
    )


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
    client: Any,
    dataset: str,
    target_dir: str,
    shards: int,
    sources: dict,
    params: dict,
    threads: Optional[int] = None,
    progress: Optional[bool] = None,
    resume: bool = False,
    skip_invalid: bool = False,
    fetch: Optional[dict] = None,
) -> dict:
    """Runs one Dask task per shard and writes the manifest; returns the summary as a dict."""
    target = Path(target_dir)
    start = time.time()
    # Checks the target and the sources on the client, walks them once and writes each shard's
    # part of the plan (a resume reuses the plan, and refuses another number of shards).
    total = _rico.plan_shards(
        dataset,
        target_dir,
        sources,
        params=params,
        resume=resume,
        shards=shards,
        skip_invalid=skip_invalid,
        **(fetch or {}),
    )
    target.mkdir(parents=True, exist_ok=True)
    todo = [
        i for i in range(shards) if not (resume and (shard_dir(target, i) / SHARD_MARKER).is_file())
    ]
    futures = client.map(
        _convert_shard,
        todo,
        dataset=dataset,
        target=os.fspath(target),
        shards=shards,
        sources=sources,
        params=params,
        threads=threads,
        skip_invalid=skip_invalid,
        fetch=fetch,
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
