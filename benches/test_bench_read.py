"""Reading hot paths: one record (``ds[key]``) and one batch (``ds.batch``), against the
py-lmdb + safetensors and ConfigILM-style baselines, page cache warm."""

from __future__ import annotations

import baselines
import numpy as np
import pytest
import rico
from safetensors.numpy import load
from support.bands import S2_BANDS

BATCH = 32


@pytest.fixture(scope="module")
def ds(database):
    with rico.open(database) as ds:
        yield ds


@pytest.mark.benchmark(group="one S2 record (12 bands)")
def test_rico_getitem(benchmark, ds, s2_keys):
    key = s2_keys[len(s2_keys) // 2].decode()
    record = benchmark(ds.__getitem__, key)
    assert len(record) == 12


@pytest.mark.benchmark(group="one S2 record (12 bands)")
def test_lmdb_safetensors_load(benchmark, database, s2_keys):
    key = s2_keys[len(s2_keys) // 2]
    env = baselines.open_reference_env(database)
    with env.begin(buffers=False) as txn:
        record = benchmark(lambda: load(txn.get(key)))
    env.close()
    assert len(record) == 12


@pytest.mark.benchmark(group="batch of 32: 12 S2 bands at 120x120 float32")
def test_rico_batch(benchmark, ds, s2_keys):
    keys = s2_keys[:BATCH]
    x = benchmark(ds.batch, keys, S2_BANDS, size=120, threads=1)
    assert x.shape == (BATCH, 12, 120, 120)


@pytest.mark.benchmark(group="batch of 32: 12 S2 bands at 120x120 float32")
def test_configilm_batch(benchmark, ds, database, s2_keys):
    keys = s2_keys[:BATCH]
    x = benchmark(lambda: next(baselines.configilm_batches(database, [keys], S2_BANDS, 120)))
    assert np.array_equal(x, ds.batch(keys, S2_BANDS, size=120, threads=1))
