"""Reliability: bad input, interrupted runs, full disks, hostile files, concurrent readers."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import rico
from support import cli
from support.bigearthnet import convert, flags, sources
from support.conversions import clean_records, tree_fixture
from support.lmdb_records import read_lmdb
from support.trees import link_tree


def s2_root(root: Path) -> Path:
    return root / "BigEarthNet-S2"


def run(binary, *args, **kw) -> subprocess.CompletedProcess:
    return cli.run(binary, *args, timeout=300, **kw)


def convert_s2(binary, src: Path, target: Path, *extra, **kw) -> subprocess.CompletedProcess:
    return run(
        binary,
        "bigearthnet",
        "--bigearthnet-s2-dir",
        s2_root(src),
        "--target-dir",
        target,
        *extra,
        **kw,
    )


tree = tree_fixture(patches=12)


@pytest.fixture()
def damaged(tree, tmp_path) -> Path:
    """A private copy of the tree, free to damage."""
    out = tmp_path / "src"
    shutil.copytree(tree, out)
    return out


def band_file(src: Path, patch_index: int, band: str) -> Path:
    patch = sorted(p for p in s2_root(src).glob("*/*") if p.is_dir())[patch_index]
    return patch / f"{patch.name}_{band}.tif"


def keys_in(target: Path) -> set[bytes]:
    return set(read_lmdb(target)) if (target / "data.mdb").exists() else set()


# -- item 1: bad input stops the run, names the file, keeps no record of the failed patch -------


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate", "truncated"),
        ("garbage", "not a TIFF"),
        ("corrupt-strip", "strip"),
        ("jpeg", "JPEG"),
    ],
)
def test_bad_band_file_is_a_data_error_naming_the_file(
    rico_bin, damaged, tmp_path, damage, message
):
    victim = band_file(damaged, 5, "B04")
    data = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        victim.write_bytes(b"<html>404 not found</html>" * 10)
    elif damage == "corrupt-strip":
        import rasterio

        with rasterio.open(victim) as src:
            profile, values = src.profile, src.read()
        profile.update(compress="deflate")
        with rasterio.open(victim, "w", **profile) as dst:
            dst.write(values)
        data = bytearray(victim.read_bytes())
        offset = int(rasterio.open(victim).get_tag_item("BLOCK_OFFSET_0_1", "TIFF", bidx=1))
        data[offset : offset + 40] = b"\xff" * 40
        victim.write_bytes(bytes(data))
    else:
        import rasterio

        with rasterio.open(victim) as src:
            profile, values = src.profile, src.read()
        profile.update(
            compress="jpeg", dtype="uint8", nodata=None, tiled=True, blockxsize=16, blockysize=16
        )
        with rasterio.open(victim, "w", **profile) as dst:
            dst.write((values % 256).astype("uint8"))
    res = convert_s2(rico_bin, damaged, tmp_path / "db")
    assert res.returncode == 1, res.stderr
    assert str(victim) in res.stderr and message.lower() in res.stderr.lower(), res.stderr
    assert "hint:" in res.stderr
    assert victim.parent.name.encode() not in keys_in(tmp_path / "db")


def test_missing_band_file_is_a_data_error_before_writing_its_patch(rico_bin, damaged, tmp_path):
    victim = band_file(damaged, 3, "B11")
    victim.unlink()
    res = convert_s2(rico_bin, damaged, tmp_path / "db")
    assert res.returncode == 1
    assert victim.parent.name in res.stderr and "B11" in res.stderr
    # Planning streams: the patches before it are committed (kept for --resume), not it.
    before = {band_file(damaged, i, "B01").parent.name.encode() for i in range(3)}
    assert keys_in(tmp_path / "db") == before


def check_unreadable_file_is_a_data_error(rico_bin: Path, tree: Path) -> None:
    # Run as an unprivileged user so that permissions apply (root reads everything). That user
    # may not reach the repository (a clone inside a 0700 directory), so it runs a copy of the
    # binary placed beside its files, in a world-readable directory, and starts there.
    base = Path(tempfile.mkdtemp(prefix="rico-perm-"))
    try:
        base.chmod(0o755)
        binary = base / "bin" / "rico"
        binary.parent.mkdir()
        shutil.copy(rico_bin, binary)
        src = base / "src"
        shutil.copytree(tree / "BigEarthNet-S2", src / "BigEarthNet-S2")
        for d, _, files in os.walk(base):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        binary.chmod(0o755)
        victim = band_file(src, 2, "B02")
        victim.chmod(0o000)
        target = base / "out"
        target.mkdir()
        target.chmod(0o777)

        def drop_privileges():
            if os.getuid() == 0:
                os.setgid(65534)
                os.setuid(65534)

        res = convert_s2(binary, src, target / "db", preexec_fn=drop_privileges, cwd=base)
        assert res.returncode == 1, res.stderr
        assert str(victim) in res.stderr and "ermission denied" in res.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_unreadable_file_is_a_data_error(rico_bin, tree):
    check_unreadable_file_is_a_data_error(rico_bin, tree)


def test_unreadable_file_check_runs_from_a_private_clone(rico_bin, tree, tmp_path):
    # A clone inside a 0700 directory (``mktemp -d``): its binary is out of the unprivileged
    # user's reach, and the check above must not depend on reaching it.
    private = tmp_path / "private"
    (private / "target" / "release").mkdir(parents=True)
    private.chmod(0o700)
    binary = private / "target" / "release" / "rico"
    shutil.copy(rico_bin, binary)
    check_unreadable_file_is_a_data_error(binary, tree)


def test_source_dir_missing_or_empty_and_bad_target_are_usage_errors(rico_bin, tree, tmp_path):
    res = run(
        rico_bin,
        "bigearthnet",
        "--bigearthnet-s2-dir",
        tmp_path / "nope",
        "--target-dir",
        tmp_path / "db",
    )
    assert res.returncode == 2 and str(tmp_path / "nope") in res.stderr
    file_target = tmp_path / "file"
    file_target.write_text("x")
    res = convert_s2(rico_bin, tree, file_target)
    assert (
        res.returncode == 2 and "not a directory" in res.stderr and file_target.read_text() == "x"
    )
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    res = convert_s2(rico_bin, tree, full)
    assert (
        res.returncode == 2
        and "no LMDB database" in res.stderr
        and (full / "keep.txt").read_text() == "mine"
    )
    assert "Exit codes" in run(rico_bin, "bigearthnet", "--help").stdout


# -- item 2: --skip-invalid ---------------------------------------------------------------------


def test_skip_invalid_skips_whole_patches_and_reports_them(rico_bin, damaged, tmp_path):
    bad = band_file(damaged, 4, "B08")
    bad.write_bytes(bad.read_bytes()[:100])
    gone = band_file(damaged, 7, "B01")
    gone.unlink()
    res = run(
        rico_bin,
        "bigearthnet",
        *flags(damaged),
        "--target-dir",
        tmp_path / "db",
        "--skip-invalid",
    )
    assert res.returncode == 0, res.stderr
    assert "skipped 2 invalid patches" in res.stderr
    got = read_lmdb(tmp_path / "db")
    assert bad.parent.name.encode() not in got and gone.parent.name.encode() not in got
    assert len(got) == 12 * 3 - 2
    report = (tmp_path / "db" / "rico-skipped.tsv").read_text().splitlines()
    assert report[0] == "key\treason"
    reasons = dict(line.split("\t", 1) for line in report[1:])
    assert set(reasons) == {bad.parent.name, gone.parent.name}
    assert str(bad) in reasons[bad.parent.name] and "B01" in reasons[gone.parent.name]
    from safetensors.numpy import load

    for value in got.values():
        record = load(value)
        assert len(record) in (1, 2, 12)  # never a record with a band missing


# -- item 3: --resume after SIGKILL -------------------------------------------------------------


big_tree = tree_fixture(patches=300, workers=None)


@pytest.fixture(scope="module")
def clean_run(rico_bin, big_tree, tmp_path_factory) -> dict[bytes, bytes]:
    return clean_records(rico_bin, big_tree, tmp_path_factory, "--threads", "2", timeout=300)


def record_count(target: Path) -> int:
    try:
        return len(rico.open(target))
    except rico.RicoError:
        return 0


@pytest.mark.parametrize("kill_after_records", [0, 1, 400, 800])
def test_sigkill_then_resume_gives_exactly_the_clean_records(
    rico_bin, big_tree, clean_run, tmp_path, kill_after_records
):
    target = tmp_path / "db"
    cli.kill_when(
        lambda: not kill_after_records or record_count(target) >= kill_after_records,
        rico_bin, "bigearthnet", *flags(big_tree), "--target-dir", target, "--threads", 1,
        "--quiet", poll=0.005,
    )  # fmt: skip
    partial = read_lmdb(target) if (target / "data.mdb").exists() else {}
    # Whatever was committed before the kill is already exactly the clean run's records.
    assert all(clean_run[k] == v for k, v in partial.items())
    again = run(rico_bin, "bigearthnet", *flags(big_tree), "--target-dir", target, "--threads", "2")
    assert again.returncode in (0, 2), again.stderr
    if again.returncode == 2:
        assert "--resume" in again.stderr  # a non-empty target needs --resume
        resumed = run(rico_bin, "bigearthnet", *flags(big_tree), "--target-dir", target, "--resume")
        assert resumed.returncode == 0, resumed.stderr
    assert read_lmdb(target) == clean_run


# -- item 4: out of disk ------------------------------------------------------------------------


def test_out_of_disk_is_a_clear_error_and_the_database_stays_resumable(
    rico_bin, big_tree, clean_run, tmp_path
):
    target = tmp_path / "db"

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (80 << 20, 80 << 20))

    res = run(
        rico_bin,
        "bigearthnet",
        *flags(big_tree),
        "--target-dir",
        target,
        preexec_fn=small_disk,
    )
    assert res.returncode == 3, res.stderr
    assert "disk is full" in res.stderr and "--resume" in res.stderr and str(target) in res.stderr
    partial = read_lmdb(target)  # still a valid database
    assert 0 < len(partial) < len(clean_run)
    assert all(clean_run[k] == v for k, v in partial.items())
    res = run(rico_bin, "bigearthnet", *flags(big_tree), "--target-dir", target, "--resume")
    assert res.returncode == 0, res.stderr
    assert read_lmdb(target) == clean_run


# -- item 6: verify -----------------------------------------------------------------------------


def test_verify_reports_missing_extra_and_differing_records(rico_bin, tree, tmp_path):
    target = tmp_path / "db"
    assert run(rico_bin, "bigearthnet", *flags(tree), "--target-dir", target).returncode == 0
    ok = run(rico_bin, "verify", "bigearthnet", "--target-dir", target, *flags(tree))
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert "36 records match" in ok.stdout
    # Damage the database: drop one record, change one, add one.
    import lmdb

    keys = sorted(read_lmdb(target))
    env = lmdb.open(str(target), map_size=1 << 30)
    with env.begin(write=True) as txn:
        txn.delete(keys[0])
        value = bytearray(txn.get(keys[1]))
        value[-1] ^= 0xFF
        txn.put(keys[1], bytes(value))
        txn.put(b"stray", b"x")
    env.close()
    bad = run(rico_bin, "verify", "bigearthnet", "--target-dir", target, *flags(tree))
    assert bad.returncode == 1
    assert f"missing: {keys[0].decode()}" in bad.stdout
    assert f"differing: {keys[1].decode()}" in bad.stdout
    assert "extra: stray" in bad.stdout
    report = rico.verify("bigearthnet", target, **sources(tree))
    assert report["missing"] == [keys[0].decode()] and report["differing"] == [keys[1].decode()]
    assert report["extra"] == ["stray"] and report["matching"] == 34 and not report["ok"]


# -- item 7: readers while a writer writes ------------------------------------------------------

READER = r"""
import sys, time, rico
from safetensors.numpy import load
target, stop = sys.argv[1], sys.argv[2]
import os
seen, errors = 0, 0
while not os.path.exists(stop):
    try:
        ds = rico.open(target)
    except rico.UsageError:
        time.sleep(0.005)
        continue
    keys = ds.keys()
    assert len(keys) == len(ds)
    for k in keys[-50:]:
        rec = ds[k]
        assert rec and all(a.size for a in rec.values())
        assert load(ds.raw(k)).keys() == rec.keys()
    seen = max(seen, len(keys))
    ds.close()
