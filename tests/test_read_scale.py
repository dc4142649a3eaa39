"""Reading at the users' scale: caller buffers and the loader's buffer ring, worker processes
(fork and spawn), damaged databases, writes into views, zero-copy into torch and JAX.

Whatever could crash or hang runs in a subprocess with a timeout, so that a crash fails the
test instead of ending pytest."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import lmdb
import numpy as np
import pytest
import rico
from safetensors.numpy import load
from support.lmdb_records import write_records

BANDS = {"B02": 120, "B03": 120, "B05": 60, "B09": 20}
KEYS = [
    f"S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_{i:02d}_{j:02d}"
    for i in range(8)
    for j in range(5)
]


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> tuple[Path, dict[str, dict[str, np.ndarray]]]:
    """40 S2-shaped records written as the reference tool writes them (py-lmdb + safetensors)."""
    rng = np.random.default_rng(11)
    records = {
        k: {b: rng.integers(0, 12000, (s, s), dtype=np.uint16) for b, s in BANDS.items()}
        for k in KEYS
    }
    path = tmp_path_factory.mktemp("scale") / "db"
    write_records(path, records)
    return path, records


def expected(records, keys, size=120) -> np.ndarray:
    """The batch by numpy: nearest upsampling by integer factors."""
    out = np.empty((len(keys), len(BANDS), size, size), np.float32)
    for n, k in enumerate(keys):
        for c, b in enumerate(BANDS):
            a = records[k][b]
            f = size // a.shape[0]
            out[n, c] = a.repeat(f, 0).repeat(f, 1)
    return out


def run_script(code: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter; a crash or hang shows as the return code."""
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **env},
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the script hung (over {timeout} s): {e.stdout}\n{e.stderr}")


# -- caller buffers and the ring -------------------------------------------------------------


def test_batch_fills_a_callers_buffer(db):
    path, records = db
    ds = rico.open(path)
    keys = KEYS[:7]
    buf = np.full((7, 4, 120, 120), np.nan, np.float32)
    got = ds.batch(keys, list(BANDS), size=120, out=buf)
    assert got is buf
    assert np.array_equal(buf, expected(records, keys))
    # Reused for other keys: every element is overwritten.
    ds.batch(KEYS[7:14], list(BANDS), size=120, out=buf)
    assert np.array_equal(buf, expected(records, KEYS[7:14]))
    wide = np.empty((7, 4, 120, 120), np.float64)
    ds.batch(keys, list(BANDS), size=120, dtype="float64", out=wide)
    assert np.array_equal(wide, expected(records, keys).astype(np.float64))


def test_batch_fills_a_channel_range_of_a_bigger_batch(db):
    # Two band groups into one (N, 7, H, W) array: each group's channels are a range of it.
    path, records = db
    ds = rico.open(path)
    keys = KEYS[:5]
    big = np.full((5, 7, 120, 120), np.nan, np.float32)
    first, second = list(BANDS)[:3], list(BANDS)
    assert ds.batch(keys, first, size=120, out=big[:, 0:3]).base is big
    ds.batch(keys, second, size=120, out=big[:, 3:7])
    want = expected(records, keys)
    assert big[:, 0:3].tobytes() == want[:, :3].tobytes()
    assert big[:, 3:7].tobytes() == want.tobytes()
    # One sample, and the last channels of a float64 batch.
    one = np.full((1, 9, 120, 120), np.nan, np.float64)
    ds.batch(keys[:1], second, size=120, dtype="float64", out=one[:, 5:9])
    assert one[:, 5:9].tobytes() == want[:1].astype(np.float64).tobytes()
    assert np.isnan(one[:, :5]).all()


