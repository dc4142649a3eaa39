"""Sources as datasets ship them: archives (.tar, .tar.gz, .tar.zst, .zip) and Major-TOM's
hub Parquet files, read in one pass. Every conversion is compared, record by record and byte by
byte, with the conversion of the unpacked folders. The archives are built here from
tests/data/samples and from generated BigEarthNet trees."""

from __future__ import annotations

import io
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
import rico
from support.archives import major_tom_parquet, pack_tar, pack_zip
from support.bigearthnet import SOURCES, option_flags
from support.cli import run
from support.conversions import tree_fixture
from support.lmdb_records import read_lmdb, read_shards
from support.trees import make_dataset


def convert(dataset: str, target: Path, **options) -> dict[bytes, bytes]:
    rico.convert(dataset, target, progress=False, **options)
    return read_lmdb(target)


#: A generated 40-patch BigEarthNet tree (S1, S2 and reference maps).
ben_tree = tree_fixture(40, workers=None)


@pytest.fixture(scope="module")
def ben_records(ben_tree, tmp_path_factory) -> dict[bytes, bytes]:
    target = tmp_path_factory.mktemp("ben-db") / "db"
    return convert("bigearthnet", target, **{o: ben_tree / name for o, name in SOURCES.items()})


def ben_archives(tree: Path, out: Path, ending: str, **pack) -> dict[str, Path]:
    out.mkdir(exist_ok=True)
    return {
        option: pack_tar(tree / name, out / f"{name}{ending}", **pack)
        for option, name in SOURCES.items()
    }


@pytest.mark.parametrize("ending", [".tar.zst", ".tar.gz", ".tgz", ".tar"])
def test_bigearthnet_archives_give_the_records_of_the_folders(
    ben_tree, ben_records, tmp_path, ending
):
    archives = ben_archives(ben_tree, tmp_path / "arch", ending)
    got = convert("bigearthnet", tmp_path / "db", **archives)
    assert len(got) == 120
    assert got == ben_records


