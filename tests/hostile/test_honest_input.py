"""Exact only if the input is honest: damaged, cut and hostile archives and Parquet files.

Every compressed stream is read to its end and checked (the gzip CRC and size, the zstd
content checksum, the zip CRC, Parquet page CRCs); a tar must end with its end-of-archive
blocks; a repeated entry is an error in every container; no size an archive declares is
allocated before its bytes arrive, and the bytes in flight are bounded by the documented
options. A damaged source gives a named error and exit code 1, never a wrong record: the
records a run made from a compressed archive that failed its check are not kept, and a
``--resume`` with the good archive then gives the records of the folder. Archives are built
here from generated trees and tests/data/samples."""

from __future__ import annotations

import io
import random
import resource
import subprocess
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from support.archives import major_tom_parquet, pack_tar, pack_zip
from support.bigearthnet import SOURCES, option_flags
from support.cli import run
from support.conversions import clean_records, tree_fixture
from support.lmdb_records import read_lmdb
from support.memory import peak_rss

ben_tree = tree_fixture(24, workers=None)


@pytest.fixture(scope="module")
def ben_records(ben_tree, tmp_path_factory, rico_bin) -> dict[bytes, bytes]:
    return clean_records(rico_bin, ben_tree, tmp_path_factory)


def ben_args(target: Path, sources: dict[str, Path], *extra: object) -> list[object]:
    return ["bigearthnet", "--target-dir", target, *option_flags(sources), *extra]


def convert_ben(rico_bin, target: Path, sources: dict[str, Path], *extra: object, **kw: Any):
    return run(rico_bin, *ben_args(target, sources, *extra), **kw)


def s1_keys(records) -> set[bytes]:
    return {k for k in records if k.startswith(b"S1")}


def flipped(data: bytes, offset: int, bit: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


@pytest.mark.parametrize("ending", [".tar.gz", ".tar.zst"])
def test_a_flipped_bit_in_a_compressed_archive_never_leaves_a_wrong_record(
    ben_tree, ben_records, tmp_path, rico_bin, ending
):
    good = {o: pack_tar(ben_tree / n, tmp_path / f"{n}{ending}") for o, n in SOURCES.items()}
    s1 = good["bigearthnet_s1_dir"]
    if ending == ".tar.zst":
        # A frame with its content checksum, as the zstd tool writes by default.
        import zstandard

        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            tar.add(ben_tree / "BigEarthNet-S1", arcname="BigEarthNet-S1")
        s1.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(raw.getvalue()))
    data = s1.read_bytes()
    rng = random.Random(27)
    # The last bytes are the trailer's checksum and size (gzip) or the frame's checksum (zstd):
    # a flip there leaves every byte of data right and only the check can tell.
    offsets = [len(data) - 6, len(data) - 2] + [rng.randrange(20, len(data) - 8) for _ in range(6)]
    failed = 0
    for n, offset in enumerate(offsets):
        bad = tmp_path / f"bad{n}" / s1.name
        bad.parent.mkdir()
        bad.write_bytes(flipped(data, offset, rng.randrange(8)))
        target = tmp_path / f"db{n}"
        r = convert_ben(rico_bin, target, {**good, "bigearthnet_s1_dir": bad})
        assert r.returncode in (0, 1), r.stderr
        got = read_lmdb(target) if (target / "data.mdb").exists() else {}
        if r.returncode == 0:
            # A flip the format does not protect (an unused header field): the data is right.
            assert got == ben_records
            continue
        failed += 1
        assert str(bad) in r.stderr and "truncated or damaged" in r.stderr, r.stderr
        assert "panicked" not in r.stderr
        # Not one record made from the damaged archive is kept; the others are exact.
        assert not s1_keys(got), (offset, r.stderr)
        assert all(got[k] == ben_records[k] for k in got)
        # `verify` checks the sources' checksums too.
        if got:
            v = run(rico_bin, "verify", *ben_args(target, {**good, "bigearthnet_s1_dir": bad}))
            assert v.returncode == 1 and str(bad) in v.stderr, v.stdout + v.stderr
        # The good archive then completes the database, byte for byte.
        r = convert_ben(rico_bin, target, good, "--resume")
        assert r.returncode == 0, r.stderr
        assert read_lmdb(target) == ben_records
    assert failed >= 2


