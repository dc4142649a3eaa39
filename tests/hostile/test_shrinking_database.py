"""``data.mdb`` truncated (or rewritten in place by ``cp``) under an open reader: the next read
that meets a page past the new end raises ``rico.DataError`` naming the database, and the
process lives. Every case runs in its own interpreter, so that a regression shows as a failed
test (the child killed by SIGBUS), not as a crashed pytest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.bigearthnet import flags
from support.cli import run
from support.trees import make_dataset

PRELUDE = """
import json, os, sys
import numpy as np
import rico

def attempt(what, f):
    try:
        f()
    except rico.DataError as e:
        out[what] = ["DataError", str(e)]
    except Exception as e:
        out[what] = [type(e).__name__, str(e)]
    else:
        out[what] = ["ok", ""]

out = {}
d = sys.argv[1]
"""


def run_python(code: str, *args: object) -> subprocess.CompletedProcess:
    script = PRELUDE + textwrap.dedent(code) + "\nprint(json.dumps(out))\n"
    return subprocess.run(
        [sys.executable, "-c", script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def outcomes(res: subprocess.CompletedProcess) -> dict[str, list[str]]:
    assert res.returncode == 0, (
        f"the reader died (exit {res.returncode}"
        + (f", {signal.Signals(-res.returncode).name}" if res.returncode < 0 else "")
        + f"): {res.stderr[-3000:]}"
    )
    return json.loads(res.stdout.strip().splitlines()[-1])


def assert_data_error(outcome: list[str], names: Path) -> None:
    kind, message = outcome
    assert kind == "DataError", outcome
    assert str(names) in message, message


@pytest.fixture(scope="module")
def built(rico_bin, tmp_path_factory) -> tuple[Path, Path]:
    """A plain database of 120 records (about 12 MB) and the same records in 3 shards."""
    tree = tmp_path_factory.mktemp("ben")
    make_dataset(tree, patches=40, workers=1)
    out = tmp_path_factory.mktemp("dbs")
    for name, more in (("db", []), ("sharded", ["--shards", 3])):
        res = run(rico_bin, "bigearthnet", *flags(tree), "--target-dir", out / name, *more)
        assert res.returncode == 0, res.stderr
    return out / "db", out / "sharded"


@pytest.fixture()
def db(built, tmp_path) -> Path:
    copy = tmp_path / "db"
    shutil.copytree(built[0], copy)
    return copy


@pytest.fixture()
def sharded(built, tmp_path) -> Path:
    copy = tmp_path / "sharded"
    shutil.copytree(built[1], copy)
    return copy


# `keys` comes from another handle, so that `ds` has not listed (and kept) its keys yet.
TRUNCATE = """
keys = rico.open(d).keys()
k = keys[-1]
ds = rico.open(d)
os.truncate(os.path.join(d, "data.mdb"), os.path.getsize(os.path.join(d, "data.mdb")) // 3)
"""


def test_a_read_after_truncation_is_a_data_error_and_the_process_lives(db):
    res = run_python(
        TRUNCATE
        + """
attempt("get", lambda: ds[k])
attempt("again", lambda: ds[keys[0]])
attempt("contains", lambda: k in ds)
""",
        db,
    )
    out = outcomes(res)
    for what in ("get", "again", "contains"):
        assert_data_error(out[what], db)
    assert "truncated" in out["get"][1] or "changed" in out["get"][1], out["get"]


@pytest.mark.parametrize("call", ["keys", "batch", "len_then_keys", "info", "select", "raw"])
def test_every_kind_of_read_after_truncation_is_a_data_error(db, call):
    code = {
        "keys": 'attempt("read", lambda: ds.keys())',
        # The last reference maps: records that share their band.
        "batch": 'maps = [x for x in keys if x.endswith("reference_map")]\n'
        'attempt("read", lambda: ds.batch(maps[-8:], bands=["Data"]))',
        "len_then_keys": 'attempt("len", lambda: len(ds)); attempt("read", lambda: ds.keys())',
        "info": 'attempt("read", lambda: ds.info())',
        "select": 'attempt("read", lambda: ds.keys(bands=["B02"]))',
        "raw": 'attempt("read", lambda: ds.raw(k))',
    }[call]
    out = outcomes(run_python(TRUNCATE + code, db))
    assert_data_error(out["read"], db)


def test_a_second_open_while_the_first_lives_is_a_data_error(db):
    out = outcomes(run_python(TRUNCATE + 'attempt("open", lambda: rico.open(d))', db))
    assert_data_error(out["open"], db)


def test_record_views_made_before_the_truncation_read_zeros_then_the_next_read_raises(db):
    res = run_python(
        """
ds = rico.open(d)
k = ds.keys()[-1]
views = ds[k]
os.truncate(os.path.join(d, "data.mdb"), os.path.getsize(os.path.join(d, "data.mdb")) // 3)
sums = {band: float(np.asarray(v, dtype=np.float64).sum()) for band, v in views.items()}
out["sums"] = ["ok", json.dumps(sums)]
attempt("next", lambda: ds[k])
""",
        db,
    )
    out = outcomes(res)
    assert_data_error(out["next"], db)


def test_a_file_rewritten_in_place_like_cp_does_is_a_data_error(db, tmp_path):
    """``cp new/data.mdb db/`` truncates the file, then writes: a read meanwhile meets pages
    past the end."""
    res = run_python(
        """
keys = rico.open(d).keys()
ds = rico.open(d)
path = os.path.join(d, "data.mdb")
with open(path, "r+b") as f:
    f.truncate(0)
    f.write(b"\\0" * 8192)
attempt("get", lambda: ds[keys[-1]])
attempt("keys", lambda: ds.keys())
""",
        db,
    )
    out = outcomes(res)
    assert_data_error(out["get"], db)
    assert_data_error(out["keys"], db)


def test_a_truncated_shard_names_itself_and_the_others_still_read(sharded):
    res = run_python(
        """
ds = rico.open(d)
manifest = json.load(open(os.path.join(d, "rico-manifest.json")))
last = manifest["shards"][-1]
victim = os.path.join(d, last["path"], "data.mdb")
os.truncate(victim, os.path.getsize(victim) // 3)
attempt("victim", lambda: ds[last["last_key"]])
attempt("other", lambda: ds[manifest["shards"][0]["first_key"]])
""",
        sharded,
    )
    out = outcomes(res)
    assert_data_error(out["victim"], sharded / "shard-00002")
    assert out["other"][0] == "ok", out["other"]


def test_a_sigbus_outside_rico_s_mappings_still_ends_the_process(db, tmp_path):
    """The handler passes on what is not rico's: a file mapped by someone else that shrinks
    still gets the default action."""
    other = tmp_path / "other.bin"
    other.write_bytes(b"x" * 65536)
    res = run_python(
        """
import mmap
ds = rico.open(d)
ds[ds.keys()[0]]
f = open(sys.argv[2], "r+b")
m = mmap.mmap(f.fileno(), 65536, prot=mmap.PROT_READ)
f.truncate(4096)
m[60000]
""",
        db,
        other,
    )
    assert res.returncode == -signal.SIGBUS, (res.returncode, res.stderr[-2000:])


def test_a_handler_installed_after_rico_is_chained_on_the_next_open(db, built, tmp_path):
    """faulthandler (or a framework's worker) replacing the SIGBUS handler after rico installed
    its own: the next open puts rico's back in front, and faulthandler still reports foreign
    faults."""
    second = tmp_path / "second"
    shutil.copytree(built[0], second)
    res = run_python(
        """
import faulthandler
ds = rico.open(d)
keys = ds.keys()
faulthandler.enable()
other = rico.open(sys.argv[2])
os.truncate(os.path.join(d, "data.mdb"), os.path.getsize(os.path.join(d, "data.mdb")) // 3)
attempt("get", lambda: ds[keys[-1]])
""",
        db,
        second,
    )
    assert_data_error(outcomes(res)["get"], db)


def test_under_python_s_faulthandler_a_truncation_is_still_a_data_error(db):
    script = PRELUDE + TRUNCATE + 'attempt("get", lambda: ds[k])\nprint(json.dumps(out))\n'
    res = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", script, str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_data_error(outcomes(res)["get"], db)


def test_a_fresh_process_is_told_the_file_is_truncated(db):
    data = db / "data.mdb"
    os.truncate(data, data.stat().st_size // 3)
    out = outcomes(run_python('attempt("open", lambda: rico.open(d))', db))
    assert_data_error(out["open"], db)