print(seen)
"""


def test_readers_see_only_committed_records_and_never_crash(
    rico_bin, big_tree, clean_run, tmp_path
):
    target = tmp_path / "db"
    stop = tmp_path / "stop"
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(target), str(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    res = run(rico_bin, "bigearthnet", *flags(big_tree), "--target-dir", target, "--threads", "1")
    stop.write_text("")
    outs = [r.communicate(timeout=120) for r in readers]
    assert res.returncode == 0, res.stderr
    for r, (out, err) in zip(readers, outs):
        assert r.returncode == 0, err
        assert 0 <= int(out) <= len(clean_run)
    assert read_lmdb(target) == clean_run


INTERRUPTED = r"""
import sys, rico
src, target = sys.argv[1], sys.argv[2]
try:
    rico.convert("bigearthnet", target, threads=1, bigearthnet_s1_dir=src + "/BigEarthNet-S1",
                 bigearthnet_s2_dir=src + "/BigEarthNet-S2", bigearthnet_reference_maps_dir=src + "/Reference_Maps")
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.fixture(scope="module")
def long_tree(big_tree, tmp_path_factory) -> Path:
    """2,000 patches hard-linked from ``big_tree``: a run long enough (seconds, 6,000 records)
    that Ctrl-C lands well before its end."""
    root = tmp_path_factory.mktemp("long")
    link_tree(big_tree, root, 2000)
    return root


