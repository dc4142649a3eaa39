"""BigEarthNet conversion: the real samples, v1 and v2 layouts, determinism, the CLI's errors."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import lmdb
import numpy as np
import pytest
import rasterio
import rico
from safetensors.numpy import save
from support.bands import S1_BANDS, S2_BANDS
from support.bigearthnet import convert as convert_tree
from support.cli import run
from support.lmdb_records import read_lmdb
from support.trees import make_dataset


def rasterio_band(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        assert src.count == 1
        return src.read(1)


def expected_records(root: Path) -> dict[bytes, bytes]:
    """What the contract says a BigEarthNet tree converts to, computed with rasterio + safetensors."""
    out: dict[bytes, bytes] = {}
    for tif in sorted(root.rglob("*_reference_map.tif")):
        out[tif.stem.encode()] = save({"Data": rasterio_band(tif)})
    for patch in sorted(
        p for p in root.rglob("S2[AB]_MSIL2A_*") if p.is_dir() and p.name.split("_")[-1].isdigit()
    ):
        if any(patch.glob("*_reference_map.tif")):
            continue
        out[patch.name.encode()] = save(
            {b: rasterio_band(patch / f"{patch.name}_{b}.tif") for b in S2_BANDS}
        )
    for patch in sorted(
        p for p in root.rglob("S1[AB]_IW_GRDH_*") if p.is_dir() and p.name.split("_")[-1].isdigit()
    ):
        out[patch.name.encode()] = save(
            {b: rasterio_band(patch / f"{patch.name}_{b}.tif") for b in S1_BANDS}
        )
    return out


def test_real_samples_are_byte_identical_to_rasterio_and_safetensors(samples, tmp_path):
    root = samples / "BigEarthNet"
    summary = convert_tree(root, tmp_path / "db", threads=2)
    got = read_lmdb(tmp_path / "db")
    want = expected_records(root)
    assert (
        sorted(got)
        == sorted(want)
        == sorted(
            [
                b"S1A_IW_GRDH_1SDV_20170613T165043_33UUP_70_48",
                b"S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43",
                b"S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57_reference_map",
            ]
        )
    )
    for key, value in want.items():
        assert got[key] == value, key
    assert summary.records == 3
    assert summary.files == 12 + 2 + 1
    assert summary.record_bytes == sum(len(v) for v in want.values())


def test_record_bands_dtypes_and_shapes_follow_the_contract(samples, tmp_path):
    from safetensors.numpy import load

    convert_tree(samples / "BigEarthNet", tmp_path / "db")
    got = {k.decode(): load(v) for k, v in read_lmdb(tmp_path / "db").items()}
    s2 = got["S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_75_43"]
    assert sorted(s2) == sorted(S2_BANDS)
    sides = {"B01": 20, "B09": 20, "B02": 120, "B03": 120, "B04": 120, "B08": 120}
    for band, array in s2.items():
        assert array.dtype == np.uint16
        assert array.shape == (sides.get(band, 60),) * 2
    s1 = got["S1A_IW_GRDH_1SDV_20170613T165043_33UUP_70_48"]
    assert sorted(s1) == ["VH", "VV"] and all(
        a.dtype == np.float32 and a.shape == (120, 120) for a in s1.values()
    )
    ref = got["S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57_reference_map"]
    assert (
        list(ref) == ["Data"] and ref["Data"].dtype == np.uint16 and ref["Data"].shape == (120, 120)
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ben")
    make_dataset(root, patches=40, workers=1)
    return root


def test_generated_tree_matches_rasterio_and_data_mdb_is_independent_of_threads(
    generated, tmp_path
):
    one = convert_tree(generated, tmp_path / "t1", threads=1)
    two = convert_tree(generated, tmp_path / "t2", threads=2)
    assert one.records == two.records == 120
    h1 = hashlib.sha256((tmp_path / "t1" / "data.mdb").read_bytes()).hexdigest()
    h2 = hashlib.sha256((tmp_path / "t2" / "data.mdb").read_bytes()).hexdigest()
    assert h1 == h2
    got = read_lmdb(tmp_path / "t2")
    assert got == expected_records(generated)


def test_v1_flat_layout_gives_the_same_keys_as_v2(tmp_path):
    make_dataset(tmp_path / "v1", patches=5, layout="v1", workers=1)
    make_dataset(tmp_path / "v2", patches=5, layout="v2", workers=1)
    assert not any((tmp_path / "v1" / "BigEarthNet-S2").glob("*/*/*.tif"))  # really flat
    convert_tree(tmp_path / "v1", tmp_path / "db1")
    convert_tree(tmp_path / "v2", tmp_path / "db2")
    assert read_lmdb(tmp_path / "db1") == read_lmdb(tmp_path / "db2")
    assert len(read_lmdb(tmp_path / "db1")) == 15


def test_v1_metadata_json_is_not_image_data(tmp_path):
    make_dataset(tmp_path / "v1", patches=2, layout="v1", workers=1)
    for patch in (tmp_path / "v1" / "BigEarthNet-S2").iterdir():
        (patch / f"{patch.name}_labels_metadata.json").write_text('{"labels": []}')
    summary = rico.convert(
        "bigearthnet", tmp_path / "db", bigearthnet_s2_dir=tmp_path / "v1" / "BigEarthNet-S2"
    )
    assert summary.records == 2 and summary.files == 24


def test_missing_band_file_names_patch_and_band_and_writes_nothing_of_it(tmp_path):
    make_dataset(tmp_path / "src", patches=2, workers=1)
    victim = next((tmp_path / "src" / "BigEarthNet-S2").glob("*/*_1_0"))
    (victim / f"{victim.name}_B05.tif").unlink()
    with pytest.raises(rico.DataError, match=rf"{victim.name} has no file for band B05"):
        rico.convert(
            "bigearthnet", tmp_path / "db", bigearthnet_s2_dir=tmp_path / "src" / "BigEarthNet-S2"
        )
    # Planning streams: the patch before it is committed (and kept for --resume), never the
    # incomplete patch.
    assert set(read_lmdb(tmp_path / "db")) == {victim.name.replace("_1_0", "_0_0").encode()}


def test_duplicate_key_names_both_files(tmp_path):
    make_dataset(tmp_path / "src", patches=1, workers=1)
    maps = tmp_path / "src" / "Reference_Maps"
    original = next(maps.rglob("*_reference_map.tif"))
    copy_dir = maps / "elsewhere"
    copy_dir.mkdir()
    shutil.copy(original, copy_dir / original.name)
    with pytest.raises(rico.DataError, match="duplicate key") as err:
        rico.convert("bigearthnet", tmp_path / "db", bigearthnet_reference_maps_dir=maps)
    assert str(original) in str(err.value) and str(copy_dir / original.name) in str(err.value)


def test_non_empty_target_needs_resume_and_other_dirs_are_refused(generated, tmp_path):
    convert_tree(generated, tmp_path / "db")
    with pytest.raises(rico.UsageError, match="--resume"):
        convert_tree(generated, tmp_path / "db")
    again = convert_tree(generated, tmp_path / "db", resume=True)
    assert again.records == 0 and again.already_present == 120
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(rico.UsageError, match="not empty and holds no LMDB"):
        convert_tree(generated, other)
    assert (other / "notes.txt").read_text() == "mine"


def test_python_errors_name_the_problem(tmp_path):
    with pytest.raises(rico.UsageError, match="give at least one of --bigearthnet-s1-dir"):
        rico.convert("bigearthnet", tmp_path / "db")
    with pytest.raises(rico.UsageError, match="unknown dataset"):
        rico.convert("nope", tmp_path / "db", dataset_dir=tmp_path)
    with pytest.raises(rico.UsageError, match="no source option"):
        rico.convert("bigearthnet", tmp_path / "db", s2_dir=tmp_path)
    assert issubclass(rico.DataError, rico.RicoError)


# --- the binary --------------------------------------------------------------------------------


def test_cli_converts_and_prints_a_summary(rico_bin, samples, tmp_path):
    root = samples / "BigEarthNet"
    res = run(
        rico_bin, "bigearthnet",
        "--bigearthnet-s2-dir", root / "BigEarthNet-S2",
        "--bigearthnet-s1-dir", root / "BigEarthNet-S1",
        "--target-dir", tmp_path / "db",
        "--num-workers", 2,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("\n") == 1  # no progress bar when piped, one summary line
    assert "wrote 2 records from 14 files" in res.stderr and "records/s" in res.stderr
    assert len(read_lmdb(tmp_path / "db")) == 2
    quiet = run(
        rico_bin, "bigearthnet",
        "--bigearthnet-s1-dir", root / "BigEarthNet-S1",
        "--target-dir", tmp_path / "db2",
        "--quiet",
    )  # fmt: skip
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == ""


def test_cli_no_source_dir_is_a_usage_error(rico_bin, tmp_path):
    res = run(rico_bin, "bigearthnet", "--target-dir", tmp_path / "db")
    assert res.returncode == 2
    assert "give at least one of --bigearthnet-s1-dir" in res.stderr
    assert not (tmp_path / "db").exists()


def test_cli_source_dir_without_patch_is_a_usage_error(rico_bin, tmp_path):
    empty = tmp_path / "empty"
    (empty / "some" / "dir").mkdir(parents=True)
    (empty / "readme.txt").write_text("nothing here")
    res = run(
        rico_bin, "bigearthnet", "--bigearthnet-s2-dir", empty, "--target-dir", tmp_path / "db"
    )
    assert res.returncode == 2
    assert f"{empty}: no patch found" in res.stderr and "--bigearthnet-s2-dir" in res.stderr
    missing = run(
        rico_bin,
        "bigearthnet",
        "--bigearthnet-s1-dir",
        tmp_path / "nope",
        "--target-dir",
        tmp_path / "db",
    )
    assert missing.returncode == 2 and str(tmp_path / "nope") in missing.stderr


def test_cli_help_explains_every_option(rico_bin):
    top = run(rico_bin, "--help")
    assert top.returncode == 0 and "bigearthnet" in top.stdout and "Exit codes" in top.stdout
    sub = run(rico_bin, "bigearthnet", "--help")
    assert sub.returncode == 0
    for flag in (
        "--bigearthnet-s1-dir",
        "--bigearthnet-s2-dir",
        "--bigearthnet-reference-maps-dir",
        "--target-dir",
        "--threads",
        "--num-workers",
        "--quiet",
    ):
        assert flag in sub.stdout, flag
    bad = run(rico_bin, "bigearthnet", "--no-such-flag")
    assert bad.returncode == 2


def test_python_m_rico_and_console_script_behave_like_the_binary(tmp_path):
    import sys

    res = subprocess.run(
        [sys.executable, "-m", "rico", "bigearthnet", "--target-dir", str(tmp_path / "db")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "give at least one of" in res.stderr
    script = Path(sys.executable).parent / "rico"
    res = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "bigearthnet" in res.stdout


def test_binary_links_no_python_and_no_gdal(rico_bin):
    ldd = subprocess.run(["ldd", str(rico_bin)], capture_output=True, text=True).stdout
    libs = [line.split()[0] for line in ldd.splitlines() if line.strip()]
    assert libs, ldd
    for lib in libs:
        assert "python" not in lib and "gdal" not in lib, lib
        assert any(
            lib.startswith(p)
            for p in (
                "linux-vdso",
                "libc.so",
                "libm.so",
                "libgcc_s",
                "/lib64/ld-linux",
                "libpthread",
                "libdl",
                "librt",
                "ld-linux",
            )
        ), lib


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ben600")
    make_dataset(root, patches=600)
    return root


def test_many_transactions_with_keys_out_of_source_order(large, tmp_path):
    """S2 patches then maps: source order is not key order (maps interleave with the patches'
    keys), over several transactions (512 records or 64 MiB each): same records, same file
    whatever the thread count."""
    kw = dict(
        bigearthnet_s2_dir=large / "BigEarthNet-S2",
        bigearthnet_reference_maps_dir=large / "Reference_Maps",
    )
    one = rico.convert("bigearthnet", tmp_path / "t1", threads=1, **kw)
    two = rico.convert("bigearthnet", tmp_path / "t2", threads=2, **kw)
    assert one.records == two.records == 1200
    assert (tmp_path / "t1" / "data.mdb").read_bytes() == (
        tmp_path / "t2" / "data.mdb"
    ).read_bytes()
    got = read_lmdb(tmp_path / "t2")
    assert len(got) == 1200
    maps = sorted(large.rglob("*_reference_map.tif"))
    for tif in maps[::97]:
        assert got[tif.stem.encode()] == save({"Data": rasterio_band(tif)})


def test_a_small_buffer_commits_more_often_and_writes_the_same_records(large, rico_bin, tmp_path):
    """``--buffer-mb`` bounds the bytes in flight and the transaction (a quarter of it): at its
    floor of 4 MB the 1,800 real-size records of 600 patches commit in about 200 transactions
    of 1 MB instead of a few; the records are the same. Below the floor it is a usage error."""
    dirs = (
        "--bigearthnet-s1-dir", large / "BigEarthNet-S1",
        "--bigearthnet-s2-dir", large / "BigEarthNet-S2",
        "--bigearthnet-reference-maps-dir", large / "Reference_Maps",
    )  # fmt: skip
    small = run(rico_bin, "bigearthnet", *dirs, "--target-dir", tmp_path / "small",
                "--buffer-mb", "4", "--quiet")  # fmt: skip
    assert small.returncode == 0, small.stderr
    default = run(rico_bin, "bigearthnet", *dirs, "--target-dir", tmp_path / "default", "--quiet")
    assert default.returncode == 0, default.stderr
    got, want = read_lmdb(tmp_path / "small"), read_lmdb(tmp_path / "default")
    assert len(got) == 1800
    assert got == want

    def transactions(path: Path) -> int:
        env = lmdb.open(str(path), readonly=True, lock=False)
        try:
            return env.info()["last_txnid"]
        finally:
            env.close()

    assert transactions(tmp_path / "small") > 100
    assert transactions(tmp_path / "default") < 30
    refused = run(rico_bin, "bigearthnet", *dirs, "--target-dir", tmp_path / "refused",
                  "--buffer-mb", "3")  # fmt: skip
    assert refused.returncode == 2
    assert "--buffer-mb" in refused.stderr
    assert not (tmp_path / "refused").exists()


def test_buffer_mb_in_python(samples, tmp_path):
    """``rico.convert(buffer_mb=)`` is the CLI's ``--buffer-mb``: at its floor, the records of
    the real samples are those of the default run; outside 4..65536 it is refused before the
    target is made."""
    root = samples / "BigEarthNet"
    kw = dict(
        bigearthnet_s2_dir=root / "BigEarthNet-S2",
        bigearthnet_s1_dir=root / "BigEarthNet-S1",
        progress=False,
    )
    rico.convert("bigearthnet", tmp_path / "small", buffer_mb=4, **kw)
    rico.convert("bigearthnet", tmp_path / "default", **kw)
    got = read_lmdb(tmp_path / "small")
    assert got and got == read_lmdb(tmp_path / "default")
    for bad in (3, 65537):
        with pytest.raises(rico.UsageError, match="buffer_mb"):
            rico.convert("bigearthnet", tmp_path / f"bad{bad}", buffer_mb=bad, **kw)
        assert not (tmp_path / f"bad{bad}").exists()
