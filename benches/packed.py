"""The work folder of the benches of BigEarthNet as it ships (``archives.py``, ``remote.py``):
a generated real-size tree and its three ``.tar.zst`` archives (``tar | zstd -3``, as the data
record packs them), made once and kept in ``--work`` when given."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _tests_path  # noqa: F401  (first: tests/ on sys.path)
from commands import shell
from support.bigearthnet import SOURCES, option_flags
from support.trees import make_dataset

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benches" / "results"
BINARY = ROOT / "target" / "release" / "rico"


def work_options(parser: argparse.ArgumentParser) -> None:
    """``--patches`` and ``--work``, the options of :func:`packed_tree`."""
    parser.add_argument("--patches", type=int, default=2000)
    parser.add_argument(
        "--work", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )


def packed_tree(args: argparse.Namespace, prefix: str) -> tuple[Path, Path, Path]:
    """(work folder, tree, archives folder): a tree of ``args.patches`` patches in ``tree/`` of
    the work folder (``args.work``, or a new temporary folder named from ``prefix``) and its
    three archives ``NAME.tar.zst`` in ``archives/``, each made unless it is there already.
    Stops at once where the ``rico`` binary is missing."""
    if not BINARY.is_file():
        raise SystemExit(f"{BINARY} is missing: run `make build`")
    work = Path(args.work or tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    tree = work / "tree"
    if not (tree / "BigEarthNet-S2").is_dir():
        print(f"writing a {args.patches}-patch tree ...", file=sys.stderr)
        make_dataset(tree, args.patches)
    packed = work / "archives"
    packed.mkdir(exist_ok=True)
    for name in SOURCES.values():
        if not (packed / f"{name}.tar.zst").exists():
            shell(f"tar -C {tree} -cf - {name} | zstd -q -3 -T0 -o {packed / name}.tar.zst")
    return work, tree, packed


def rico_convert(target: Path, sources: dict[str, object]) -> list[str]:
    """The command of the ``rico`` binary converting ``sources`` (``rico.convert`` options:
    folders, archives or URLs) into ``target``, quietly."""
    flags = [str(a) for a in option_flags(sources)]
    return [str(BINARY), "bigearthnet", "-q", "--target-dir", str(target), *flags]
