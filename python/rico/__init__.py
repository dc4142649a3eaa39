"""rico: remote-sensing datasets to LMDB + safetensors, read back zero-copy.

Convert a dataset once, then train from the database::

    import rico
    summary = rico.convert(
        "bigearthnet",
        target_dir="ben.lmdb",
        bigearthnet_s2_dir="BigEarthNet-S2",
        bigearthnet_s1_dir="BigEarthNet-S1",
    )
    print(summary.records, "records")

Every record is ``patch name -> safetensors(band -> 2-D array)``, byte-identical to what the
reference tool (rico-hdl) writes.
"""

from __future__ import annotations

from . import _rico
from ._rico import DataError, OutputError, RicoError, UsageError, read_raster
from .bigearthnet import BigEarthNet, stats
from .conversion import ConvertSummary, convert, datasets, verify
from .conversion import PathLike as PathLike  # the type of path arguments
from .dataset import Dataset, bench, info, open
from .loader import Loader, load_labels

__version__: str = _rico.__version__

__all__ = [
    "ConvertSummary",
    "DataError",
    "OutputError",
    "RicoError",
    "UsageError",
    "convert",
    "datasets",
    "read_raster",
    "verify",
    "Dataset",
    "Loader",
    "bench",
    "info",
    "load_labels",
    "open",
    "BigEarthNet",
    "stats",
]


def __getattr__(name: str) -> object:
    # `rico.torch` without an explicit import, when torch is installed (imported on first use:
    # `import rico` stays light).
    if name == "torch":
        import importlib

        try:
            return importlib.import_module(".torch", __name__)
        except ModuleNotFoundError as e:
            if e.name != "torch":
                raise
            raise AttributeError("rico.torch needs PyTorch: pip install torch") from e
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
