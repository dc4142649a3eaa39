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


# -- the real samples: one group per dataset, rico and rasterio side by side -----------------

import decode_compare  # noqa: E402


def _sample(pattern: str) -> str:
    matches = sorted(decode_compare.DEFAULT_SAMPLES.glob(pattern))
    if not matches:
        pytest.skip(f"no real sample matches {pattern} under {decode_compare.DEFAULT_SAMPLES}")
    return str(matches[0])


@pytest.mark.parametrize(
    "name,what,pattern", decode_compare.CASES, ids=[c[0] for c in decode_compare.CASES]
)
@pytest.mark.parametrize("reader", ["rico", "rasterio"])
def test_decode_real_sample(benchmark, reader, name, what, pattern):
    import rasterio

    path = _sample(pattern)
    benchmark.group = f"decode {name} ({what})"

    def rasterio_read():
        with rasterio.open(path) as src:
            return src.read()

    out = benchmark(lambda: rico.read_raster(path) if reader == "rico" else rasterio_read())
    assert out.tobytes() == rasterio_read().tobytes()
