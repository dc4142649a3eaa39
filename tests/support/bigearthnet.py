"""BigEarthNet's names and layout as the tests and benches write and read them: the tiles and
patch names of the generated trees, the three source directories as ``rico.convert`` options
and as command-line flags (its bands: :mod:`support.bands`). Standard library only: a measured
process imports it too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The tiles of every generated patch (the real samples' tiles).
S2_TILE = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
S1_TILE = "S1A_IW_GRDH_1SDV_20170613T165043"

#: The source directories of a BigEarthNet tree, by the name of their option.
SOURCES = {
    "bigearthnet_s1_dir": "BigEarthNet-S1",
    "bigearthnet_s2_dir": "BigEarthNet-S2",
    "bigearthnet_reference_maps_dir": "Reference_Maps",
}


def patch_names(i: int) -> tuple[str, str]:
    """(S2 patch_id, S1 name) of patch ``i`` of a generated tree: tile position
    ``(i % 100, i // 100)``."""
    x, y = i % 100, i // 100
    return f"{S2_TILE}_{x}_{y}", f"{S1_TILE}_33UUP_{x}_{y}"


def source_dirs(root: Path) -> dict[str, Path]:
    """The three source roots of the tree under ``root``: ``s1``, ``s2``, ``maps``."""
    return {
        "s1": root / "BigEarthNet-S1",
        "s2": root / "BigEarthNet-S2",
        "maps": root / "Reference_Maps",
    }


def sources(root: Path) -> dict[str, Path]:
    """The tree under ``root`` as ``rico.convert`` options (every source directory)."""
    return {option: root / name for option, name in SOURCES.items()}


def option_flags(options: dict[str, Any]) -> list[Any]:
    """``rico.convert`` options (``{"bigearthnet_s2_dir": path, ...}``) as command-line flags
    (``["--bigearthnet-s2-dir", path, ...]``)."""
    return [
        a for option, value in options.items() for a in ("--" + option.replace("_", "-"), value)
    ]


def flags(root: Path) -> list[str]:
    """The tree under ``root`` as command-line flags (every source directory)."""
    return option_flags({option: str(root / name) for option, name in SOURCES.items()})


def convert(root: Path, target: Path, **options: Any) -> Any:
    """``rico.convert("bigearthnet", target, ...)`` of every source directory under ``root``."""
    import rico

    return rico.convert("bigearthnet", target, **sources(root), **options)


def cli_args(root: Path, target: Path, *more: object) -> list[object]:
    """The arguments of ``rico bigearthnet`` converting the tree under ``root`` into
    ``target``, then ``more``."""
    return ["bigearthnet", *flags(root), "--target-dir", target, *more]
