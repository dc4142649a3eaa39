"""A sharded conversion stopped while it plans (killed, or out of space) leaves a target that
``--resume`` with the same ``--shards`` recognises, plans again and finishes to exactly the
records of a clean conversion; a second planner is told that another process is writing."""

from __future__ import annotations

import fcntl
import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import rico
from support.bigearthnet import flags
from support.cli import kill_when, run
from support.conversions import resumes_exactly, sharded_args, tree_fixtures

SHARDS = 4


tree, clean = tree_fixtures(patches=40)


@pytest.fixture(scope="module")
def planned(tree, tmp_path_factory) -> Path:
    """A complete plan of the tree into 4 shards (no shard converted): the files an interrupted
    planner leaves are made from it."""
    target = tmp_path_factory.mktemp("planned") / "db"
    srcs = {
        "bigearthnet-s1-dir": str(tree / "BigEarthNet-S1"),
        "bigearthnet-s2-dir": str(tree / "BigEarthNet-S2"),
        "bigearthnet-reference-maps-dir": str(tree / "Reference_Maps"),
    }
    assert rico._rico.plan_shards("bigearthnet", str(target), srcs, shards=SHARDS) == 120
    return target


def args(tree: Path, target: Path, *more: object) -> list[object]:
    return sharded_args(tree, target, SHARDS, *more)


def assert_resumes_exactly(rico_bin, tree: Path, target: Path, clean) -> None:
    resumes_exactly(rico_bin, tree, target, clean, SHARDS)
    assert not (target / "rico-plan.spool").exists()


def spool_lines(planned: Path) -> list[str]:
    """The spool a planner writes: every shard's plan lines, without the headers."""
    lines = []
    for i in range(SHARDS):
        lines += (planned / f"shard-{i:05d}" / "rico-plan.jsonl").read_text().splitlines()[1:]
    return lines


# -- killed --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    ["spool", "first shard plan"],
)
def test_a_run_killed_while_planning_says_resume_and_resumes_exactly(
    rico_bin, tree, clean, tmp_path, moment
):
    target = tmp_path / "sharded"
    ready = {
        "spool": (target / "rico-plan.spool").exists,
        "first shard plan": (target / "shard-00000" / "rico-plan.jsonl").exists,
    }[moment]
    kill_when(ready, rico_bin, *args(tree, target, "--threads", 1, "--quiet"), poll=0.0005)
    assert not (target / "rico-manifest.json").exists()
    # Without --resume: the target is named for what it is, and the hint says how to finish.
    res = run(rico_bin, *args(tree, target))
    assert res.returncode == 2, res.stderr
    assert "holds no sharded rico dataset" not in res.stderr, res.stderr
    assert "--resume" in res.stderr, res.stderr
    # A plain conversion into it is told it is a sharded target.
    res = run(rico_bin, "bigearthnet", *flags(tree), "--target-dir", target, "--resume")
    assert res.returncode == 2 and "sharded" in res.stderr, res.stderr
    assert_resumes_exactly(rico_bin, tree, target, clean)


def test_runs_killed_20_to_150_ms_after_start_all_resume_exactly(rico_bin, tree, clean, tmp_path):
    for i, delay in enumerate([0.0, 0.005, 0.01, 0.02, 0.035, 0.05, 0.07, 0.09, 0.12, 0.15]):
        target = tmp_path / f"sharded{i}"
        proc = subprocess.Popen(
            [str(a) for a in [rico_bin, *args(tree, target, "--threads", 1, "--quiet")]],
            stderr=subprocess.PIPE,
        )
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert_resumes_exactly(rico_bin, tree, target, clean)


# -- the states an interrupted planner leaves ----------------------------------------------------


def leave_spool_only(planned: Path, target: Path, lines: int | None) -> None:
    target.mkdir()
    text = "".join(line + "\n" for line in spool_lines(planned)[:lines])
    if lines is not None:
        text += spool_lines(planned)[lines][:37]  # a line cut in the middle
    (target / "rico-plan.spool").write_text(text)