def test_a_tar_cut_at_a_member_boundary_is_truncated(ben_tree, tmp_path, rico_bin):
    whole = pack_tar(ben_tree / "BigEarthNet-S2", tmp_path / "BigEarthNet-S2.tar")
    with tarfile.open(whole) as tar:
        offsets = [m.offset for m in tar.getmembers() if m.isfile()]
    cut_at = offsets[len(offsets) // 2]
    assert cut_at % 512 == 0
    cut = tmp_path / "cut" / "BigEarthNet-S2.tar"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[:cut_at])
    r = run(rico_bin, "bigearthnet", "--target-dir", tmp_path / "db", "--bigearthnet-s2-dir", cut)
    assert r.returncode == 1, r.stderr
    assert str(cut) in r.stderr and "truncated" in r.stderr and "end-of-archive" in r.stderr
    # With --skip-invalid too: a cut archive is not an invalid patch.
    r = convert_ben(rico_bin, tmp_path / "db2", {"bigearthnet_s2_dir": cut}, "--skip-invalid")
    assert r.returncode == 1 and "truncated" in r.stderr, r.stderr


def test_a_multi_frame_tar_zst_cut_at_a_frame_boundary_is_truncated(ben_tree, tmp_path, rico_bin):
    import zstandard

    raw = pack_tar(ben_tree / "BigEarthNet-S2", tmp_path / "s2.tar").read_bytes()
    with tarfile.open(tmp_path / "s2.tar") as tar:
        offsets = [m.offset for m in tar.getmembers() if m.isfile()]
    split = offsets[len(offsets) // 2]
    c = zstandard.ZstdCompressor(write_checksum=True)
    frames = [c.compress(raw[:split]), c.compress(raw[split:])]
    whole = tmp_path / "whole" / "BigEarthNet-S2.tar.zst"
    whole.parent.mkdir()
    whole.write_bytes(b"".join(frames))
    r = run(rico_bin, "bigearthnet", "--target-dir", tmp_path / "ok", "--bigearthnet-s2-dir", whole)
    assert r.returncode == 0, r.stderr  # several frames (pzstd) are one stream
    cut = tmp_path / "cut" / "BigEarthNet-S2.tar.zst"
    cut.parent.mkdir()
    cut.write_bytes(frames[0])
    r = run(rico_bin, "bigearthnet", "--target-dir", tmp_path / "db", "--bigearthnet-s2-dir", cut)
    assert r.returncode == 1 and "truncated" in r.stderr and str(cut) in r.stderr, r.stderr


def convert_eurosat(rico_bin, target: Path, source: Path, *extra: object):
    return run(
        rico_bin, "eurosat-multi-spectral", "--target-dir", target, "--dataset-dir", source, *extra
    )


def eurosat_zip(samples: Path, out: Path, extra: list[tuple[str, bytes]]) -> Path:
    pack_zip(samples / "EuroSAT_MS", out)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in extra:
            with pytest.warns(UserWarning) if name in z.namelist() else _no_warning():
                z.writestr(name, data)
    return out


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def first_member(samples: Path) -> tuple[str, Path]:
    tif = sorted((samples / "EuroSAT_MS").rglob("*.tif"))[0]
    return "EuroSAT_MS/" + tif.relative_to(samples / "EuroSAT_MS").as_posix(), tif


def test_a_zip_with_two_entries_of_one_name_is_refused_naming_it(samples, tmp_path, rico_bin):
    name, tif = first_member(samples)
    archive = eurosat_zip(samples, tmp_path / "EuroSAT_MS.zip", [(name, tif.read_bytes()[::-1])])
    r = convert_eurosat(rico_bin, tmp_path / "db", archive)
    assert r.returncode == 1, r.stderr
    assert f"{archive}!{name}" in r.stderr and "two entries of this name" in r.stderr
    assert not (tmp_path / "db" / "data.mdb").exists()


def test_a_tar_member_repeated_after_its_patch_is_named_as_repeated(ben_tree, tmp_path, rico_bin):
    folder = ben_tree / "BigEarthNet-S1"
    from support.archives import members

    items = members(folder)
    again = next((n, p) for n, p in items if p is not None and n.endswith("_VV.tif"))
    archive = pack_tar(folder, tmp_path / "BigEarthNet-S1.tar", entries=[*items, again])
    r = run(
        rico_bin, "bigearthnet", "--target-dir", tmp_path / "db", "--bigearthnet-s1-dir", archive
    )
    assert r.returncode == 1, r.stderr
    assert f"{archive}!{again[0]}" in r.stderr and "repeats a file of patch" in r.stderr, r.stderr


def test_an_encrypted_zip_member_is_named_as_encrypted(samples, tmp_path, rico_bin):
    archive = pack_zip(samples / "EuroSAT_MS", tmp_path / "EuroSAT_MS.zip")
    data = bytearray(archive.read_bytes())
    # Set the "encrypted" flag (bit 0 of the general purpose flags) of every entry, in the
    # local and the central headers, as a password-protected zip has it.
    for signature, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (i := data.find(signature, start)) >= 0:
            data[i + at] |= 1
            start = i + 4
    archive.write_bytes(bytes(data))
    r = convert_eurosat(rico_bin, tmp_path / "db", archive)
    assert r.returncode == 1 and "encrypted" in r.stderr and "truncated" not in r.stderr, r.stderr


def test_macos_metadata_in_a_zip_is_skipped(samples, tmp_path, rico_bin):
    folder = tmp_path / "db-folder"
    r = convert_eurosat(rico_bin, folder, samples / "EuroSAT_MS")
    assert r.returncode == 0, r.stderr
    name, _ = first_member(samples)
    parent, base = name.rsplit("/", 1)
    fork = b"\x00\x05\x16\x07" + bytes(60)  # an AppleDouble header, not a GeoTIFF
    archive = eurosat_zip(
        samples,
        tmp_path / "EuroSAT_MS.zip",
        [
            (f"__MACOSX/{parent}/._{base}", fork),
            (f"{parent}/._{base}", fork),
            ("EuroSAT_MS/.DS_Store", b"Bud1"),
        ],
    )
    target = tmp_path / "db-zip"
    r = convert_eurosat(rico_bin, target, archive)
    assert r.returncode == 0, r.stderr
    assert read_lmdb(target) == read_lmdb(folder)


def test_a_tar_member_that_declares_a_tebibyte_is_truncated_not_allocated(tmp_path, rico_bin):
    name = "BigEarthNet-S1/S1A_IW_GRDH_1SDV_20170613T165043/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_0_0/S1A_IW_GRDH_1SDV_20170613T165043_33UUP_0_0_VV.tif"
    info = tarfile.TarInfo(name)
    info.size = 1 << 40
    archive = tmp_path / "BigEarthNet-S1.tar"
    archive.write_bytes(info.tobuf(format=tarfile.PAX_FORMAT) + bytes(1 << 20))
    r = convert_ben(
        rico_bin,
        tmp_path / "db",
        {"bigearthnet_s1_dir": archive},
        "--max-held-mb",
        2_000_000,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)),
    )
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "truncated" in r.stderr and str(archive) in r.stderr, r.stderr


