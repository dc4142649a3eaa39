"""Conversion at scale and against hostile input: streamed planning, shard plans, resumes with
another cut, FIFOs, non-UTF-8 names, two writers, a skipped-patches report that stays true."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import rico
from support.bigearthnet import cli_args, flags
from support.cli import kill_when, run
from support.conversions import tree_fixtures
from support.lmdb_records import read_lmdb, read_shards, write_records

tree, clean = tree_fixtures(patches=40)


@pytest.fixture()
def damaged(tree, tmp_path) -> Path:
    out = tmp_path / "src"
    shutil.copytree(tree, out)
    return out


def patch_dir(src: Path, index: int) -> Path:
    return sorted(p for p in (src / "BigEarthNet-S2").glob("*/*") if p.is_dir())[index]


# -- streamed planning ---------------------------------------------------------------------------


@pytest.mark.parametrize("threads", ["1", "2", "3"])
def test_streamed_conversion_equals_the_clean_run_whatever_the_threads_and_io_depth(
    rico_bin, tree, clean, tmp_path, threads
):
    target = tmp_path / "db"
    depth = {"1": "1", "2": "7", "3": "64"}[threads]
    res = run(rico_bin, *cli_args(tree, target, "--threads", threads, "--io-depth", depth))
    assert res.returncode == 0, res.stderr
    assert "records/s" in res.stderr and "patches/s" not in res.stderr
    assert read_lmdb(target) == clean
    assert len(clean) == 120


def test_a_missing_band_stops_at_its_patch_and_resume_finishes_exactly(
    rico_bin, damaged, clean, tmp_path
):
    victim = patch_dir(damaged, 5) / f"{patch_dir(damaged, 5).name}_B11.tif"
    saved = victim.read_bytes()
    victim.unlink()
    target = tmp_path / "db"
    res = run(rico_bin, "bigearthnet", *flags(damaged), "--target-dir", target)
    assert res.returncode == 1
    assert victim.parent.name in res.stderr and "B11" in res.stderr
    partial = read_lmdb(target)
    assert victim.parent.name.encode() not in partial
    assert all(clean[k] == v for k, v in partial.items())
    victim.write_bytes(saved)
    res = run(rico_bin, "bigearthnet", *flags(damaged), "--target-dir", target, "--resume")
    assert res.returncode == 0, res.stderr
    assert read_lmdb(target) == clean


def test_an_empty_source_leaves_no_target_behind(rico_bin, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run(
        rico_bin, "bigearthnet", "--bigearthnet-s2-dir", empty, "--target-dir", tmp_path / "db"
    )
    assert res.returncode == 2 and "no patch found" in res.stderr
    assert not (tmp_path / "db").exists()


# -- hostile input -------------------------------------------------------------------------------


def test_a_fifo_named_like_a_band_file_is_an_error_naming_it_or_skipped(
    rico_bin, damaged, clean, tmp_path
):
    victim = patch_dir(damaged, 2) / f"{patch_dir(damaged, 2).name}_B04.tif"
    victim.unlink()
    os.mkfifo(victim)
    res = run(rico_bin, "bigearthnet", *flags(damaged), "--target-dir", tmp_path / "a")
    assert res.returncode == 1
    assert str(victim) in res.stderr and "FIFO" in res.stderr, res.stderr
    res = run(
        rico_bin, "bigearthnet", *flags(damaged), "--target-dir", tmp_path / "b", "--skip-invalid"
    )
    assert res.returncode == 0, res.stderr
    got = read_lmdb(tmp_path / "b")
    assert got == {k: v for k, v in clean.items() if k != victim.parent.name.encode()}
    report = (tmp_path / "b" / "rico-skipped.tsv").read_text()
    assert victim.parent.name in report and "FIFO" in report


def test_a_non_utf8_directory_name_is_named_escaped_and_skippable(
    rico_bin, damaged, clean, tmp_path
):
    good = patch_dir(damaged, 3)
    bad = os.path.join(os.fsencode(good.parent), b"odd\xe9name")
    os.mkdir(bad)
    shutil.copy(good / f"{good.name}_B01.tif", os.fsdecode(bad) + "/x_B01.tif")
    res = run(rico_bin, "bigearthnet", *flags(damaged), "--target-dir", tmp_path / "a")
    assert res.returncode == 1
    assert "odd\\xE9name" in res.stderr and "not valid UTF-8" in res.stderr, res.stderr
    assert "No such file" not in res.stderr
    res = run(
        rico_bin, "bigearthnet", *flags(damaged), "--target-dir", tmp_path / "b", "--skip-invalid"
    )
    assert res.returncode == 0, res.stderr
    assert read_lmdb(tmp_path / "b") == clean
    report = (tmp_path / "b" / "rico-skipped.tsv").read_text()
    assert "odd\\xE9name" in report


def test_a_second_writer_is_told_another_process_is_writing(rico_bin, tree, clean, tmp_path):
    target = tmp_path / "db"
    res = run(rico_bin, "bigearthnet", *flags(tree), "--target-dir", target)
    assert res.returncode == 0
    # Another conversion holds the target (its writer lock) while this one resumes.
    with open(target / "data.mdb", "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        res = run(rico_bin, "bigearthnet", *flags(tree), "--target-dir", target, "--resume")
    assert res.returncode == 3
    assert f"another process is writing into {target}" in res.stderr, res.stderr
    assert "MDB_MAP_RESIZED" not in res.stderr
    assert read_lmdb(target) == clean


def test_two_conversions_at_once_one_writes_the_other_says_why(rico_bin, tree, clean, tmp_path):
    target = tmp_path / "db"
    run(
        rico_bin,
        "bigearthnet",
        "--bigearthnet-s1-dir",
        tree / "BigEarthNet-S1",
        "--target-dir",
        target,
    )
    cmd = [str(rico_bin), "bigearthnet", *flags(tree), "--target-dir", str(target)]
    cmd += ["--resume", "--threads", "1"]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[1] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0
    if codes[1] != 0:  # they overlapped: the loser says why
        loser = outs[[p.returncode for p in procs].index(codes[1])]
        assert "another process is writing into" in loser, loser
    assert read_lmdb(target) == clean


def test_the_skipped_report_stays_true_after_the_file_is_fixed(rico_bin, damaged, clean, tmp_path):
    victim = patch_dir(damaged, 6) / f"{patch_dir(damaged, 6).name}_B08.tif"
    saved = victim.read_bytes()
    victim.write_bytes(saved[:100])
    other = patch_dir(damaged, 9) / f"{patch_dir(damaged, 9).name}_B02.tif"
    other_saved = other.read_bytes()
    other.write_bytes(other_saved[:50])
    target = tmp_path / "db"
    args = ["bigearthnet", *flags(damaged), "--target-dir", target]
    assert run(rico_bin, *args, "--skip-invalid").returncode == 0
    report = target / "rico-skipped.tsv"
    assert victim.parent.name in report.read_text() and other.parent.name in report.read_text()
    # Fix one file, resume with --skip-invalid: the fixed patch leaves the list, the other stays.
    victim.write_bytes(saved)
    assert run(rico_bin, *args, "--skip-invalid", "--resume").returncode == 0
    text = report.read_text()
    assert victim.parent.name not in text and other.parent.name in text
    # Fix the other, resume without --skip-invalid: nothing is skipped, so no report remains.
    other.write_bytes(other_saved)
    res = run(rico_bin, *args, "--resume")
    assert res.returncode == 0, res.stderr
    assert not report.exists()
    assert read_lmdb(target) == clean


# -- shards --------------------------------------------------------------------------------------


def test_shard_plans_cut_the_tree_once_and_a_task_needs_only_its_plan(
    rico_bin, damaged, clean, tmp_path
):
    target = tmp_path / "sharded"
    srcs = {
        "bigearthnet-s1-dir": str(damaged / "BigEarthNet-S1"),
        "bigearthnet-s2-dir": str(damaged / "BigEarthNet-S2"),
        "bigearthnet-reference-maps-dir": str(damaged / "Reference_Maps"),
    }
    n = rico._rico.plan_shards("bigearthnet", str(target), srcs, shards=4)
    assert n == 120
    plan = json.loads((target / "rico-plan.json").read_text())
    assert plan["shards"] == 4 and plan["patches"] == 120
    headers = [
        json.loads((target / f"shard-{i:05d}" / "rico-plan.jsonl").read_text().splitlines()[0])
        for i in range(4)
    ]
    assert [h["patches"] for h in headers] == [30, 30, 30, 30]
    # A patch added after planning: a task that walked the tree again would convert it.
    late = patch_dir(damaged, 0).parent / (patch_dir(damaged, 0).name[:-4] + "_99_99")
    shutil.copytree(patch_dir(damaged, 0), late)
    for f in late.iterdir():
        f.rename(late / f.name.replace(patch_dir(damaged, 0).name, late.name))
    for i in range(4):
        rico._rico.convert(
            "bigearthnet", str(target), srcs, shards=4, shard_index=i, progress=False
        )
    rico._rico.write_manifest(str(target), "bigearthnet", 4)
    merged: dict[bytes, bytes] = {}
    for part in read_shards(target):
        merged.update(part)
    assert merged == clean


def test_a_resume_with_another_number_of_shards_is_refused(rico_bin, tree, clean, tmp_path):
    target = tmp_path / "sharded"
    args = ["bigearthnet", *flags(tree), "--target-dir", target]
    first_shard = (target / "shard-00000" / "data.mdb").exists
    kill_when(first_shard, rico_bin, *args, "--shards", 4, "--threads", 1, "--quiet")
    res = run(rico_bin, *args, "--shards", "3", "--resume")
    assert res.returncode == 2
    assert "cut into 4 shards, not 3" in res.stderr and "--shards 4" in res.stderr, res.stderr
    # The cut is in the shard directories even without the root's plan or any marker.
    (target / "rico-plan.json").unlink()
    for marker in target.glob("shard-*/rico-shard.json"):
        marker.unlink()
    res = run(rico_bin, *args, "--shards", "5", "--resume")
    assert res.returncode == 2 and "cut into 4 shards" in res.stderr, res.stderr


def test_a_resume_with_the_same_shards_is_exact(rico_bin, tree, clean, tmp_path):
    target = tmp_path / "sharded"
    args = ["bigearthnet", *flags(tree), "--target-dir", target, "--shards", "4"]
    second_shard = (target / "shard-00001" / "data.mdb").exists
    kill_when(second_shard, rico_bin, *args, "--threads", 1, "--quiet")
    res = run(rico_bin, *args, "--resume")
    assert res.returncode == 0, res.stderr
    parts = read_shards(target)
    assert sum(map(len, parts)) == len(clean)
    merged: dict[bytes, bytes] = {}
    for part in parts:
        assert not set(part) & set(merged)
        merged.update(part)
    assert merged == clean


def test_an_unfinished_sharded_target_resumed_without_shards_says_how(rico_bin, tree, tmp_path):
    target = tmp_path / "sharded"
    args = ["bigearthnet", *flags(tree), "--target-dir", target]
    assert run(rico_bin, *args, "--shards", "3").returncode == 0
    (target / "rico-manifest.json").unlink()
    (target / "shard-00002" / "rico-shard.json").unlink()
    res = run(rico_bin, *args, "--resume")
    assert res.returncode == 2
    assert "sharded dataset" in res.stderr and "--shards 3 --resume" in res.stderr, res.stderr
    assert "holds no LMDB database" not in res.stderr


def test_verify_catches_records_outside_their_shard_and_in_two_shards(rico_bin, tree, tmp_path):
    target = tmp_path / "sharded"
    args = ["bigearthnet", *flags(tree), "--target-dir", target]
    assert run(rico_bin, *args, "--shards", "3").returncode == 0
    ok = run(rico_bin, "verify", *args)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # Copy a record of shard 2 into shard 0: it is outside shard 0's range and in two shards.
    key, value = next(iter(read_lmdb(target / "shard-00002").items()))
    write_records(target / "shard-00000", {key: value})
    res = run(rico_bin, "verify", *args)
    assert res.returncode == 1
    shown = key.decode()
    assert f"outside its shard: {shown} (shard 0)" in res.stdout, res.stdout
    assert f"in more than one shard: {shown} (shards 0, 2)" in res.stdout, res.stdout