def leave_some_shard_plans(planned: Path, target: Path) -> None:
    leave_spool_only(planned, target, None)
    shutil.copytree(planned / "shard-00000", target / "shard-00000")
    (target / "shard-00001").mkdir()
    text = (planned / "shard-00001" / "rico-plan.jsonl").read_text()
    (target / "shard-00001" / "rico-plan.jsonl.tmp").write_text(text[: len(text) // 2])


def leave_every_shard_plan(planned: Path, target: Path) -> None:
    shutil.copytree(planned, target)
    (target / "rico-plan.json").unlink()
    (target / "rico-plan.json.tmp").write_text('{"format": "rico-pl')


def leave_plan_and_spool(planned: Path, target: Path) -> None:
    shutil.copytree(planned, target)
    (target / "rico-plan.spool").write_text("\n".join(spool_lines(planned)) + "\n")


@pytest.mark.parametrize(
    "leave",
    [
        lambda planned, target: leave_spool_only(planned, target, 0),
        lambda planned, target: leave_spool_only(planned, target, 50),
        lambda planned, target: leave_spool_only(planned, target, None),
        leave_some_shard_plans,
        leave_every_shard_plan,
        leave_plan_and_spool,
    ],
    ids=[
        "empty spool",
        "half a spool",
        "whole spool",
        "some shard plans",
        "every shard plan, no root plan",
        "root plan and a stale spool",
    ],
)
def test_every_state_a_stopped_planner_leaves_resumes_exactly(
    rico_bin, tree, clean, planned, tmp_path, leave
):
    target = tmp_path / "sharded"
    leave(planned, target)
    res = run(rico_bin, *args(tree, target))
    assert res.returncode == 2 and "--resume" in res.stderr, res.stderr
    assert_resumes_exactly(rico_bin, tree, target, clean)


def test_a_resume_with_another_shards_after_a_stop_in_the_cut_is_refused(
    rico_bin, tree, planned, tmp_path
):
    target = tmp_path / "sharded"
    leave_some_shard_plans(planned, target)
    res = run(
        rico_bin, "bigearthnet", *flags(tree), "--target-dir", target, "--shards", 3, "--resume"
    )
    assert res.returncode == 2 and "--shards 4" in res.stderr, res.stderr


def test_a_second_planner_is_told_another_process_is_writing(rico_bin, tree, clean, tmp_path):
    target = tmp_path / "sharded"
    target.mkdir()
    with open(target / "rico-plan.spool", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        for more in ([], ["--resume"]):
            res = run(rico_bin, *args(tree, target, *more))
            assert res.returncode == 3, res.stderr
            assert f"another process is writing into {target}" in res.stderr, res.stderr
    assert_resumes_exactly(rico_bin, tree, target, clean)


# -- out of space --------------------------------------------------------------------------------


def test_a_file_size_limit_while_planning_says_so_and_resume_finishes(
    rico_bin, tree, clean, tmp_path
):
    target = tmp_path / "sharded"

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))

    res = run(rico_bin, *args(tree, target), preexec_fn=small_files)
    assert res.returncode == 3, res.stderr
    assert "cannot write the plan" in res.stderr and "file-size limit" in res.stderr, res.stderr
    assert "--resume" in res.stderr, res.stderr
    # The spool's space is given back; the target this run created is gone or empty.
    assert not target.exists() or not any(target.iterdir())
    assert_resumes_exactly(rico_bin, tree, target, clean)


@pytest.fixture()
def small_disk(tmp_path):
    """A 16 KiB tmpfs (root only: skipped where mounting is not permitted)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_while_planning_says_so_and_resume_finishes_once_freed(
    rico_bin, tree, clean, small_disk
):
    target = small_disk / "sharded"
    os.mkdir(target)  # a target made beforehand stays
    res = run(rico_bin, *args(tree, target))
    assert res.returncode == 3, res.stderr
    assert "cannot write the plan" in res.stderr and "disk is full" in res.stderr, res.stderr
    assert "--resume" in res.stderr, res.stderr
    assert not any(target.iterdir())
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    assert_resumes_exactly(rico_bin, tree, target, clean)
