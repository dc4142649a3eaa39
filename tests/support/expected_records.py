"""What a record must hold, computed with the reference readers (rasterio, Pillow) and
``safetensors.numpy.save``: the oracle of the dataset tests."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import rasterio
from safetensors.numpy import load, save


def rasterio_bands(path: Path) -> list[np.ndarray]:
    """Every band of ``path`` as rasterio reads it (``src.read(i)``, 1-based i)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            return [src.read(i) for i in range(1, src.count + 1)]


def bands_record(files: Mapping[str, Path]) -> bytes:
    """The record of a patch made of single-band files: band name -> file."""
    arrays = {}
    for band, path in files.items():
        (array,) = rasterio_bands(path)
        arrays[band] = array
    return save(arrays)


def file_record(path: Path, names: Sequence[str]) -> bytes:
    """The record of a multi-band file whose band i is stored as ``names[i-1]``."""
    arrays = rasterio_bands(path)
    assert len(arrays) == len(names), (path, len(arrays))
    return save(dict(zip(names, arrays)))


def numbered_record(path: Path, prefix: str = "B") -> bytes:
    """The record of a multi-band file with bands stored as B1..Bn."""
    arrays = rasterio_bands(path)
    return save({f"{prefix}{i + 1}": a for i, a in enumerate(arrays)})


def pillow_record(path: Path, names: Sequence[str]) -> bytes:
    """The record of an image Pillow decodes (JPEG, PNG): channel i stored as ``names[i]``."""
    from PIL import Image

    with Image.open(path) as img:
        array = np.asarray(img)
    planes = [array] if array.ndim == 2 else [array[..., i] for i in range(array.shape[2])]
    assert len(planes) == len(names), (path, len(planes))
    return save({n: np.ascontiguousarray(p) for n, p in zip(names, planes)})


def layout(value: bytes) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Band name -> (dtype name, shape) of a record."""
    return {name: (str(a.dtype), a.shape) for name, a in load(value).items()}