def peak_rss_mb(*command: object, address_space_mb: int = 0):
    """(peak RSS in MB, finished process) of ``command`` alone (see support.memory)."""
    code, stderr, rss = peak_rss(*command, timeout=300, address_space_mb=address_space_mb)
    return rss / 2**20, subprocess.CompletedProcess(command, code, "", stderr)


def test_a_zip_bomb_stays_within_the_memory_bound(tmp_path, rico_bin):
    # 12 members of 128 MiB of zeros, a few hundred KB packed: every one is read (wanted by
    # EuroSAT's pattern) and is not a GeoTIFF, so --skip-invalid reads them all.
    archive = tmp_path / "EuroSAT_MS.zip"
    zeros = bytes(128 << 20)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        for i in range(12):
            z.writestr(f"EuroSAT_MS/AnnualCrop/AnnualCrop_{i + 1}.tif", zeros)
    del zeros
    assert archive.stat().st_size < 8 << 20
    for n, extra in enumerate(([], ["--max-held-mb", 200, "--buffer-mb", 4], [])):
        target = tmp_path / f"db{n}"
        rss, r = peak_rss_mb(
            rico_bin,
            "eurosat-multi-spectral",
            "--target-dir",
            target,
            "--dataset-dir",
            archive,
            "--skip-invalid",
            *extra,
            address_space_mb=1024 if n == 2 else 0,
        )
        assert r.returncode == 0, r.stderr
        assert "skipped 12" in r.stderr or "12 skipped" in r.stderr, r.stderr
        assert rss < 500, f"peak RSS {rss:.0f} MB with {extra}"