def test_prefetcher_writes_extra_parts_after_the_first_in_one_batch(db):
    path, records = db
    ds = rico.open(path)
    batches = [KEYS[0:3], KEYS[3:6], KEYS[6:7]]
    names = list(BANDS)
    got = list(
        rico._rico.Prefetcher(
            ds.db, batches, names[:1], size=120,
            extra=[(batches, names[2:], [1.0, 2.0], [2.0, 4.0])],
        )
    )  # fmt: skip
    assert [b.shape for b in got] == [(3, 3, 120, 120), (3, 3, 120, 120), (1, 3, 120, 120)]
    for keys, b in zip(batches, got):
        want = expected(records, keys)
        assert b[:, :1].tobytes() == want[:, :1].tobytes()
        normalised = (want[:, 2:] - np.array([1, 2], np.float32)[None, :, None, None]) * np.array(
            [0.5, 0.25], np.float32
        )[None, :, None, None]
        assert b[:, 1:].tobytes() == normalised.tobytes()
    # Parts of other native sizes without size=: the error names both records and bands.
    mixed = rico._rico.Prefetcher(ds.db, batches, ["B02"], extra=[(batches, ["B05"], None, None)])
    with pytest.raises(
        rico.UsageError, match=r"B02\) is 120x120 but record .* \(band B05\) is 60x60"
    ):
        next(iter(mixed))
    with pytest.raises(rico.UsageError, match="same sizes"):
        rico._rico.Prefetcher(
            ds.db, batches, names[:1], size=120, extra=[(batches[:2], names[2:], None, None)]
        )


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.empty((7, 4, 120, 120), np.float64), "numpy array of f32"),
        (np.empty((6, 4, 120, 120), np.float32), "shape"),
        (np.empty((7, 4, 120, 240), np.float32)[..., ::2], "C-contiguous"),
        (np.empty((7, 120, 120, 4), np.float32).transpose(0, 3, 1, 2), "C-contiguous"),
        (np.empty((7, 8, 120, 120), np.float32)[:, ::2], "C-contiguous"),
        (np.empty((7, 4, 120, 120), np.float32)[::-1], "overlap"),
        ([0.0] * 10, "numpy array"),
    ],
)
def test_batch_refuses_a_wrong_buffer(db, bad, words):
    path, _ = db
    ds = rico.open(path)
    with pytest.raises(rico.UsageError, match=words):
        ds.batch(KEYS[:7], list(BANDS), size=120, out=bad)


def test_batch_refuses_a_read_only_buffer(db):
    path, _ = db
    buf = np.zeros((2, 4, 120, 120), np.float32)
    buf.flags.writeable = False
    with pytest.raises(rico.UsageError, match="cannot be written"):
        rico.open(path).batch(KEYS[:2], list(BANDS), size=120, out=buf)
    assert not buf.any()


def test_batches_are_aligned_and_values_exact(db):
    path, records = db
    ds = rico.open(path)
    for n in (1, 3, 32):
        x = ds.batch(KEYS[:n], list(BANDS), size=120)
        assert x.ctypes.data % 64 == 0 and x.flags.writeable and x.flags.c_contiguous
        assert np.array_equal(x, expected(records, KEYS[:n]))


@pytest.mark.parametrize("keep", [0, 1, 3])
def test_loader_ring_keeps_the_promised_batches(db, keep):
    path, records = db
    ds = rico.open(path)
    loader = rico.Loader(ds, bands=list(BANDS), size=120, batch_size=3, seed=5, keep=keep)
    seen, groups = [], []
    for epoch in range(3):  # the ring is reused across epochs
        loader.set_epoch(epoch)
        order = [KEYS[i] for i in loader.indices()]
        groups += [order[i : i + 3] for i in range(0, len(order), 3)]
        for x in loader:
            assert x.ctypes.data % 64 == 0
            seen.append(x)
            # This batch and the `keep` before it are intact, across epochs too.
            i = len(seen) - 1
            for j in range(max(0, i - keep), i + 1):
                assert np.array_equal(seen[j], expected(records, groups[j])), (epoch, i, j)
        assert len(seen) == len(groups) == 14 * (epoch + 1)
    # The ring has keep + 1 + prefetch buffers, reused: not one per batch.
    assert len({s.ctypes.data for s in seen}) <= keep + 1 + loader.prefetch


def test_loader_left_unfinished_then_started_again(db):
    path, records = db
    loader = rico.Loader(rico.open(path), bands=list(BANDS), size=120, batch_size=4, shuffle=False)
    first = iter(loader)
    next(first)
    # A second iteration while the first is suspended: the first is closed, not deadlocked.
    for i, x in enumerate(loader):
        assert np.array_equal(x, expected(records, KEYS[4 * i : 4 * i + 4]))
    with pytest.raises(RuntimeError, match="closed"):
        next(first)


# -- zero-copy into torch and JAX ------------------------------------------------------------


def test_batches_shared_with_torch_and_jax(db):
    torch = pytest.importorskip("torch")
    jnp = pytest.importorskip("jax.numpy")
    path, records = db
    ds = rico.open(path)
    batches = [ds.batch(KEYS[:5], list(BANDS), size=120)]
    batches += list(rico.Loader(ds, bands=list(BANDS), size=120, batch_size=16, shuffle=False))
    for x in batches:
        t = torch.from_dlpack(x)
        assert t.data_ptr() == x.ctypes.data
        j = jnp.from_dlpack(x)
        assert j.unsafe_buffer_pointer() == x.ctypes.data
        assert np.array_equal(np.asarray(j), x)


# -- writes into views and batches never kill the process -------------------------------------


