"""``rico.read_raster`` must return exactly what ``rasterio.open(path).read()`` returns.

Every check compares dtype, shape and raw bytes (so NaN payloads and -0.0 count), for:

* a deterministic pairwise-covering matrix of GeoTIFFs written by rasterio/GDAL across
  compression, predictor, tiling/striping, interleave, BigTIFF, byte order, dtype and band count;
* targeted layouts (sparse blocks with nodata, overviews, masks, COG, palette, large LZW, ...);
* the real dataset patches under ``tests/data/samples``;
* unsupported and corrupt files, which must raise ``rico.RicoError`` naming the file.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import rico
from conftest import SAMPLES
from rasterio.enums import Resampling
from rasterio.windows import Window

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


WIDTH, HEIGHT = 37, 23  # odd sizes: partial edge tiles and a partial last strip

DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"]


# --------------------------------------------------------------------------------------------
# helpers


def assert_same(path: Path) -> None:
    with rasterio.open(path) as src:
        expected = src.read()
    got = rico.read_raster(path)
    assert isinstance(got, np.ndarray)
    assert got.dtype == expected.dtype and got.shape == expected.shape, (
        got.dtype,
        got.shape,
        expected.shape,
    )
    assert got.tobytes() == expected.tobytes()
    # str paths work as well as os.PathLike
    assert rico.read_raster(str(path)).tobytes() == expected.tobytes()


def float_specials(dtype: np.dtype) -> np.ndarray:
    """NaNs with payloads (quiet, signalling, negative), infinities, signed zeros, denormals."""
    if dtype.itemsize == 4:
        bits = [
            0x7FC00000,
            0xFFC00000,
            0x7FC0DEAD,
            0x7F800001,
            0xFFBADBAD,
            0x7F800000,
            0xFF800000,
            0x80000000,
            0x00000000,
            0x00000001,
            0x807FFFFF,
            0x7F7FFFFF,
            0xFF7FFFFF,
        ]
        return np.array(bits, dtype="<u4").view("<f4").astype(dtype)
    bits = [
        0x7FF8000000000000,
        0xFFF8000000000000,
        0x7FF800000000DEAD,
        0x7FF0000000000001,
        0xFFF0BADBADBADBAD,
        0x7FF0000000000000,
        0xFFF0000000000000,
        0x8000000000000000,
        0x0000000000000000,
        0x0000000000000001,
        0x800FFFFFFFFFFFFF,
        0x7FEFFFFFFFFFFFFF,
    ]
    return np.array(bits, dtype="<u8").view("<f8").astype(dtype)


def sample_data(dtype: str, bands: int, height: int, width: int, seed: int) -> np.ndarray:
    """Full-range noise, smooth ramps (so predictors and LZW see structure), constant runs (so
    PackBits emits repeat runs) and, for floats, every kind of special value."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    shape = (bands, height, width)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        data = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
        ramp = np.add.outer(np.arange(height), np.arange(width)) * 3 + int(info.min) // 2
        data[:, 1::3, :] = np.clip(ramp[1::3, :], info.min, info.max).astype(dt)
        data[:, :, : width // 4] = dt.type(info.max)
    else:
        bits = np.dtype(f"<u{dt.itemsize}")
        data = rng.integers(0, np.iinfo(bits).max, size=shape, dtype=bits, endpoint=True).view(dt)
        ramp = np.add.outer(np.linspace(-1e3, 1e3, height), np.linspace(0, 1, width)).astype(dt)
        data[:, 1::3, :] = ramp[1::3, :]
        data[:, :, : width // 4] = dt.type(0.5)
        specials = float_specials(dt)
        flat = data.reshape(bands, -1)
        n = min(len(specials), flat.shape[1])
        flat[:, :n] = specials[:n]
    return np.ascontiguousarray(data)


def profile_of(data: np.ndarray, **options) -> dict:
    """The GeoTIFF profile of ``data`` (bands, rows, columns), with the ``options`` not None."""
    bands, height, width = data.shape
    profile = dict(driver="GTiff", width=width, height=height, count=bands, dtype=data.dtype)
    profile.update({k: v for k, v in options.items() if v is not None})
    return profile


def write(path: Path, data: np.ndarray, **options) -> Path:
    with rasterio.open(path, "w", **profile_of(data, **options)) as dst:
        dst.write(data)
    return path


# --------------------------------------------------------------------------------------------
# generated matrix: every pair of axis values appears in at least one file

AXES = {
    "dtype": DTYPES,
    "compress": [None, "deflate", "lzw", "zstd", "packbits"],
    "predictor": [1, 2, 3],
    "layout": ["tiled16", "tiled256", "strip5", "strip"],
    "interleave": ["pixel", "band"],
    "bigtiff": ["NO", "YES"],
    "endianness": ["LITTLE", "BIG"],
    "bands": [1, 3, 13],
}

LAYOUTS = {
    "tiled16": dict(tiled=True, blockxsize=16, blockysize=16),
    "tiled256": dict(tiled=True, blockxsize=256, blockysize=256),  # tiles larger than the image
    "strip5": dict(tiled=False, blockysize=5),
    "strip": dict(tiled=False),  # GDAL's default rows per strip
}


def valid(case: dict) -> bool:
    """Predictor 3 is for floats only; GDAL writes a predictor only for deflate/LZW/zstd."""
    predictor = case.get("predictor", 1)
    if predictor == 3 and "dtype" in case and not case["dtype"].startswith("float"):
        return False
    if predictor != 1 and "compress" in case and case["compress"] not in ("deflate", "lzw", "zstd"):
        return False
    return True


def pairwise_cases(seed: int = 20240607) -> list[dict]:
    """Greedy all-pairs covering array, deterministic for a given seed."""
    rng = random.Random(seed)
    names = list(AXES)
    uncovered = {
        (a, va, b, vb)
        for a, b in itertools.combinations(names, 2)
        for va in AXES[a]
        for vb in AXES[b]
        if valid({a: va, b: vb})
    }
    cases = []
    while uncovered:
        pool = sorted(uncovered, key=repr)
        best, best_gain = None, -1
        for _ in range(40):
            a, va, b, vb = pool[rng.randrange(len(pool))]
            case = {a: va, b: vb}
            for name in names:
                if name not in case:
                    case[name] = rng.choice([v for v in AXES[name] if valid({**case, name: v})])
            gain = sum(case[x] == vx and case[y] == vy for x, vx, y, vy in uncovered)
            if gain > best_gain:
                best, best_gain = case, gain
        cases.append(best)
        uncovered = {
            (x, vx, y, vy) for x, vx, y, vy in uncovered if not (best[x] == vx and best[y] == vy)
        }
    return cases


CASES = pairwise_cases()


def case_id(case: dict) -> str:
    return "{dtype}-{compress}-pred{predictor}-{layout}-{interleave}-bigtiff{bigtiff}-{endianness}-{bands}b".format(
        **case
    )


def test_matrix_covers_every_axis_value_several_times():
    for name, values in AXES.items():
        for value in values:
            assert sum(c[name] == value for c in CASES) >= 3, (name, value)


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_matrix(tmp_path, case):
    data = sample_data(case["dtype"], case["bands"], HEIGHT, WIDTH, seed=CASES.index(case))
    path = write(
        tmp_path / "matrix.tif",
        data,
        compress=case["compress"],
        predictor=case["predictor"] if case["predictor"] != 1 else None,
        interleave=case["interleave"],
        BIGTIFF=case["bigtiff"],
        ENDIANNESS=case["endianness"],
        **LAYOUTS[case["layout"]],
    )
    # The creation options really took effect (else the matrix would test less than it says).
    head = path.read_bytes()[:4]
    assert head[:2] == (b"MM" if case["endianness"] == "BIG" else b"II")
    assert head[2:] in ((b"\0+", b"+\0") if case["bigtiff"] == "YES" else (b"\0*", b"*\0"))
    with rasterio.open(path) as src:
        structure = src.tags(ns="IMAGE_STRUCTURE")
        assert structure.get("COMPRESSION", "NONE").lower() == str(case["compress"] or "none")
        assert structure.get("PREDICTOR", "1") == str(case["predictor"])
        assert src.profile.get("tiled", False) == case["layout"].startswith("tiled")
    assert_same(path)


# --------------------------------------------------------------------------------------------
# targeted layouts


@pytest.mark.parametrize(
    "dtype,options",
    [
        ("uint16", dict(compress="lzw", predictor=2)),  # big LZW stream: many table resets
        (
            "uint8",
            dict(compress="lzw", tiled=True, blockxsize=256, blockysize=256, ENDIANNESS="BIG"),
        ),
        ("int16", dict(compress="lzw", predictor=2, ENDIANNESS="BIG", interleave="pixel")),
        (
            "float64",
            dict(
                compress="zstd",
                predictor=3,
                ENDIANNESS="BIG",
                tiled=True,
                blockxsize=64,
                blockysize=32,
            ),
        ),
        ("float32", dict(compress="deflate", predictor=3, interleave="band", blockysize=7)),
        ("uint32", dict(compress="deflate", predictor=2, ZLEVEL=1)),
        (
            "int32",
            dict(
                compress="zstd",
                predictor=2,
                ZSTD_LEVEL=22,
                tiled=True,
                blockxsize=128,
                blockysize=128,
            ),
        ),
        ("float32", dict(compress="deflate", predictor=2, ZLEVEL=9)),
        ("uint16", dict(compress="packbits", tiled=True, blockxsize=32, blockysize=48)),
        ("int8", dict(compress="deflate", predictor=2)),
        ("float64", dict(compress=None, ENDIANNESS="BIG", BIGTIFF="YES", interleave="band")),
    ],
)
def test_larger_images(tmp_path, dtype, options):
    bands = 3 if options.get("interleave") else 1
    data = sample_data(dtype, bands, 301, 417, seed=7)
    assert_same(write(tmp_path / "large.tif", data, **options))


@pytest.mark.parametrize(
    "shape,options",
    [
        ((1, 1, 1), dict()),
        ((2, 1, 1), dict(compress="deflate", tiled=True, blockxsize=16, blockysize=16)),
        ((1, 1, 999), dict(compress="lzw", predictor=2)),
        ((3, 999, 1), dict(compress="zstd", interleave="band", blockysize=10)),
        (
            (2, 32, 48),
            dict(compress="deflate", tiled=True, blockxsize=16, blockysize=16),
        ),  # exact tiling
        ((1, 20, 20), dict(compress="lzw", tiled=True, blockxsize=512, blockysize=512)),
    ],
)
def test_edge_shapes(tmp_path, shape, options):
    data = sample_data("uint16", *shape, seed=3)
    assert_same(write(tmp_path / "edge.tif", data, **options))


def test_many_bands_pixel_and_band_interleaved(tmp_path):
    data = sample_data("int16", 224, 16, 20, seed=11)
    assert_same(write(tmp_path / "pix.tif", data, compress="deflate", interleave="pixel"))
    assert_same(
        write(tmp_path / "band.tif", data, compress="deflate", interleave="band", predictor=2)
    )


# --------------------------------------------------------------------------------------------
# 64-bit integers and half floats, which rasterio reads (as int64/uint64 and float32)


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(compress="deflate", predictor=2, tiled=True, blockxsize=16, blockysize=16),
        dict(compress="lzw", predictor=2, ENDIANNESS="BIG", interleave="band"),
        dict(compress="zstd", BIGTIFF="YES", blockysize=5),
        dict(compress="packbits", ENDIANNESS="BIG", tiled=True, blockxsize=16, blockysize=16),
    ],
)
def test_64_bit_integers(tmp_path, dtype, options):
    data = sample_data(dtype, 3, HEIGHT, WIDTH, seed=13)
    path = write(tmp_path / "int64.tif", data, **options)
    with rasterio.open(path) as src:
        assert src.dtypes[0] == dtype
    assert_same(path)