def test_ctrl_c_stops_rico_convert_and_resume_finishes(rico_bin, long_tree, tmp_path):
    target = tmp_path / "db"
    proc = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED, str(long_tree), str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    while record_count(target) < 1 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert "interrupted" in out, (out, err)
    assert proc.returncode == 0, err
    clean = tmp_path / "clean"
    res = run(rico_bin, "bigearthnet", *flags(long_tree), "--target-dir", clean)
    assert res.returncode == 0, res.stderr
    clean_run = read_lmdb(clean)
    assert len(clean_run) == 6000
    partial = read_lmdb(target)
    assert 0 < len(partial) < len(clean_run)
    assert all(clean_run[k] == v for k, v in partial.items())
    convert(long_tree, target, resume=True)
    assert read_lmdb(target) == clean_run


def test_verify_of_a_skip_invalid_conversion_lists_the_unreadable_patches(
    rico_bin, damaged, tmp_path
):
    bad = band_file(damaged, 2, "B03")
    bad.write_bytes(bad.read_bytes()[:200])
    gone = band_file(damaged, 9, "B12")
    gone.unlink()
    target = tmp_path / "db"
    assert (
        run(
            rico_bin, "bigearthnet", *flags(damaged), "--target-dir", target, "--skip-invalid"
        ).returncode
        == 0
    )
    res = run(rico_bin, "verify", "bigearthnet", "--target-dir", target, *flags(damaged))
    assert res.returncode == 1
    assert f"unreadable: {bad.parent.name}: {bad}" in res.stdout
    assert f"unreadable: {gone.parent.name}" in res.stdout and "B12" in res.stdout
    assert "34 of 36 records match; 0 missing, 0 extra, 0 differing, 2 unreadable" in res.stdout