def test_in_place_ops_on_views_and_batches(db):
    path, records = db
    key = KEYS[3]
    r = run_script(
        f"""
        import warnings
        import numpy as np, torch, rico
        warnings.simplefilter("ignore")
        ds = rico.open({str(path)!r})
        rec = ds[{key!r}]
        assert not rec["B02"].flags.writeable
        try:
            rec["B02"][0, 0] = 1
            raise SystemExit("numpy wrote into a read-only view")
        except ValueError:
            pass
        a = torch.from_numpy(rec["B02"]).to(torch.int32)  # a copy: fine anyway
        before = int(rec["B03"][0, 0])
        # uint16 tensors lack arithmetic in torch: write through an int16 view of the memory.
        t = torch.from_numpy(rec["B03"].view(np.int16))
        t.sub_(1)
        assert int(rec["B03"][0, 0]) == (before - 1) % 65536  # the view shows its own write
        d = torch.from_dlpack(rec["B05"]).view(torch.int16)
        d.mul_(2)
        d.zero_()
        assert not rec["B05"].any()
        again = ds[{key!r}]  # a new read sees the stored values, not the writes
        print(repr(again["B03"].tobytes().hex()[:64]))
        print(repr(again["B05"].tobytes().hex()[:64]))
        x = ds.batch([{key!r}], ["B02", "B03"], size=120)
        tx = torch.from_numpy(x); tx.sub_(5).mul_(0.5)
        ty = torch.from_dlpack(x); ty.add_(1)
        for y in rico.Loader(ds, bands=["B02"], size=120, batch_size=8):
            torch.from_dlpack(y).mul_(3)
            torch.from_numpy(y).sub_(1)
        print("ok")
        """
    )
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    lines = r.stdout.split()
    assert lines[-1] == "ok"
    assert lines[0].strip("'") == records[key]["B03"].tobytes().hex()[:64]
    assert lines[1].strip("'") == records[key]["B05"].tobytes().hex()[:64]
    # Nothing reached the file.
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        stored = load(txn.get(key.encode()))
    env.close()
    for b in BANDS:
        assert np.array_equal(stored[b], records[key][b])


# -- worker processes --------------------------------------------------------------------------