def test_the_binary_reads_archives_with_the_same_flags(ben_tree, ben_records, tmp_path, rico_bin):
    archives = ben_archives(ben_tree, tmp_path / "arch", ".tar.zst")
    args = option_flags(archives)
    for threads in (1, 2):
        target = tmp_path / f"db{threads}"
        r = run(rico_bin, "bigearthnet", "--target-dir", target, "--threads", threads, *args)
        assert r.returncode == 0, r.stderr
        assert "wrote 120 records" in r.stderr
        assert read_lmdb(target) == ben_records
    # Archives are read several at once, their patches taken in turn: the same database file
    # whatever the thread count.
    assert (tmp_path / "db1" / "data.mdb").read_bytes() == (
        tmp_path / "db2" / "data.mdb"
    ).read_bytes()
    r = run(rico_bin, "verify", "bigearthnet", "--target-dir", tmp_path / "db1", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "120 records match" in r.stdout


def test_an_archive_packed_from_inside_its_folder_stands_for_it(ben_tree, ben_records, tmp_path):
    """`tar -C BigEarthNet-S2 -cf BigEarthNet-S2.tar .`: the members have no top-level folder."""
    s2 = pack_tar(ben_tree / "BigEarthNet-S2", tmp_path / "BigEarthNet-S2.tar", top=False)
    got = convert("bigearthnet", tmp_path / "db", bigearthnet_s2_dir=s2)
    want = {k: v for k, v in ben_records.items() if k.startswith(b"S2") and b"reference" not in k}
    assert got == want


def test_shuffled_members_give_the_same_records(ben_tree, ben_records, tmp_path, rico_bin):
    archives = ben_archives(ben_tree, tmp_path / "arch", ".tar.zst", shuffle=7)
    assert convert("bigearthnet", tmp_path / "db", **archives) == ben_records
    # Held incomplete patches are bounded: past the limit the run stops and names the option.
    big = tmp_path / "big"
    make_dataset(big, 12)
    for tif in (big / "BigEarthNet-S2").rglob("*.tif"):
        tif.write_bytes(tif.read_bytes() + bytes(200_000))  # trailing bytes: still valid TIFFs
    s2 = pack_tar(big / "BigEarthNet-S2", tmp_path / "s2.tar", shuffle=3)
    target = tmp_path / "limited"
    r = run(
        rico_bin, "bigearthnet", "--target-dir", target,
        "--bigearthnet-s2-dir", s2, "--max-held-mb", 1,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "above the limit of 1 MB" in r.stderr and "--max-held-mb" in r.stderr
    assert str(s2) in r.stderr
    r = run(rico_bin, "bigearthnet", "--target-dir", tmp_path / "ok", "--bigearthnet-s2-dir", s2)
    assert r.returncode == 0, r.stderr
    assert len(read_lmdb(tmp_path / "ok")) == 12


def test_parts_by_repeated_option_list_or_glob(ben_tree, ben_records, tmp_path, rico_bin):
    """One source in several parts (HySpecNet ships .tar.gz parts): each part holds the same
    top-level folder."""
    s2 = ben_tree / "BigEarthNet-S2"
    patches = sorted(p for p in s2.rglob("*") if p.is_dir() and p.parent != s2)
    parts = []
    for i, chunk in enumerate([patches[:15], patches[15:30], patches[30:]]):
        entries = [("BigEarthNet-S2/", None)]
        for patch in chunk:
            entries.append((f"BigEarthNet-S2/{patch.relative_to(s2).as_posix()}/", None))
            for f in sorted(patch.iterdir()):
                entries.append((f"BigEarthNet-S2/{f.relative_to(s2).as_posix()}", f))
        parts.append(pack_tar(s2, tmp_path / f"BigEarthNet-S2-{i + 1:02d}.tar.gz", entries=entries))
    want = {k: v for k, v in ben_records.items() if k.startswith(b"S2") and b"reference" not in k}
    assert convert("bigearthnet", tmp_path / "list", bigearthnet_s2_dir=parts) == want
    glob = str(tmp_path / "BigEarthNet-S2-*.tar.gz")
    assert convert("bigearthnet", tmp_path / "glob", bigearthnet_s2_dir=glob) == want
    repeated = [a for p in parts for a in ("--bigearthnet-s2-dir", p)]
    r = run(rico_bin, "bigearthnet", "--target-dir", tmp_path / "cli", *repeated)
    assert r.returncode == 0, r.stderr
    assert read_lmdb(tmp_path / "cli") == want
    # Sharded: parts are read only by the shards whose patches they hold; same records.
    rico.convert(
        "bigearthnet", tmp_path / "sharded", shards=3, progress=False, bigearthnet_s2_dir=parts
    )
    shards = read_shards(tmp_path / "sharded")
    assert sum(len(s) for s in shards) == len(want)
    assert {k: v for s in shards for k, v in s.items()} == want
    r = run(
        rico_bin,
        "bigearthnet",
        "--target-dir",
        tmp_path / "none",
        "--bigearthnet-s2-dir",
        tmp_path / "nope-*.tar",
    )
    assert r.returncode == 2 and "no file matches" in r.stderr


def test_a_single_archive_converts_sharded_and_resumes(ben_tree, ben_records, tmp_path):
    archives = ben_archives(ben_tree, tmp_path / "arch", ".tar.zst")
    rico.convert("bigearthnet", tmp_path / "sharded", shards=4, progress=False, **archives)
    shards = read_shards(tmp_path / "sharded")
    assert [len(s) for s in shards] == [30, 30, 30, 30]
    assert {k: v for s in shards for k, v in s.items()} == ben_records
    # --resume re-reads the archive and writes only what is missing.
    target = tmp_path / "resumed"
    s2_only = {"bigearthnet_s2_dir": archives["bigearthnet_s2_dir"]}
    convert("bigearthnet", target, **s2_only)
    summary = rico.convert("bigearthnet", target, resume=True, progress=False, **archives)
    assert summary.already_present == 40 and summary.records == 80
    assert read_lmdb(target) == ben_records
    report = rico.verify("bigearthnet", target, progress=False, **archives)
    assert report["ok"] and report["matching"] == 120, report["text"]


def test_each_dataset_in_its_shipped_form_gives_the_records_of_its_folder(samples, tmp_path):
    cases = [
        # (dataset, option, folder, shipped as)
        ("eurosat-multi-spectral", "dataset_dir", samples / "EuroSAT_MS", "EuroSAT_MS.zip"),
        ("uc-merced", "dataset_dir", samples / "UCMerced_LandUse", "UCMerced_LandUse.zip"),
        ("hyspecnet-11k", "dataset_dir", samples / "HySpecNet-11k", "hyspecnet-11k-01.tar.gz"),
        ("hydro", "dataset_dir", samples / "Hydro", "Hydro.tar"),
    ]
    for dataset, option, folder, shipped in cases:
        packed = tmp_path / shipped
        (pack_zip if shipped.endswith(".zip") else pack_tar)(folder, packed)
        want = convert(dataset, tmp_path / f"{shipped}.dir", **{option: folder})
        got = convert(dataset, tmp_path / f"{shipped}.db", **{option: packed})
        assert want and got == want, shipped


def test_ssl4eo_keys_take_the_archives_folder_name(samples, tmp_path):
    """SSL4EO's keys carry the source root's name (`s1_...`): `s1.tar.gz` holds `s1/`."""
    root = samples / "SSL4EO-S12"
    options = {"s1_dir": "s1", "s2_l1c_dir": "s2c", "s2_l2a_dir": "s2a"}
    want = convert("ssl4eo-s12", tmp_path / "dir", **{o: root / n for o, n in options.items()})
    # Archives named otherwise: the top-level folder, not the file name, makes the keys.
    packed = {o: pack_tar(root / n, tmp_path / f"ssl4eo-{n}.tar.gz") for o, n in options.items()}
    got = convert("ssl4eo-s12", tmp_path / "arch", **packed)
    assert len(want) == 3 and got == want
    assert sorted(k.split(b"_")[0] for k in got) == [b"s1", b"s2a", b"s2c"]


def test_major_tom_parquet_of_the_hub_schema(samples, tmp_path, rico_bin):
    s2 = samples / "Major-TOM-Core" / "S2L2A"
    products = [p for p in s2.rglob("S2*_MSIL2A_*") if p.is_dir()]
    want = convert("major-tom-core", tmp_path / "dir", s2_dir=s2)
    assert len(want) == len(products) == 1
    images = tmp_path / "Core-S2L2A" / "images"
    images.mkdir(parents=True)
    part = major_tom_parquet(products, images / "part_00001.parquet")
    assert convert("major-tom-core", tmp_path / "file", s2_dir=part) == want
    # A folder of the hub's Parquet files (or its images/ folder).
    assert convert("major-tom-core", tmp_path / "folder", s2_dir=images.parent) == want
    r = run(
        rico_bin, "verify", "major-tom-core", "--target-dir", tmp_path / "file", "--s2-dir", part
    )
    assert r.returncode == 0 and "1 records match" in r.stdout, r.stdout + r.stderr
    # A Parquet file of another schema is refused, naming it and what it lacks.
    import pyarrow as pa
    import pyarrow.parquet as pq

    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1]}), other)
    r = run(rico_bin, "major-tom-core", "--target-dir", tmp_path / "bad", "--s2-dir", other)
    assert r.returncode == 1 and "product_id" in r.stderr and str(other) in r.stderr
    assert not (tmp_path / "bad").exists()