@pytest.mark.parametrize("dtype", ["int64", "uint64"])
def test_64_bit_integer_sparse_blocks_read_as_nodata(tmp_path, dtype):
    data = sample_data(dtype, 1, HEIGHT, WIDTH, seed=17)
    path = tmp_path / "sparse64.tif"
    profile = dict(driver="GTiff", width=WIDTH, height=HEIGHT, count=1, dtype=dtype)
    profile.update(nodata=77, sparse_ok=True, tiled=True, blockxsize=16, blockysize=16)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[:, :8, :16], window=Window(0, 0, 16, 8))
    assert_same(path)


def half_data(bands: int, height: int, width: int, seed: int) -> np.ndarray:
    """Every class of half float (NaN payloads, infinities, subnormals, signed zeros), noise
    and ramps, as float32 values that a half holds exactly."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 0xFFFF, size=(bands, height, width), dtype=np.uint16, endpoint=True)
    bits[:, 1::3, :] = np.arange(width, dtype=np.uint16) * 37 + 0x3C00
    specials = [0x7E00, 0xFE01, 0x7C01, 0x7C00, 0xFC00, 0x8000, 0x0000, 0x0001, 0x83FF, 0x7BFF]
    bits.reshape(bands, -1)[:, : len(specials)] = specials
    return bits.view(np.float16).astype(np.float32)


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(compress="deflate", predictor=2, tiled=True, blockxsize=16, blockysize=16),
        dict(compress="lzw", predictor=3, interleave="band"),
        dict(compress="zstd", predictor=3, ENDIANNESS="BIG", blockysize=5),
        dict(ENDIANNESS="BIG", BIGTIFF="YES"),
    ],
)
def test_half_floats_read_as_float32_like_rasterio(tmp_path, options):
    """GDAL writes 16-bit floats for float32 data with NBITS=16; rasterio reads them back as
    float32, every half value exactly."""
    data = half_data(2, HEIGHT, WIDTH, seed=19)
    path = write(tmp_path / "half.tif", data, NBITS=16, **options)
    with rasterio.open(path) as src:
        assert src.dtypes[0] == "float32" and src.tags(1, "IMAGE_STRUCTURE")["NBITS"] == "16"
        assert src.read().tobytes() == data.tobytes()
    assert_same(path)


def test_half_float_sparse_blocks_read_as_float32_nodata(tmp_path):
    data = half_data(1, HEIGHT, WIDTH, seed=23)
    path = tmp_path / "sparse_half.tif"
    profile = dict(driver="GTiff", width=WIDTH, height=HEIGHT, count=1, dtype="float32")
    # -9999 is not a half value: GDAL fills sparse blocks with the float32 nodata.
    profile.update(nodata=-9999, sparse_ok=True, NBITS=16, tiled=True, blockxsize=16, blockysize=16)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[:, :8, :16], window=Window(0, 0, 16, 8))
    assert_same(path)


# --------------------------------------------------------------------------------------------
# images large enough to be decoded in parallel (rico_raster::tiff::PARALLEL_MIN_BYTES)


@pytest.mark.parametrize(
    "dtype,bands,options",
    [
        ("uint16", 1, dict(compress="lzw", tiled=True, blockxsize=256, blockysize=256)),
        ("int16", 20, dict(compress="deflate", interleave="band", blockysize=7)),
        ("uint16", 12, dict(compress="lzw", predictor=2, tiled=True, blockxsize=64, blockysize=64)),
        ("float32", 2, dict(compress="zstd", predictor=3, ENDIANNESS="BIG", blockysize=16)),
        ("uint8", 3, dict(compress="deflate", predictor=2, ENDIANNESS="BIG", interleave="band")),
    ],
)
def test_large_images_decoded_in_parallel(tmp_path, dtype, bands, options):
    data = sample_data(dtype, bands, 900, 700, seed=29)
    assert data.nbytes >= 1 << 20
    assert_same(write(tmp_path / "big.tif", data, **options))


def test_large_sparse_image_decoded_in_parallel(tmp_path):
    data = sample_data("uint16", 1, 1100, 1000, seed=31)
    path = tmp_path / "big_sparse.tif"
    profile = dict(driver="GTiff", width=1000, height=1100, count=1, dtype="uint16")
    profile.update(nodata=3, sparse_ok=True, compress="lzw", tiled=True)
    profile.update(blockxsize=128, blockysize=128)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[:, :300, :500], window=Window(0, 0, 500, 300))
    assert_same(path)


def sparse_claim(width: int, height: int) -> bytes:
    """A TIFF of one uint8 tile of width x height pixels, never written (offset and byte count
    0): a few bytes claiming width x height bytes of nodata."""
    import struct

    tags = [
        (256, 4, width),
        (257, 4, height),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (277, 3, 1),
        (284, 3, 1),
        (322, 4, width),
        (323, 4, height),
        (324, 4, 0),
        (325, 4, 0),
    ]
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        ifd += struct.pack("<HHI", tag, kind, 1)
        ifd += struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
    return b"II*\0" + struct.pack("<I", 10) + b"\0\0" + ifd + struct.pack("<I", 0)


def test_tiny_file_claiming_a_gigabyte_of_sparse_tiles_is_refused(tmp_path):
    """148 bytes claiming a 32768 x 32768 image of empty tiles: 1 GiB, over the limit of
    max(64 MiB, 4096 x file size); the error names the file and the option that raises it."""
    path = tmp_path / "sparse_claim.tif"
    path.write_bytes(sparse_claim(32768, 32768))
    assert path.stat().st_size == 148
    with rasterio.open(path) as src:  # GDAL does read it (as zeros)
        assert (src.width, src.height) == (32768, 32768)
    with pytest.raises(rico.RicoError) as excinfo:
        rico.read_raster(path)
    message = str(excinfo.value)
    assert path.name in message and "max_decoded_bytes" in message, message
    # A sparse image within the floor still reads, as GDAL reads it.
    small = tmp_path / "sparse_small.tif"
    small.write_bytes(sparse_claim(4096, 2048))
    assert_same(small)


@pytest.mark.parametrize(
    "dtype,nodata,options",
    [
        ("uint16", 7, dict(tiled=True, blockxsize=16, blockysize=16, compress="deflate")),
        (
            "float32",
            float("nan"),
            dict(tiled=True, blockxsize=16, blockysize=16, interleave="band"),
        ),
        (
            "int16",
            -9999,
            dict(tiled=True, blockxsize=16, blockysize=16, interleave="band", compress="lzw"),
        ),
        ("float64", -1.5, dict(blockysize=4, compress="zstd")),
        ("uint8", None, dict(tiled=True, blockxsize=16, blockysize=16)),
    ],
)
def test_sparse_blocks_read_as_nodata(tmp_path, dtype, nodata, options):
    data = sample_data(dtype, 2, HEIGHT, WIDTH, seed=5)
    path = tmp_path / "sparse.tif"
    profile = profile_of(data, nodata=nodata, sparse_ok=True, **options)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[:, :8, :16], window=Window(0, 0, 16, 8))  # only the first block(s)
    assert_same(path)


def test_overviews_and_internal_mask_are_ignored(tmp_path):
    data = sample_data("uint16", 3, 90, 70, seed=9)
    path = write(
        tmp_path / "ovr.tif", data, compress="deflate", tiled=True, blockxsize=16, blockysize=16
    )
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(path, "r+") as dst:
            dst.build_overviews([2, 4], Resampling.nearest)
            dst.write_mask(np.where(data[0] > 1000, 255, 0).astype("uint8"))
    with rasterio.open(path) as src:
        assert src.overviews(1) == [2, 4]
    assert_same(path)


def test_cloud_optimized_geotiff(tmp_path):
    data = sample_data("float32", 2, 150, 140, seed=13)
    src = write(tmp_path / "plain.tif", data)
    cog = tmp_path / "cog.tif"
    rasterio.shutil.copy(src, cog, driver="COG", compress="deflate", predictor=3, blocksize=32)
    assert_same(cog)


@pytest.mark.parametrize("photometric", ["RGB", "MINISWHITE", "palette"])
def test_photometric_variants_read_raw_samples(tmp_path, photometric):
    bands = 3 if photometric == "RGB" else 1
    data = sample_data("uint8", bands, HEIGHT, WIDTH, seed=17)
    path = tmp_path / "photo.tif"
    with rasterio.open(path, "w", **profile_of(data, photometric=photometric)) as dst:
        dst.write(data)
        if photometric == "palette":
            dst.write_colormap(1, {i: (i, 255 - i, i // 2, 255) for i in range(256)})
    assert_same(path)


# --------------------------------------------------------------------------------------------
# real dataset patches

# The samples are part of the repository: none found fails (assert_same(None)), never skips.
SAMPLE_FILES = sorted(p for p in SAMPLES.rglob("*") if p.suffix.lower() in (".tif", ".tiff"))


@pytest.mark.parametrize(
    "path",
    SAMPLE_FILES or [None],
    ids=[str(p.relative_to(SAMPLES)) for p in SAMPLE_FILES] or ["none"],
)
def test_real_samples(path):
    assert_same(path)


# --------------------------------------------------------------------------------------------
# unsupported and corrupt files


@pytest.mark.parametrize(
    "name,dtype,bands,options,needle",
    [
        ("jpeg", "uint8", 3, dict(compress="jpeg"), "JPEG"),
        ("ycbcr_jpeg", "uint8", 3, dict(compress="jpeg", photometric="YCBCR"), "JPEG"),
        ("lerc", "float32", 1, dict(compress="lerc"), "LERC"),
        ("lzma", "uint16", 1, dict(compress="lzma"), "LZMA"),
        ("webp", "uint8", 3, dict(compress="webp"), "WebP"),
        ("nbits4", "uint8", 1, dict(nbits=4), "4 bits"),
        ("nbits12", "uint16", 2, dict(nbits=12), "12 bits"),
        ("cmyk", "uint8", 4, dict(photometric="CMYK"), "CMYK"),
        ("complex", "complex64", 1, dict(), "complex"),
    ],
)
def test_unsupported_features_raise_naming_file_and_feature(
    tmp_path, name, dtype, bands, options, needle
):
    path = tmp_path / f"unsupported_{name}.tif"
    data = np.arange(bands * HEIGHT * WIDTH).reshape(bands, HEIGHT, WIDTH) % 13
    try:
        write(path, data.astype(dtype), **options)
    except Exception as e:  # this GDAL build lacks the codec
        pytest.skip(f"rasterio cannot write {name}: {e}")
    with pytest.raises(rico.RicoError) as excinfo:
        rico.read_raster(path)
    message = str(excinfo.value)
    assert path.name in message and needle in message, message


def expect_error_naming(path: Path) -> None:
    with pytest.raises(rico.RicoError) as excinfo:
        rico.read_raster(path)
    assert path.name in str(excinfo.value), str(excinfo.value)


def test_not_a_tiff(tmp_path):
    path = tmp_path / "not_a_raster.tif"
    path.write_bytes(b"this is not a raster\n" * 20)
    expect_error_naming(path)
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    expect_error_naming(empty)


def test_missing_file(tmp_path):
    expect_error_naming(tmp_path / "does_not_exist.tif")


def test_truncated_generated_tiff(tmp_path):
    data = sample_data("uint16", 3, 64, 64, seed=1)
    full = write(tmp_path / "full.tif", data, compress="deflate", predictor=2).read_bytes()
    for fraction in (2, 3, 10):
        path = tmp_path / f"truncated_{fraction}.tif"
        path.write_bytes(full[: len(full) // fraction])
        expect_error_naming(path)


def test_truncated_real_tiff(tmp_path):
    source = max(SAMPLE_FILES, key=lambda p: p.stat().st_size)
    path = tmp_path / f"half_{source.name}"
    full = source.read_bytes()
    path.write_bytes(full[: len(full) // 2])
    expect_error_naming(path)
