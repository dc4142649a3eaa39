"""rico's JPEG and PNG decoders against Pillow (libjpeg-turbo): every pixel equal.

rico decodes JPEG with libjpeg-turbo's own arithmetic (accurate integer IDCT, fancy
upsampling, its YCbCr tables), so the comparison is exact, not within a tolerance.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rico
from PIL import Image
from support.jpeg_writer import write_jpeg


def pillow_bands(path: Path) -> np.ndarray:
    """Pillow's decode, bands first: (bands, rows, cols)."""
    with Image.open(path) as img:
        array = np.asarray(img)
    return array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)


def assert_same_as_pillow(path: Path) -> None:
    got = rico.read_raster(path)
    want = pillow_bands(path)
    assert got.dtype == want.dtype and got.shape == want.shape, (path, got.shape, want.shape)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() == 0, (
        f"{path}: {np.count_nonzero(diff)} samples differ, by up to {diff.max()}"
    )


def test_eurosat_rgb_samples_equal_pillow(samples):
    files = sorted((samples / "EuroSAT_RGB").rglob("*.jpg"))
    assert len(files) == 2
    for path in files:
        assert_same_as_pillow(path)
        assert rico.read_raster(path).shape == (3, 64, 64)


def texture(h: int, w: int, seed: int) -> np.ndarray:
    """Smooth gradients plus noise, so that every DCT coefficient and the chroma matter."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack(
        [(x * 3 + y) % 256, (y * 2) % 256, 128 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)], -1
    )
    return np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("quality", [10, 50, 75, 95, 100])
@pytest.mark.parametrize("subsampling", ["4:4:4", "4:2:2", "4:2:0"])
@pytest.mark.parametrize("size", [(64, 64), (37, 53), (256, 256), (1, 17), (9, 2)])
def test_pillow_written_jpegs_decode_exactly(tmp_path, quality, subsampling, size):
    path = tmp_path / "img.jpg"
    Image.fromarray(texture(*size, seed=quality)).save(
        path, quality=quality, subsampling=subsampling
    )
    assert_same_as_pillow(path)


@pytest.mark.parametrize(
    "options",
    [
        {"progressive": True},
        {"progressive": True, "subsampling": "4:4:4", "quality": 97},
        {"progressive": True, "subsampling": "4:2:2", "optimize": True},
        {"optimize": True},
        {"restart_marker_blocks": 1},
        {"restart_marker_blocks": 3, "progressive": True},
        {"restart_marker_rows": 1, "subsampling": "4:2:2"},
    ],
)
def test_progressive_optimized_and_restart_jpegs_decode_exactly(tmp_path, options):
    path = tmp_path / "img.jpg"
    for size in [(70, 90), (33, 17)]:
        Image.fromarray(texture(*size, seed=len(options))).save(path, **{"quality": 85, **options})
        assert_same_as_pillow(path)


def test_grey_jpeg_is_one_band(tmp_path):
    path = tmp_path / "grey.jpg"
    for progressive in (False, True):
        Image.fromarray(texture(45, 61, 3)[..., 0]).save(path, quality=80, progressive=progressive)
        assert rico.read_raster(path).shape == (1, 45, 61)
        assert_same_as_pillow(path)


# Sampling factors Pillow cannot write (cameras and other encoders do): (h, v) of Y, Cb, Cr.
EXOTIC = [
    [(1, 2), (1, 1), (1, 1)],  # 4:4:0
    [(4, 1), (1, 1), (1, 1)],  # 4:1:1
    [(2, 2), (1, 2), (1, 2)],
    [(2, 2), (2, 1), (2, 1)],
    [(4, 2), (1, 1), (1, 1)],
    [(1, 4), (1, 1), (1, 1)],
    [(2, 1), (2, 1), (1, 1)],
    [(1, 2), (1, 1), (1, 2)],
    [(3, 1), (1, 1), (1, 1)],
]


@pytest.mark.parametrize("sampling", EXOTIC, ids=lambda s: "-".join(f"{h}x{v}" for h, v in s))
def test_other_sampling_factors_and_restart_intervals_decode_exactly(tmp_path, sampling):
    path = tmp_path / "img.jpg"
    for size, restart in [((37, 61), 0), ((64, 64), 2), ((5, 3), 0), ((100, 33), 5), ((1, 9), 1)]:
        path.write_bytes(
            write_jpeg(texture(*size, seed=restart), sampling, quant=6, restart=restart)
        )
        assert_same_as_pillow(path)


def test_more_than_ten_blocks_per_mcu_is_refused_like_libjpeg(tmp_path):
    path = tmp_path / "img.jpg"
    path.write_bytes(write_jpeg(texture(16, 16, 0), [(4, 4), (1, 1), (1, 1)]))
    with pytest.raises(OSError):
        pillow_bands(path)
    with pytest.raises(rico.DataError, match="10 blocks per MCU"):
        rico.read_raster(path)


def test_truncated_jpeg_is_an_error_naming_the_file(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(texture(64, 64, 1)).save(buf, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(rico.DataError, match="cut.jpg: JPEG: the entropy-coded data ends early"):
        rico.read_raster(path)


def test_cmyk_jpeg_is_unsupported_with_a_clear_message(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(texture(16, 16, 2)).convert("CMYK").save(path)
    with pytest.raises(rico.DataError, match="4-component JPEG"):
        rico.read_raster(path)


# --- PNG ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "I;16", "1"])
def test_png_modes_equal_pillow(tmp_path, mode):
    rgb = texture(23, 31, 4)
    if mode == "I;16":
        img = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257 + 3)
    elif mode == "P":
        img = Image.fromarray(rgb).quantize(37)
    elif mode == "RGBA":
        img = Image.fromarray(np.dstack([rgb, rgb[..., 1]]))
    else:
        img = Image.fromarray(rgb).convert(mode)
    path = tmp_path / "img.png"
    img.save(path)
    got = rico.read_raster(path)
    want = pillow_bands(path)
    if mode == "1":
        want = want.astype(np.uint8) * 255  # Pillow's bool mode "1" is 0/255 in its "L" form
    assert got.dtype == want.dtype and got.shape == want.shape and (got == want).all(), mode


def test_sixteen_bit_rgb_png_keeps_16_bits_like_rasterio(tmp_path):
    path = tmp_path / "rgb16.png"
    data = np.random.default_rng(5).integers(0, 65535, (3, 19, 7), dtype=np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(
            path, "w", driver="PNG", count=3, height=19, width=7, dtype="uint16"
        ) as dst:
            dst.write(data)
        with rasterio.open(path) as src:
            want = src.read()
    got = rico.read_raster(path)
    assert got.dtype == np.uint16 and (got == want).all() and (got == data).all()


def test_not_an_image_is_a_data_error(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello")
    with pytest.raises(rico.DataError, match="not a TIFF, JPEG or PNG"):
        rico.read_raster(path)
