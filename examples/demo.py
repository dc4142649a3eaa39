#!/usr/bin/env python3
"""`make demo`: build a small BigEarthNet-shaped tree, convert it with the `rico` binary, read a
record back.

    python examples/demo.py [OUT_DIR]
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import lmdb
import numpy as np
from safetensors.numpy import load

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
from make_dataset import make_dataset  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "demo-out")
    shutil.rmtree(out, ignore_errors=True)
    src = out / "BigEarthNet"
    files = make_dataset(src, patches=16)
    print(f"made a BigEarthNet-shaped tree: 16 patches, {files} GeoTIFFs under {src}")

    target = out / "BigEarthNet.lmdb"
    cmd = [
        str(ROOT / "target" / "release" / "rico"),
        "bigearthnet",
        "--bigearthnet-s1-dir",
        str(src / "BigEarthNet-S1"),
        "--bigearthnet-s2-dir",
        str(src / "BigEarthNet-S2"),
        "--bigearthnet-reference-maps-dir",
        str(src / "Reference_Maps"),
        "--target-dir",
        str(target),
    ]
    print("$", " ".join(cmd[:2]), "...", "--target-dir", target)
    subprocess.run(cmd, check=True)

    with lmdb.open(str(target), readonly=True, lock=False) as env, env.begin() as txn:
        print(f"{env.stat()['entries']} records in {target}")
        key, value = next(iter(txn.cursor()))
        record = load(bytes(value))
    print(f"first record: {key.decode()}")
    for band, array in record.items():
        print(f"  {band:5s} {str(array.dtype):8s} {array.shape}  mean {np.mean(array):9.2f}")

    import rico

    with rico.open(target) as ds:
        s2 = [k for k in ds.keys() if k.startswith("S2") and not k.endswith("_reference_map")]
        record = ds[s2[0]]
        print(f"rico.open: {len(ds)} records; {s2[0]}:")
        for band, array in record.items():
            print(
                f"  {band:5s} {str(array.dtype):8s} {array.shape}  (a read-only view, no copy: {not array.flags.owndata})"
            )
        x = ds.batch(s2[:8], ["B04", "B03", "B02", "B08", "B05", "B01"], size=120)
        print(f"ds.batch of 8 patches, 6 bands upsampled to 120x120: {x.shape} {x.dtype}")


if __name__ == "__main__":
    main()
