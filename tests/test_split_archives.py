"""Archives split into parts as they are published (BigEarthNet's ``BigEarthNet-S1.tar.gzaa``,
``.tar.gzab``; the ``.001``, ``.002`` form): read as one stream in name order, never joined on
disk, given as a glob, a list or the first part; the records equal those of the unpacked
folders, byte for byte. A missing part is an error that names it."""

from __future__ import annotations

from pathlib import Path

import pytest
import rico
from support.archives import pack_tar
from support.bigearthnet import SOURCES
from support.lmdb_records import read_lmdb
from support.trees import make_dataset


def split_file(archive: Path, parts: int, suffix) -> list[Path]:
    """Cuts ``archive`` into ``parts`` byte ranges named ``archive`` + ``suffix(i)`` (as
    ``split`` does: the cuts fall anywhere, inside a member too); removes the whole file."""
    data = archive.read_bytes()
    step = -(-len(data) // parts)
    out = []
    for i in range(parts):
        p = archive.with_name(archive.name + suffix(i))
        p.write_bytes(data[i * step : (i + 1) * step])
        out.append(p)
    archive.unlink()
    return out


def letters(i: int) -> str:
    return "a" + "abcdefghijklmnopqrstuvwxyz"[i]


def digits(i: int) -> str:
    return f".{i + 1:03d}"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict[bytes, bytes]]:
    root = tmp_path_factory.mktemp("ben")
    make_dataset(root, 24)
    db = tmp_path_factory.mktemp("db") / "db"
    rico.convert("bigearthnet", db, progress=False, **{o: root / n for o, n in SOURCES.items()})
    return root, read_lmdb(db)


@pytest.mark.parametrize("ending", [".tar.gz", ".tar.zst", ".tar"])
@pytest.mark.parametrize("suffix", [letters, digits])
def test_parts_read_as_one_archive(tree, tmp_path, ending, suffix):
    root, want = tree
    parts = {}
    for option, name in SOURCES.items():
        archive = pack_tar(root / name, tmp_path / f"{name}{ending}")
        parts[option] = split_file(archive, 3, suffix)
    # The first part alone, a glob, and the list of parts (in any order).
    first = {o: p[0] for o, p in parts.items()}
    glob = {o: str(p[0])[: -len(suffix(0))] + "*" for o, p in parts.items()}
    listed = {o: list(reversed(p)) for o, p in parts.items()}
    for name, options in (("first", first), ("glob", glob), ("list", listed)):
        rico.convert("bigearthnet", tmp_path / name, progress=False, **options)
        assert read_lmdb(tmp_path / name) == want, name


def test_a_missing_part_is_an_error_naming_it(tree, tmp_path):
    root, _ = tree
    archive = pack_tar(root / "BigEarthNet-S2", tmp_path / "BigEarthNet-S2.tar.gz")
    parts = split_file(archive, 4, letters)
    parts[2].unlink()
    for given in (
        parts[0],
        str(tmp_path / "BigEarthNet-S2.tar.gz*"),
        [parts[0], parts[1], parts[3]],
    ):
        with pytest.raises(rico.RicoError) as e:
            rico.convert("bigearthnet", tmp_path / "db", progress=False, bigearthnet_s2_dir=given)
        assert "BigEarthNet-S2.tar.gzac" in str(e.value), str(e.value)
    parts[0].unlink()
    with pytest.raises(rico.RicoError, match="first part"):
        rico.convert("bigearthnet", tmp_path / "db2", progress=False, bigearthnet_s2_dir=parts[1])
