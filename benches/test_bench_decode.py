"""Decode one band: a 120x120 uint16 Sentinel-2 GeoTIFF (uncompressed strips), rico vs rasterio."""

from __future__ import annotations

import numpy as np
import pytest
import rico


@pytest.fixture(scope="module")
def band_path(tree) -> str:
    return str(next(tree.glob("BigEarthNet-S2/*/*/*_B02.tif")))


@pytest.fixture(scope="module")
def map_path(tree) -> str:
    return str(next(tree.glob("Reference_Maps/*/*/*_reference_map.tif")))


@pytest.mark.benchmark(group="decode one band (120x120 uint16)")
def test_rico_read_raster(benchmark, band_path):
    out = benchmark(rico.read_raster, band_path)
    assert out.shape == (1, 120, 120) and out.dtype == np.uint16


@pytest.mark.benchmark(group="decode one band (120x120 uint16)")
def test_rasterio_read(benchmark, band_path):
    import rasterio

    def read():
        with rasterio.open(band_path) as src:
            return src.read()

    out = benchmark(read)
    assert np.array_equal(out, rico.read_raster(band_path))


@pytest.mark.benchmark(group="decode one reference map (deflate + predictor)")
def test_rico_read_raster_deflate(benchmark, map_path):
    out = benchmark(rico.read_raster, map_path)
    assert out.shape == (1, 120, 120)
