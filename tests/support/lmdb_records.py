"""Databases written and read record by record with py-lmdb: what the reference tool (rico-hdl)
writes, and what a test compares a conversion with."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Union

import lmdb
import numpy as np
from safetensors.numpy import save

Record = Union[Mapping[str, np.ndarray], bytes]


def write_records(
    path: Path, records: Mapping[Union[str, bytes], Record], map_size: int = 1 << 30
) -> Path:
    """Writes ``records`` into the LMDB database at ``path`` in one transaction, as the reference
    tool does: each value ``safetensors.numpy.save`` of its bands (band -> array), or bytes as
    they are; keys are str (UTF-8) or bytes. Records already there are replaced. Returns
    ``path``."""
    with lmdb.open(str(path), map_size=map_size) as env, env.begin(write=True) as txn:
        for key, value in records.items():
            txn.put(
                key.encode() if isinstance(key, str) else key,
                value if isinstance(value, bytes) else save(dict(value)),
            )
    return path


def read_lmdb(path: Path) -> dict[bytes, bytes]:
    """Every record of the LMDB database at ``path``, through the Python ``lmdb`` package."""
    with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
        return {bytes(k): bytes(v) for k, v in txn.cursor()}


def read_shards(target: Path) -> list[dict[bytes, bytes]]:
    """Every record of each shard of the sharded database at ``target``, in the manifest's
    order."""
    manifest = json.loads((target / "rico-manifest.json").read_text())
    return [read_lmdb(target / s["path"]) for s in manifest["shards"]]