def test_forked_child_after_batches_and_loader(db):
    """The parent used ds.batch (rayon threads) and a Loader, then forks: the child reads."""
    path, records = db
    want = expected(records, KEYS[:6])
    np.save(path.parent / "want.npy", want)
    r = run_script(
        f"""
        import os, numpy as np, rico
        path = {str(path)!r}
        keys = {KEYS[:6]!r}
        want = np.load({str(path.parent / "want.npy")!r})
        ds = rico.open(path)
        assert np.array_equal(ds.batch(keys, {list(BANDS)!r}, size=120, threads=2), want)
        loader = rico.Loader(ds, bands={list(BANDS)!r}, size=120, batch_size=6, shuffle=False, threads=2)
        for x in loader:
            pass
        view = ds[keys[0]]["B02"]
        pid = os.fork()
        if pid == 0:
            try:
                ok = np.array_equal(ds.batch(keys, {list(BANDS)!r}, size=120, threads=2), want)
                ok &= np.array_equal(next(iter(loader)), want)
                ok &= np.array_equal(rico.open(path).batch(keys, {list(BANDS)!r}, size=120), want)
                ok &= view[0, 0] == ds[keys[0]]["B02"][0, 0]
                os._exit(0 if ok else 3)
            except BaseException as e:
                print(e)
                os._exit(4)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        assert np.array_equal(ds.batch(keys, {list(BANDS)!r}, size=120, threads=2), want)
        """,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "child 0" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_torch_dataloader_workers(db, tmp_path, method):
    pytest.importorskip("torch")
    path, records = db
    want = expected(records, KEYS)
    np.save(tmp_path / "want.npy", want)
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import numpy as np, torch, rico
            from torch.utils.data import DataLoader, Dataset

            BANDS = {list(BANDS)!r}
            KEYS = {KEYS!r}

            class Records(Dataset):
                def __init__(self, ds):
                    self.ds = ds
                def __len__(self):
                    return len(KEYS)
                def __getitem__(self, i):
                    return torch.from_numpy(self.ds.batch([KEYS[i]], BANDS, size=120, threads=2)[0]), i

            if __name__ == "__main__":
                want = np.load({str(tmp_path / "want.npy")!r})
                ds = rico.open({str(path)!r})
                # The parent reads first: its thread pools and environment exist before workers start.
                assert np.array_equal(ds.batch(KEYS[:4], BANDS, size=120), want[:4])
                for _ in rico.Loader(ds, bands=BANDS, size=120, batch_size=8):
                    pass
                loader = DataLoader(Records(ds), batch_size=8, shuffle=True, num_workers=2,
                                    multiprocessing_context={method!r}, persistent_workers=True)
                for epoch in range(3):
                    seen = 0
                    for x, i in loader:
                        assert np.array_equal(x.numpy(), want[i.numpy()]), epoch
                        seen += len(i)
                    assert seen == len(KEYS)
                print("epochs ok")
            """
        )
    )
    try:
        r = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=240
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"DataLoader with {method} workers hung: {e.stderr}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "epochs ok" in r.stdout


def test_second_open_shares_the_environment(db):
    path, records = db
    a, b = rico.open(path), rico.open(path)
    va = a[KEYS[0]]["B02"]
    a.close()
    del a
    assert np.array_equal(b[KEYS[0]]["B02"], records[KEYS[0]]["B02"])
    assert np.array_equal(va, records[KEYS[0]]["B02"])


# -- damaged databases ---------------------------------------------------------------------------

READ_ALL = """
import sys, rico, lmdb
path = sys.argv[1]
try:
    ds = rico.open(path)
    n = len(ds)
    for k in ds.keys():
        bands = ds[k]
        for a in bands.values():
            a.sum()
    ds.batch(ds.keys()[:8], {bands!r}, size=120)
    print("read", n)
except rico.DataError as e:
    print("DataError", e)
"""

PY_LMDB_ALL = """
import sys, lmdb
try:
    env = lmdb.open(sys.argv[1], readonly=True, lock=False)
    with env.begin() as txn:
        for k, v in txn.cursor():
            bytes(v)
    print("read")
except lmdb.Error as e:
    print("lmdb.Error", type(e).__name__, e)
"""


def run_file(code: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120
    )


def damaged_copy(path: Path, tmp: Path, name: str) -> Path:
    copy = tmp / name
    shutil.copytree(path, copy)
    (copy / "lock.mdb").unlink(missing_ok=True)
    return copy


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.3])
def test_truncated_file_is_a_data_error(db, tmp_path, fraction):
    path, _ = db
    copy = damaged_copy(path, tmp_path, f"trunc{fraction}")
    data = copy / "data.mdb"
    os.truncate(data, int(data.stat().st_size * fraction) // 4096 * 4096)
    r = run_file(READ_ALL.format(bands=list(BANDS)), copy)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert "DataError" in r.stdout and "damaged" in r.stdout and "truncated" in r.stdout, r.stdout
    assert str(copy) in r.stdout
    # The command line says the same, with an exit code instead of a crash.
    cli = subprocess.run(
        [sys.executable, "-m", "rico", "info", str(copy)], capture_output=True, text=True
    )
    assert cli.returncode > 0 and "damaged" in cli.stderr, (cli.returncode, cli.stderr)


@pytest.mark.parametrize("seed", range(12))
def test_overwritten_page_headers(db, tmp_path, seed):
    """8 bytes of one page header overwritten: rico never crashes, and fails with a DataError
    wherever py-lmdb detects the damage on the same file."""
    path, _ = db
    copy = damaged_copy(path, tmp_path, f"pages{seed}")
    data = copy / "data.mdb"
    raw = bytearray(data.read_bytes())
    # Pages that start with a header (a header names its own page number): branch, leaf and
    # the first page of each record's overflow run; not the meta pages 0 and 1.
    headed = [
        p
        for p in range(2, len(raw) // 4096)
        if int.from_bytes(raw[p * 4096 : p * 4096 + 8], "little") == p
    ]
    rng = np.random.default_rng(seed)
    # Even seeds: the tree's own pages (branch and leaf: flag 0x01/0x02), odd: any header.
    tree = [p for p in headed if raw[p * 4096 + 10] & 0x03]
    page = int(rng.choice(tree if seed % 4 == 0 and tree else headed))
    at = page * 4096 + (8 if seed % 2 else 0)  # the page number, or flags and bounds
    raw[at : at + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
    data.write_bytes(bytes(raw))
    reference = run_file(PY_LMDB_ALL, copy)
    ours = run_file(READ_ALL.format(bands=list(BANDS)), copy)
    assert ours.returncode == 0, (seed, page, ours.returncode, ours.stderr[-2000:])
    if "lmdb.Error" in reference.stdout or reference.returncode != 0:
        assert "DataError" in ours.stdout, (seed, page, reference.stdout, ours.stdout)
        assert "damaged" in ours.stdout or "not a valid safetensors" in ours.stdout


def test_dataset_pickles_as_its_path(db):
    import pickle

    path, records = db
    ds = rico.open(path)
    ds.keys()
    again = pickle.loads(pickle.dumps(ds))
    assert again.path == ds.path and again.keys() == ds.keys()
    assert np.array_equal(again[KEYS[1]]["B09"], records[KEYS[1]]["B09"])
    ds.close()
    closed = pickle.loads(pickle.dumps(ds))
    with pytest.raises(ValueError, match="closed"):
        len(closed)
