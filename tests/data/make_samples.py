"""Rebuild ``tests/data/samples`` from the full sample patches.

    python tests/data/make_samples.py SOURCE_DIR [DEST_DIR]

SOURCE_DIR holds the datasets' patches as the datasets ship them (the layout described in
``samples/README.md``). Small ones are copied byte for byte. The three large ones are cropped
to a window at the top-left corner of the original (real values, same georeferencing for that
window) and written again with GDAL, keeping the TIFF features the tests exercise:

* Major-TOM-Core: LZW, band-separate, tiled, with several tiles per 10 m band that run past
  its right and bottom edges (256x256 tiles on 264x264 instead of 1024x1024 on 1068x1068);
* HySpecNet-11k: 224 bands, band-separate, deflate strips of 3 rows with a short last strip;
  the quality layers keep their LZW or deflate;
* Hydro: pixel-interleaved LZW with the horizontal predictor, COG layout, 512x512 tiles larger
  than the image.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import rasterio
from PIL import Image
from rasterio.windows import Window

COPY = ["BigEarthNet", "EuroSAT_MS", "EuroSAT_RGB", "SSL4EO-S12", "UCMerced_LandUse"]
MAJOR_TOM_10M = 264  # 10 m bands; 20 m bands are half of it, 60 m bands a sixth
MAJOR_TOM_TILE = 256
HYSPECNET_SIDE = 32
HYDRO_SIDE = 64


def crop(src: Path, dst: Path, side: int, **options) -> None:
    """Write the top-left ``side`` x ``side`` window of ``src`` to ``dst`` with ``options``."""
    with rasterio.open(src) as ds:
        window = Window(0, 0, side, side)
        data = ds.read(window=window)
        profile = ds.profile.copy()
        tags = ds.tags()
        descriptions = ds.descriptions
        nodata = ds.nodata
        transform = ds.window_transform(window)
    for key in ("blockxsize", "blockysize", "tiled", "compress", "interleave", "predictor"):
        profile.pop(key, None)
    profile.update(width=side, height=side, transform=transform, nodata=nodata, **options)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
        out.update_tags(**tags)
        for i, text in enumerate(descriptions, start=1):
            if text:
                out.set_band_description(i, text)


def major_tom(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        if path.is_dir():
            continue
        out = dst / path.relative_to(src)
        if path.suffix == ".png":
            out.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(path) as im:
                im.resize((64, 64)).save(out)
            continue
        with rasterio.open(path) as ds:
            side = MAJOR_TOM_10M * ds.width // 1068
        crop(
            path,
            out,
            side,
            compress="lzw",
            interleave="band",
            tiled=True,
            blockxsize=MAJOR_TOM_TILE,
            blockysize=MAJOR_TOM_TILE,
        )


def hyspecnet(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        if path.is_dir():
            continue
        out = dst / path.relative_to(src)
        if path.suffix.lower() != ".tif":
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, out)
            continue
        with rasterio.open(path) as ds:
            compress = ds.profile["compress"]
            rows = ds.profile["blockysize"]
        crop(
            path,
            out,
            HYSPECNET_SIDE,
            compress=compress,
            interleave="band",
            tiled=False,
            blockysize=rows,
        )


def hydro(src: Path, dst: Path) -> None:
    for path in sorted(src.glob("*.tif")):
        crop(
            path,
            dst / path.name,
            HYDRO_SIDE,
            driver="COG",
            compress="lzw",
            predictor=2,
            interleave="pixel",
            blocksize=512,
            overviews="none",
        )


def main(source: Path, dest: Path) -> None:
    for name in [*COPY, "Major-TOM-Core", "HySpecNet-11k", "Hydro"]:
        shutil.rmtree(dest / name, ignore_errors=True)  # README.md stays
    for name in COPY:
        shutil.copytree(source / name, dest / name)
    major_tom(source / "Major-TOM-Core", dest / "Major-TOM-Core")
    hyspecnet(source / "HySpecNet-11k", dest / "HySpecNet-11k")
    hydro(source / "Hydro", dest / "Hydro")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    here = Path(__file__).resolve().parent / "samples"
    main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) == 3 else here)
