"""``--resume`` does not trust the files a sharded conversion leaves behind: a shard plan cut
short, with a line repeated or changed, or deleted (with or without its shard's directory) is
found by its checksum and planned again from the sources, so that nothing is lost; where the
sources no longer give the same plan, the run stops and names the file. ``rico verify`` checks
the manifest's counts and key ranges against what the shards hold."""

from __future__ import annotations

import json
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import rico
from support.bigearthnet import flags, sources
from support.cli import run
from support.conversions import converted, resumes_exactly, sharded_args, tree_fixtures
from support.lmdb_records import read_shards
from support.trees import make_dataset

SHARDS = 4
PLAN = "rico-plan.jsonl"


tree, clean = tree_fixtures(patches=40)


@pytest.fixture(scope="module")
def done(rico_bin, tree, tmp_path_factory) -> Path:
    """A finished conversion of the tree into 4 shards."""
    return converted(rico_bin, tree, tmp_path_factory, "--shards", SHARDS, "--quiet", name="done")


def args(tree: Path, target: Path, *more: object) -> list[object]:
    return sharded_args(tree, target, SHARDS, *more)


def shard(target: Path, i: int) -> Path:
    return target / f"shard-{i:05d}"


def interrupted(done: Path, target: Path, unfinished: tuple[int, ...] = (1, 2)) -> Path:
    """A copy of ``done`` as a conversion stopped after its first shards leaves it: the shards
    in ``unfinished`` hold their plan only, and there is no manifest yet."""
    shutil.copytree(done, target)
    (target / "rico-manifest.json").unlink()
    for i in unfinished:
        for f in shard(target, i).iterdir():
            if f.name != PLAN:
                f.unlink()
    return target


def assert_resumes_exactly(rico_bin, tree: Path, target: Path, clean) -> str:
    return resumes_exactly(rico_bin, tree, target, clean, SHARDS)


def edit_lines(path: Path, change: Callable[[list[str]], list[str]]) -> None:
    """Rewrites the lines of the plan at ``path`` after its header with ``change``."""
    header, *lines = path.read_text().splitlines()
    path.write_text("".join(line + "\n" for line in [header, *change(lines)]))


