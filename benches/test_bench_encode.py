"""Encode records: a whole conversion of a 1-patch tree (3 records: S1, S2, reference map).

Walk, decode, serialise, one LMDB transaction and the final fsync: the fixed cost of a run
and the cost of a patch, against the reference-style path for the same patch (rasterio reads
and ``safetensors.numpy.save``, no database).
"""

from __future__ import annotations

import itertools
import shutil

import baselines
import pytest
import rico
from support.bigearthnet import sources as bigearthnet_sources


@pytest.mark.benchmark(group="encode one patch")
def test_rico_convert_one_patch(benchmark, one_patch_tree, tmp_path):
    sources = bigearthnet_sources(one_patch_tree)
    counter = itertools.count()

    def fresh_target():
        target = tmp_path / f"db{next(counter)}"
        return (target,), {}

    def convert(target):
        summary = rico.convert("bigearthnet", target, threads=1, progress=False, **sources)
        shutil.rmtree(target)
        return summary

    summary = benchmark.pedantic(convert, setup=fresh_target, rounds=30, warmup_rounds=2)
    assert summary.records == 3


@pytest.mark.benchmark(group="encode one patch")
def test_reference_encode_one_patch(benchmark, one_patch_tree):
    patches = baselines.find_patches(one_patch_tree)
    assert len(patches) == 3

    def encode():
        return [baselines.encode_patch(p) for p in patches]

    records = benchmark(encode)
    assert len(records) == 3