def test_a_million_empty_members_count_against_the_held_bytes(tmp_path, rico_bin):
    # 60,000 empty band files, each of its own S1 patch (missing its other band): the files
    # held are empty, their bookkeeping is not.
    archive = tmp_path / "BigEarthNet-S1.tar"
    with tarfile.open(archive, "w") as tar:
        for i in range(60_000):
            patch = f"S1A_IW_GRDH_1SDV_20170613T165043_33UUP_{i % 100}_{i // 100}"
            info = tarfile.TarInfo(
                f"BigEarthNet-S1/S1A_IW_GRDH_1SDV_20170613T165043/{patch}/{patch}_VV.tif"
            )
            tar.addfile(info, io.BytesIO(b""))
    args = ben_args(tmp_path / "db", {"bigearthnet_s1_dir": archive}, "--max-held-mb", 1)
    rss, r = peak_rss_mb(rico_bin, *args)
    assert r.returncode == 1, r.stderr
    assert "incomplete patches are held" in r.stderr and "--max-held-mb" in r.stderr, r.stderr
    assert rss < 200, rss


def test_parquet_bit_flips_give_a_data_error_never_a_panic_or_a_wrong_record(
    samples, tmp_path, rico_bin
):
    import pyarrow.parquet as pq

    s2 = samples / "Major-TOM-Core" / "S2L2A"
    products = [p for p in s2.rglob("S2*_MSIL2A_*") if p.is_dir()]
    plain = major_tom_parquet(products, tmp_path / "plain.parquet")
    good = tmp_path / "good" / "part_00001.parquet"
    good.parent.mkdir()
    pq.write_table(pq.read_table(plain), good, row_group_size=1, write_page_checksum=True)
    want_target = tmp_path / "want"
    r = run(rico_bin, "major-tom-core", "--target-dir", want_target, "--s2-dir", good)
    assert r.returncode == 0, r.stderr
    want = read_lmdb(want_target)
    data = good.read_bytes()
    rng = random.Random(14)
    errors = 0
    for n in range(12):
        offset = rng.randrange(4, len(data) - 8)
        bad = tmp_path / f"bad{n}" / "part_00001.parquet"
        bad.parent.mkdir()
        bad.write_bytes(flipped(data, offset, rng.randrange(8)))
        target = tmp_path / f"db{n}"
        r = run(rico_bin, "major-tom-core", "--target-dir", target, "--s2-dir", bad)
        assert r.returncode in (0, 1, 2), (offset, r.returncode, r.stderr)
        assert "panicked" not in r.stderr, r.stderr
        got = read_lmdb(target) if (target / "data.mdb").exists() else {}
        assert all(got[k] == want[k] for k in got), offset
        if r.returncode:
            errors += 1
            assert str(bad) in r.stderr, r.stderr
        else:
            assert got == want, offset
    assert errors >= 8


def test_info_walks_every_key_and_names_a_leaf_that_lost_some(ben_records, tmp_path, rico_bin):
    import shutil
    import struct

    from support.lmdb_records import write_records

    target = tmp_path / "db"
    target.mkdir()
    write_records(target, ben_records)
    shutil.copy(target / "data.mdb", tmp_path / "good.mdb")
    r = run(rico_bin, "info", target)
    assert r.returncode == 0 and f"records: {len(ben_records)}" in r.stdout, r.stderr
    # A leaf page (flags P_LEAF, 0x02) whose `lower` field lost one node pointer: its last key
    # is gone from the tree while the database still counts it.
    data = bytearray((tmp_path / "good.mdb").read_bytes())
    page = 4096
    for start in range(2 * page, len(data), page):
        flags, lower = struct.unpack_from("<HH", data, start + 10)
        if flags & 0x02 and not flags & 0x04 and lower > 18:
            struct.pack_into("<H", data, start + 12, lower - 2)
            break
    else:
        pytest.fail("no leaf page found")
    (target / "data.mdb").write_bytes(bytes(data))
    r = run(rico_bin, "info", target)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "damaged" in r.stderr and str(target) in r.stderr, r.stderr
    # The walk found it, not a read of one of the sampled records.
    assert f"but it counts {len(ben_records)} records" in r.stderr, r.stderr