def bad_tar(path: Path, add) -> Path:
    with tarfile.open(path, "w") as tar:
        add(tar)
    return path


def add_file(tar: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def add_link(tar: tarfile.TarFile, name: str, kind: bytes, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


HOSTILE = {
    "traversal": lambda t: add_file(t, "s1/../../etc/B1.tif"),
    "absolute": lambda t: add_file(t, "/etc/s1/B1.tif"),
    "symlink": lambda t: add_link(t, "s1/0000200/x/VH.tif", tarfile.SYMTYPE, "/etc/passwd"),
    "hardlink": lambda t: add_link(t, "s1/0000200/x/VV.tif", tarfile.LNKTYPE, "s1/a"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_refused_naming_the_member(tmp_path, rico_bin, case):
    archive = bad_tar(tmp_path / "s1.tar", HOSTILE[case])
    target = tmp_path / "db"
    r = run(rico_bin, "ssl4eo-s12", "--target-dir", target, "--s1-dir", archive)
    assert r.returncode == 1, r.stderr
    assert f"{archive}!" in r.stderr, r.stderr
    assert not target.exists()
    assert not (tmp_path / "etc").exists()


def test_zip_with_traversal_or_a_link_is_refused(tmp_path, rico_bin):
    for name, info_kind in [("../x/B1.tif", None), ("EuroSAT/a/link_1.tif", 0o120777)]:
        archive = tmp_path / "EuroSAT.zip"
        with zipfile.ZipFile(archive, "w") as z:
            info = zipfile.ZipInfo(name)
            if info_kind:
                info.external_attr = info_kind << 16
            z.writestr(info, b"/etc/passwd")
        r = run(
            rico_bin,
            "eurosat-multi-spectral",
            "--target-dir",
            tmp_path / "db",
            "--dataset-dir",
            archive,
        )
        assert r.returncode == 1, r.stderr
        assert f"{archive}!{name}" in r.stderr
        assert not (tmp_path / "db").exists()


def test_a_truncated_archive_stops_naming_it_and_keeps_what_was_committed(
    ben_tree, ben_records, tmp_path, rico_bin
):
    archives = ben_archives(ben_tree, tmp_path / "arch", ".tar.gz")
    s2 = archives["bigearthnet_s2_dir"]
    cut = tmp_path / "cut" / s2.name
    cut.parent.mkdir()
    cut.write_bytes(s2.read_bytes()[: s2.stat().st_size * 2 // 3])
    target = tmp_path / "db"
    flags = ["--bigearthnet-s1-dir", archives["bigearthnet_s1_dir"], "--bigearthnet-s2-dir", cut]
    r = run(rico_bin, "bigearthnet", "--target-dir", target, *flags)
    assert r.returncode == 1, r.stderr
    assert str(cut) in r.stderr and "truncated or damaged" in r.stderr
    kept = read_lmdb(target) if target.exists() else {}
    assert all(ben_records[k] == v for k, v in kept.items())
    # The whole archive again, with --resume: exactly the records of a clean conversion.
    flags[-1] = s2
    r = run(rico_bin, "bigearthnet", "--target-dir", target, "--resume", *flags)
    assert r.returncode == 0, r.stderr
    want = {k: v for k, v in ben_records.items() if b"reference" not in k}
    assert read_lmdb(target) == want


def test_skip_invalid_lists_bad_members_as_archive_member(samples, tmp_path, rico_bin):
    tree = tmp_path / "EuroSAT_MS"
    shutil.copytree(samples / "EuroSAT_MS", tree)
    (tree / "Pasture" / "Pasture_9.tif").write_bytes(b"II*\x00 not a tiff")
    archive = pack_zip(tree, tmp_path / "EuroSAT_MS.zip")
    target = tmp_path / "db"
    r = run(
        rico_bin, "eurosat-multi-spectral", "--target-dir", target,
        "--dataset-dir", archive, "--skip-invalid",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(read_lmdb(target)) == 2
    report = (target / "rico-skipped.tsv").read_text()
    assert f"{archive}!EuroSAT_MS/Pasture/Pasture_9.tif" in report


def test_an_archive_with_two_top_level_folders_is_refused(tmp_path, rico_bin):
    root = tmp_path / "src"
    make_dataset(root, 2)
    archive = pack_tar(root, tmp_path / "both.tar", top=False)  # BigEarthNet-S1/, ...-S2/, ...
    # Packed from inside: no top folder, so the archive stands for a folder named "both".
    r = run(
        rico_bin, "bigearthnet", "--target-dir", tmp_path / "db", "--bigearthnet-s2-dir", archive
    )
    assert r.returncode == 0, r.stderr
    assert len(read_lmdb(tmp_path / "db")) == 2
    # Without the "./" style entry first, the first member's folder is taken as the root and a
    # member elsewhere is named.
    entries = [
        ("BigEarthNet-S1/", None),
        *[(n, p) for n, p in pack_entries(root / "BigEarthNet-S1")],
        ("BigEarthNet-S2/", None),
        *[(n, p) for n, p in pack_entries(root / "BigEarthNet-S2")],
    ]
    mixed = pack_tar(root, tmp_path / "mixed.tar", entries=entries)
    r = run(
        rico_bin, "bigearthnet", "--target-dir", tmp_path / "db2", "--bigearthnet-s2-dir", mixed
    )
    assert r.returncode == 1
    assert f"{mixed}!BigEarthNet-S2" in r.stderr and "top-level folder" in r.stderr


def pack_entries(folder: Path) -> list[tuple[str, Path]]:
    return [
        (f"{folder.name}/{p.relative_to(folder).as_posix()}", p)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def test_a_directory_named_like_an_archive_is_a_directory(samples, tmp_path):
    folder = tmp_path / "Hydro.tar"
    shutil.copytree(samples / "Hydro", folder)
    want = convert("hydro", tmp_path / "a", dataset_dir=samples / "Hydro")
    assert convert("hydro", tmp_path / "b", dataset_dir=folder) == want


def test_other_files_are_refused_with_the_endings_rico_reads(tmp_path, rico_bin):
    other = tmp_path / "BigEarthNet-S2.rar"
    other.write_bytes(b"Rar!")
    r = run(rico_bin, "bigearthnet", "--target-dir", tmp_path / "db", "--bigearthnet-s2-dir", other)
    assert r.returncode == 2
    assert ".tar.zst" in r.stderr and ".zip" in r.stderr and ".parquet" in r.stderr


def test_a_dask_cluster_converts_archive_parts(ben_tree, ben_records, tmp_path):
    """Each shard task on a real local Dask cluster reads the parts that hold its patches."""
    from support.cluster import local_cluster

    archives = ben_archives(ben_tree, tmp_path / "arch", ".tar.zst")
    with local_cluster() as (_, client):
        summary = rico.convert(
            "bigearthnet", tmp_path / "dask", shards=3, client=client, progress=False, **archives
        )
    assert summary.records == 120
    shards = read_shards(tmp_path / "dask")
    assert {k: v for s in shards for k, v in s.items()} == ben_records
