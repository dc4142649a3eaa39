"""Writes the seed corpora for rico's fuzz targets (run by `make fuzz`, see README.md).

    python make_corpus.py [OUT]      # OUT defaults to rust/fuzz/corpus

OUT/tiff_decode/          tiny GeoTIFFs as GDAL writes them: every compression and predictor
                          rico decodes, strips and tiles, pixel- and band-interleaved, every
                          sample type, BigTIFF, big-endian, sparse blocks with nodata; plus a
                          JPEG and a PNG for the format sniffing in rico_raster::decode.
OUT/parquet_rows/         Parquet files of Major-TOM's hub schema (each codec, with and
                          without page checksums).
OUT/safetensors_header/   safetensors buffers made with safetensors.numpy.save, shaped like
                          rico's records (one tensor per band, metadata) and odd ones (empty
                          tensors, scalars, many dtypes).

Images are a few pixels wide so each file is a few hundred bytes: libFuzzer mutates small
inputs far faster, and the structure (IFDs, offsets, codecs) is what matters.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning
from rasterio.transform import from_origin
from safetensors.numpy import save

warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)

W, H = 13, 11  # odd sizes: partial edge tiles and a partial last strip


def pixels(dtype: str, bands: int, rng: np.random.Generator) -> np.ndarray:
    # Smooth gradients plus noise, so predictors and codecs have something to work on.
    base = np.add.outer(np.arange(H), np.arange(W)).astype(np.float64)
    out = np.stack([base * (b + 1) + rng.normal(0, 2, (H, W)) for b in range(bands)])
    if np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        return np.clip(out, info.min, info.max).astype(dtype)
    return out.astype(dtype)


def write_tiff(path: Path, dtype: str, bands: int, rng, nodata=None, data=None, **options) -> None:
    profile = dict(driver="GTiff", width=W, height=H, count=bands, dtype=dtype,
                   crs="EPSG:32633", transform=from_origin(500000, 6000000, 10, 10), **options)
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        if data is None:
            data = pixels(dtype, bands, rng)
        if data is not False:
            dst.write(data)


def tiffs(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    cases = {
        "none_strip_u16": dict(dtype="uint16", bands=1),
        "none_strip_u8_rgb": dict(dtype="uint8", bands=3, photometric="RGB"),
        "lzw_pred2_u16_tiled": dict(dtype="uint16", bands=1, compress="lzw", predictor=2,
                                    tiled=True, blockxsize=16, blockysize=16),
        "deflate_pred2_i16_strips": dict(dtype="int16", bands=2, compress="deflate", predictor=2,
                                         blockysize=4),
        "deflate_pred3_f32_tiled": dict(dtype="float32", bands=1, compress="deflate", predictor=3,
                                        tiled=True, blockxsize=16, blockysize=16),
        "zstd_pred3_f64": dict(dtype="float64", bands=1, compress="zstd", predictor=3),
        "zstd_u32_band": dict(dtype="uint32", bands=3, compress="zstd", interleave="band",
                              tiled=True, blockxsize=16, blockysize=16),
        "packbits_i8": dict(dtype="int8", bands=1, compress="packbits"),
        "lzw_i32_pixel": dict(dtype="int32", bands=2, compress="lzw", interleave="pixel", blockysize=3),
        "lzw_pred2_u8_band_strips": dict(dtype="uint8", bands=3, compress="lzw", predictor=2,
                                         interleave="band", blockysize=5),
        "bigtiff_deflate_u16": dict(dtype="uint16", bands=1, compress="deflate", BIGTIFF="YES"),
        "bigendian_lzw_pred2_u16": dict(dtype="uint16", bands=2, compress="lzw", predictor=2,
                                        ENDIANNESS="BIG", tiled=True, blockxsize=16, blockysize=16),
        "bigendian_f32_pred3": dict(dtype="float32", bands=1, compress="deflate", predictor=3,
                                    ENDIANNESS="BIG"),
        "bigendian_none_f64": dict(dtype="float64", bands=1, ENDIANNESS="BIG"),
        # Predictor 2 on 32- and 64-bit samples, pixel-interleaved 4- and 8-byte samples.
        "lzw_pred2_u32_pixel": dict(dtype="uint32", bands=2, compress="lzw", predictor=2,
                                    interleave="pixel"),
        "deflate_pred2_f64_pixel_tiled": dict(dtype="float64", bands=2, compress="deflate",
                                              predictor=2, tiled=True, blockxsize=16, blockysize=16),
        "bigendian_zstd_pred2_i32_pixel": dict(dtype="int32", bands=3, compress="zstd", predictor=2,
                                               ENDIANNESS="BIG"),
        "bigendian_none_f64_pixel": dict(dtype="float64", bands=2, ENDIANNESS="BIG", blockysize=6),
        "bigendian_packbits_f32_pixel": dict(dtype="float32", bands=2, compress="packbits",
                                             ENDIANNESS="BIG"),
        # Blocks never written: GDAL leaves byte count 0 and readers fill with nodata.
        "sparse_nodata_u16": dict(dtype="uint16", bands=1, nodata=7, SPARSE_OK="TRUE", tiled=True,
                                  blockxsize=16, blockysize=16, data=False),
        "sparse_nodata_f32_strips": dict(dtype="float32", bands=1, nodata=-1.5, SPARSE_OK="TRUE",
                                         compress="lzw", blockysize=4, data=False),
    }
    for name, opts in cases.items():
        opts = dict(opts)
        write_tiff(out / f"{name}.tif", opts.pop("dtype"), opts.pop("bands"), rng, **opts)
    # JPEG and PNG for the sniffing path of rico_raster::decode.
    rgb = pixels("uint8", 3, rng)
    for driver, ext in (("JPEG", "jpg"), ("PNG", "png")):
        path = out / f"rgb.{ext}"
        mem = rasterio.MemoryFile()
        with mem.open(driver="GTiff", width=W, height=H, count=3, dtype="uint8") as tmp:
            tmp.write(rgb)
            rasterio.shutil.copy(tmp, path, driver=driver)
        for aux in out.glob(f"rgb.{ext}.aux.xml"):
            aux.unlink()


def safetensors_buffers(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    cases = {
        # Like a rico record: one 2-D tensor per band, plus labels and metadata.
        "record_bands": ({"B02": rng.integers(0, 4000, (4, 4), dtype=np.uint16),
                          "B03": rng.integers(0, 4000, (4, 4), dtype=np.uint16),
                          "B8A": rng.integers(0, 4000, (2, 2), dtype=np.uint16)},
                         {"source": "rico"}),
        "record_float": ({"VV": rng.normal(size=(3, 3)).astype(np.float32),
                          "VH": rng.normal(size=(3, 3)).astype(np.float32)}, None),
        "labels": ({"labels": np.array([1, 0, 1, 1], dtype=np.uint8),
                    "mask": np.zeros((2, 3), dtype=np.int32)}, {"classes": "a,b,c,d"}),
        "all_dtypes": ({f"t_{dt}": np.arange(3).astype(dt) for dt in
                        ("bool", "uint8", "int8", "uint16", "int16", "uint32", "int32",
                         "uint64", "int64", "float16", "float32", "float64")}, None),
        "empty_and_scalar": ({"empty": np.zeros((0, 5), dtype=np.float32),
                              "scalar": np.array(3.5, dtype=np.float64),
                              "one": np.ones((1,), dtype=np.uint16)}, None),
        "no_tensors": ({}, {"only": "metadata"}),
    }
    for name, (tensors, metadata) in cases.items():
        (out / f"{name}.safetensors").write_bytes(save(tensors, metadata=metadata))


def parquet_files(out: Path) -> None:
    """Tiny Parquet files of Major-TOM's hub schema: a row of two band columns holding
    GeoTIFFs, with and without page checksums, dictionary pages and each codec."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    tif = next(iter(sorted((out.parent / "tiff_decode").glob("*.tif"))), None)
    band = tif.read_bytes() if tif else b"II*\x00"
    table = pa.table(
        {
            "product_id": ["S2A_MSIL2A_20200101T000000_N0000_R000_T00XXX_20200101T000000"],
            "grid_cell": ["1U_1R"],
            "B04": pa.array([band], pa.binary()),
            "B08": pa.array([band[::-1]], pa.binary()),
        }
    )
    for codec in ("none", "snappy", "zstd", "gzip"):
        for checksums in (False, True):
            pq.write_table(
                table,
                out / f"{codec}_{'crc' if checksums else 'plain'}.parquet",
                compression=codec,
                write_page_checksum=checksums,
                use_dictionary=codec == "none",
            )


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "corpus"
    tiffs(out / "tiff_decode")
    tiffs(out / "tiff_decode_limits")  # the same files; that target decodes every size
    safetensors_buffers(out / "safetensors_header")
    parquet_files(out / "parquet_rows")
    for target in ("tiff_decode", "tiff_decode_limits", "safetensors_header", "parquet_rows"):
        files = sorted((out / target).iterdir())
        print(f"{target}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")


if __name__ == "__main__":
    main()