DAMAGE = {
    "16 lines cut": lambda p: edit_lines(p, lambda lines: lines[:-16]),
    "a line repeated": lambda p: edit_lines(p, lambda lines: lines[:5] + lines[4:]),
    "a line repeated in place of the next": lambda p: edit_lines(
        p, lambda lines: lines[:5] + [lines[4]] + lines[6:]
    ),
    "two lines swapped": lambda p: edit_lines(
        p, lambda lines: lines[:3] + [lines[4], lines[3]] + lines[5:]
    ),
    "cut in the middle of a line": lambda p: p.write_text(p.read_text()[: len(p.read_text()) // 2]),
    "header lost": lambda p: p.write_text(p.read_text().split("\n", 1)[1]),
    "emptied": lambda p: p.write_text(""),
    "deleted": lambda p: p.unlink(),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_plan_of_an_unfinished_shard_is_planned_again_and_nothing_is_lost(
    rico_bin, tree, clean, done, tmp_path, damage
):
    target = interrupted(done, tmp_path / "sharded")
    DAMAGE[damage](shard(target, 1) / PLAN)
    err = assert_resumes_exactly(rico_bin, tree, target, clean)
    assert "another process" not in err
    # The plan is whole again: as a clean run wrote it.
    assert (shard(target, 1) / PLAN).read_text() == (shard(done, 1) / PLAN).read_text()


def test_a_damaged_plan_of_a_finished_shard_is_planned_again(rico_bin, tree, clean, done, tmp_path):
    target = interrupted(done, tmp_path / "sharded")
    DAMAGE["16 lines cut"](shard(target, 0) / PLAN)
    assert_resumes_exactly(rico_bin, tree, target, clean)
    assert (shard(target, 0) / PLAN).read_text() == (shard(done, 0) / PLAN).read_text()


def test_a_short_plan_of_a_half_written_shard_is_planned_again(
    rico_bin, tree, clean, done, tmp_path
):
    """The shard's records are all in, its marker is not (stopped before it was written)."""
    target = interrupted(done, tmp_path / "sharded", unfinished=())
    (shard(target, 2) / "rico-shard.json").unlink()
    DAMAGE["16 lines cut"](shard(target, 2) / PLAN)
    assert_resumes_exactly(rico_bin, tree, target, clean)


@pytest.mark.parametrize("finished", [True, False])
def test_a_deleted_shard_directory_is_converted_again(
    rico_bin, tree, clean, done, tmp_path, finished
):
    target = tmp_path / "sharded"
    if finished:
        shutil.copytree(done, target)
    else:
        interrupted(done, target)
    shutil.rmtree(shard(target, 2))
    assert_resumes_exactly(rico_bin, tree, target, clean)
    assert (shard(target, 2) / PLAN).read_text() == (shard(done, 2) / PLAN).read_text()
    res = run(rico_bin, "verify", "bigearthnet", *flags(tree), "--target-dir", target)
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_shard_whose_records_are_gone_is_converted_again(rico_bin, tree, clean, done, tmp_path):
    """A finished shard's marker is not taken on trust: its database must be there and hold
    the records the marker counts."""
    target = tmp_path / "sharded"
    shutil.copytree(done, target)
    for name in ("data.mdb", "lock.mdb"):
        (shard(target, 3) / name).unlink()
    assert_resumes_exactly(rico_bin, tree, target, clean)


@pytest.mark.parametrize("damage", ["deleted", "damaged"])
def test_a_lost_root_plan_is_planned_again(rico_bin, tree, clean, done, tmp_path, damage):
    target = interrupted(done, tmp_path / "sharded")
    root_plan = target / "rico-plan.json"
    if damage == "deleted":
        root_plan.unlink()
    else:
        root_plan.write_text(root_plan.read_text()[:30])
    assert_resumes_exactly(rico_bin, tree, target, clean)
    assert json.loads(root_plan.read_text()) == json.loads((done / "rico-plan.json").read_text())


def test_a_plan_written_before_checksums_is_still_checked_by_its_counts(
    rico_bin, tree, clean, done, tmp_path
):
    """Plans without checksums (an earlier rico): a plan short of its header's count is
    planned again, since the sources give the same plan for the shards that are whole."""
    target = interrupted(done, tmp_path / "sharded")
    root_plan = json.loads((target / "rico-plan.json").read_text())
    root_plan.pop("plans", None)
    (target / "rico-plan.json").write_text(json.dumps(root_plan))
    for i in range(SHARDS):
        path = shard(target, i) / PLAN
        header, rest = path.read_text().split("\n", 1)
        old = {k: v for k, v in json.loads(header).items() if k in ("index", "shards", "patches")}
        path.write_text(json.dumps(old) + "\n" + rest)
    DAMAGE["16 lines cut"](shard(target, 1) / PLAN)
    assert_resumes_exactly(rico_bin, tree, target, clean)


def test_a_damaged_plan_the_sources_no_longer_give_stops_the_resume_naming_it(
    rico_bin, tree, done, tmp_path
):
    """Another tree (a patch more): the damaged plan cannot be made again as it was."""
    other = tmp_path / "other"
    make_dataset(other, patches=41, workers=1)
    target = interrupted(done, tmp_path / "sharded")
    plan = shard(target, 1) / PLAN
    DAMAGE["16 lines cut"](plan)
    before = plan.read_bytes()
    res = run(rico_bin, *args(other, target, "--resume"))
    assert res.returncode == 1, res.stderr
    assert str(plan) in res.stderr and "damaged" in res.stderr, res.stderr
    assert "sources" in res.stderr and "new directory" in res.stderr, res.stderr
    assert plan.read_bytes() == before  # left as it was found
    assert not (target / "rico-manifest.json").exists()


def test_a_cluster_task_with_a_damaged_plan_refuses_and_says_to_resume(tree, done, tmp_path):
    """A task reads only its shard's plan: it checks it, and its error says how to mend it."""
    target = interrupted(done, tmp_path / "sharded")
    plan = shard(target, 1) / PLAN
    srcs = {k: str(v) for k, v in sources(tree).items()}
    for damage in ("16 lines cut", "deleted"):
        DAMAGE[damage](plan)
        with pytest.raises(rico.RicoError) as e:
            rico._rico.convert(
                "bigearthnet", str(target), srcs, resume=True, shards=SHARDS, shard_index=1
            )
        assert str(plan) in str(e.value), str(e.value)
        assert "resume" in str(e.value) and "plan the shards first" not in str(e.value)
        assert not (shard(target, 1) / "data.mdb").exists()
    # The client's planning step (what rico.convert(..., client=..., resume=True) runs first)
    # plans it again.
    assert rico._rico.plan_shards("bigearthnet", str(target), srcs, resume=True, shards=SHARDS)
    assert plan.read_text() == (shard(done, 1) / PLAN).read_text()


def test_plans_carry_a_checksum_of_their_lines(done):
    root = json.loads((done / "rico-plan.json").read_text())
    assert len(root["plans"]) == SHARDS
    for i in range(SHARDS):
        header, body = (shard(done, i) / PLAN).read_text().split("\n", 1)
        meta = json.loads(header)
        assert meta["crc32"] == zlib.crc32(body.encode()) == root["plans"][i]["crc32"]
        assert meta["lines"] == body.count("\n") == root["plans"][i]["lines"]
        assert meta["patches"] == root["plans"][i]["patches"]


# -- verify checks the manifest ------------------------------------------------------------------


def change_manifest(target: Path, change: Callable[[dict], None]) -> None:
    path = target / "rico-manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2))


def fewer(m: dict) -> None:
    m["shards"][1]["records"] -= 1


def fewer_in_all(m: dict) -> None:
    m["shards"][1]["records"] -= 1
    m["records"] -= 1


def total(m: dict) -> None:
    m["records"] += 5


def first_key(m: dict) -> None:
    m["shards"][2]["first_key"] = m["shards"][1]["first_key"]


def last_key(m: dict) -> None:
    m["shards"][2]["last_key"] = "S2"


def dropped(m: dict) -> None:
    del m["shards"][3]
    m["records"] -= 30


def swapped(m: dict) -> None:
    m["shards"][0], m["shards"][1] = m["shards"][1], m["shards"][0]


@pytest.mark.parametrize(
    "change, named",
    [
        pytest.param(fewer, "shard-00001", id="a shard's count"),
        pytest.param(fewer_in_all, "shard-00001", id="a shard's count and the total"),
        pytest.param(total, "records", id="the total"),
        pytest.param(first_key, "shard-00002", id="a first key"),
        pytest.param(last_key, "shard-00002", id="a last key"),
        pytest.param(dropped, "shard-00003", id="a shard left out"),
        pytest.param(swapped, "shard-00000", id="two shards swapped"),
    ],
)
def test_verify_finds_a_manifest_that_disagrees_with_the_shards(
    rico_bin, tree, done, tmp_path, change, named
):
    target = tmp_path / "sharded"
    shutil.copytree(done, target)
    res = run(rico_bin, "verify", "bigearthnet", *flags(tree), "--target-dir", target)
    assert res.returncode == 0, res.stdout + res.stderr
    change_manifest(target, change)
    res = run(rico_bin, "verify", "bigearthnet", *flags(tree), "--target-dir", target)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "manifest" in res.stdout and named in res.stdout, res.stdout
    report = rico.verify("bigearthnet", target, **sources(tree))
    assert not report["ok"] and report["manifest"], report
    # A resume writes the manifest again from the shards.
    res = run(rico_bin, *args(tree, target, "--resume", "--quiet"))
    assert res.returncode == 0, res.stderr
    res = run(rico_bin, "verify", "bigearthnet", *flags(tree), "--target-dir", target)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (target / "rico-manifest.json").read_text() == (done / "rico-manifest.json").read_text()


def test_verify_finds_a_shard_marker_that_disagrees_with_its_shard(rico_bin, tree, done, tmp_path):
    target = tmp_path / "sharded"
    shutil.copytree(done, target)
    path = shard(target, 1) / "rico-shard.json"
    marker = json.loads(path.read_text())
    marker["records"] += 2
    path.write_text(json.dumps(marker))
    res = run(rico_bin, "verify", "bigearthnet", *flags(tree), "--target-dir", target)
    assert res.returncode == 1 and "shard-00001" in res.stdout, res.stdout + res.stderr
    # A resume does not take the marker's word either.
    assert_resumes_exactly(rico_bin, tree, target, read_lmdb_all(done))
    assert json.loads(path.read_text()) == json.loads(
        (shard(done, 1) / "rico-shard.json").read_text()
    )


def read_lmdb_all(target: Path) -> dict[bytes, bytes]:
    merged: dict[bytes, bytes] = {}
    for part in read_shards(target):
        merged.update(part)
    return merged
