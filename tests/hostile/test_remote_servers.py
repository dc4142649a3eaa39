"""Servers that lie, stall or refuse, and names that are hard to spell, each met with a clear
error (naming the URL, never a secret) or with the records of the unpacked folder, byte for
byte: a HEAD that declares 2^63 - 1 bytes, a body that stops after its headers (slowloris), a
HEAD that hangs, a HEAD answered 405, a login over plain HTTP, S3 keys with spaces and
non-ASCII letters, and a zip read over HTTP in ranged parts in flight. Every server is a real
one on loopback (127.0.0.1): Python's HTTP server, and moto's S3 server."""

from __future__ import annotations

import time
import urllib.parse
import zipfile
from pathlib import Path

import pytest
import rico
from support.archives import pack_tar, pack_zip
from support.cli import run
from support.lmdb_records import read_lmdb
from support.memory import peak_rss
from support.servers import http_server, s3_env, s3_server, upload
from support.trees import make_dataset

S2 = "BigEarthNet-S2"


@pytest.fixture(scope="module")
def ben(tmp_path_factory) -> tuple[Path, dict[bytes, bytes]]:
    """A 6-patch BigEarthNet tree, its S2 folder as ``served/BigEarthNet-S2.tar.zst`` and
    ``.zip``, and the records of the S2 folder."""
    root = tmp_path_factory.mktemp("ben")
    make_dataset(root / "tree", 6, workers=1)
    served = root / "served"
    served.mkdir()
    pack_tar(root / "tree" / S2, served / f"{S2}.tar.zst")
    pack_zip(root / "tree" / S2, served / f"{S2}.zip")
    rico.convert(
        "bigearthnet", root / "want", progress=False, bigearthnet_s2_dir=root / "tree" / S2
    )
    return root, read_lmdb(root / "want")


@pytest.mark.parametrize("declared", [2**50, 2**63 - 1])
@pytest.mark.parametrize("ending", [".tar.zst", ".zip"])
def test_a_huge_declared_size_is_an_error_in_bounded_memory(
    ben, tmp_path, rico_bin, declared, ending
):
    """A HEAD answer's Content-Length sized a list of every range up front: 2^50 took 16.8 GB,
    2^63 - 1 aborted the process. Ranges are now made as they are fetched, and the size the
    ranged GET reports disagrees: an error naming the URL, in little memory."""
    root, _ = ben
    with http_server(root / "served") as (base, faults):
        faults.head_size = declared
        url = f"{base}/{S2}{ending}"
        code, stderr, rss = peak_rss(
            rico_bin, "bigearthnet", "--target-dir", tmp_path / "db", "--bigearthnet-s2-dir", url
        )
    assert code in (1, 2), (code, stderr)  # an error, not a signal (SIGABRT is -6)
    assert url in stderr and str(declared) in stderr, stderr
    assert "panicked" not in stderr
    assert rss < 300 << 20, rss


def test_a_body_that_stalls_after_its_headers_is_an_error_within_the_budget(
    ben, tmp_path, rico_bin
):
    """Slowloris: headers, then nothing. Each request is abandoned after --read-timeout without
    a byte, and the range gives up after three of them, naming the URL, what was asked and for
    how long (30 s and 90 s by default; here 1 s and 3 s)."""
    root, _ = ben
    with http_server(root / "served") as (base, faults):
        faults.stall_get = True
        url = f"{base}/{S2}.tar.zst"
        started = time.monotonic()
        r = run(
            rico_bin, "bigearthnet", "--target-dir", tmp_path / "db",
            "--bigearthnet-s2-dir", url, "--read-timeout", "1", timeout=60,
        )  # fmt: skip
        took = time.monotonic() - started
    assert r.returncode == 2, r.stderr
    assert url in r.stderr and "no data arrived for" in r.stderr, r.stderr
    assert "bytes 0.." in r.stderr and "--read-timeout" in r.stderr, r.stderr
    assert 2.5 < took < 20, took
    # Every request was a GET of the one archive: nothing else was tried forever.
    gets = [p for m, p in faults.requests if m == "GET"]
    assert 1 <= len(gets) <= 12, faults.requests


def test_a_head_that_hangs_is_an_error_within_the_budget(ben, tmp_path):
    root, _ = ben
    with http_server(root / "served") as (base, faults):
        faults.stall_head = True
        started = time.monotonic()
        with pytest.raises(rico.RicoError) as caught:
            rico.convert(
                "bigearthnet", tmp_path / "db", progress=False, read_timeout=0.5,
                bigearthnet_s2_dir=f"{base}/{S2}.tar.zst",
            )  # fmt: skip
        took = time.monotonic() - started
    message = str(caught.value)
    assert f"{base}/{S2}.tar.zst" in message and "HEAD" in message, message
    assert took < 15, took


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), 86401])
def test_a_read_timeout_out_of_range_is_refused(tmp_path, rico_bin, seconds):
    with pytest.raises(ValueError, match="read timeout"):
        rico.convert(
            "bigearthnet", tmp_path / "db", read_timeout=seconds,
            bigearthnet_s2_dir="http://127.0.0.1:9/x.tar.zst",
        )  # fmt: skip
    r = run(
        rico_bin, "bigearthnet", "--target-dir", tmp_path / "db",
        "--bigearthnet-s2-dir", "http://127.0.0.1:9/x.tar.zst", f"--read-timeout={seconds}",
    )  # fmt: skip
    assert r.returncode == 2 and "read timeout" in r.stderr, r.stderr


def test_a_head_answered_405_falls_back_to_a_ranged_get(ben, tmp_path, rico_bin):
    root, want = ben
    with http_server(root / "served") as (base, faults):
        faults.head_status = 405
        rico.convert(
            "bigearthnet", tmp_path / "db", progress=False, bigearthnet_s2_dir=f"{base}/{S2}.zip"
        )
        assert read_lmdb(tmp_path / "db") == want
        # A server that refuses GET too: its real answer, not "no such object (404)".
        faults.get_status = 405
        r = run(
            rico_bin, "bigearthnet", "--target-dir", tmp_path / "db2",
            "--bigearthnet-s2-dir", f"{base}/{S2}.tar.zst",
        )  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "405" in r.stderr and "404" not in r.stderr, r.stderr
    assert f"{base}/{S2}.tar.zst" in r.stderr


def test_a_login_over_http_is_sent_and_never_printed(ben, tmp_path, rico_bin):
    """``user:password@`` in an http URL is sent as Basic authentication; a 401 without it
    says to give a login, not AWS credentials; the password is never printed."""
    root, want = ben
    with http_server(root / "served") as (base, faults):
        faults.login = "reader:hunter2 ü"
        secret = base.replace("http://", "http://reader:" + urllib.parse.quote("hunter2 ü") + "@")
        rico.convert(
            "bigearthnet", tmp_path / "db", progress=False,
            bigearthnet_s2_dir=f"{secret}/{S2}.tar.zst",
        )  # fmt: skip
        assert read_lmdb(tmp_path / "db") == want
        for url in (
            f"{base}/{S2}.tar.zst",
            f"{base.replace('http://', 'http://reader:wrong@')}/{S2}.zip",
        ):
            r = run(
                rico_bin,
                "bigearthnet",
                "--target-dir",
                tmp_path / "no",
                "--bigearthnet-s2-dir",
                url,
            )
            assert r.returncode == 2, r.stderr
            assert "401" in r.stderr and "USER:PASSWORD@" in r.stderr, r.stderr
            assert "AWS" not in r.stderr and "wrong" not in r.stderr and "reader" not in r.stderr
            assert f"{base}/{S2}" in r.stderr


def test_s3_keys_with_spaces_and_non_ascii_letters(ben, tmp_path, monkeypatch):
    """``s3://bucket/weird dir/ünï cödé/...`` as the AWS CLI takes it, and its percent-encoded
    form: archives (a tar and a zip) and a folder (a prefix) under such names."""
    root, want = ben
    prefix = "weird dir/ünï cödé"
    tree = root / "tree" / S2
    files = {f"{prefix}/{S2}{e}": root / "served" / f"{S2}{e}" for e in (".tar.zst", ".zip")}
    files.update(
        {
            f"{prefix}/tree/{S2}/{p.relative_to(tree).as_posix()}": p
            for p in tree.rglob("*")
            if p.is_file()
        }
    )
    with s3_server() as endpoint:
        upload(endpoint, "datasets", files)
        for k, v in s3_env(endpoint).items():
            monkeypatch.setenv(k, v)
        encoded = urllib.parse.quote(prefix)
        assert "%20" in encoded and "%C3%BC" in encoded
        for n, base in enumerate([prefix, encoded]):
            rico.convert(
                "bigearthnet", tmp_path / f"a{n}", progress=False,
                bigearthnet_s2_dir=f"s3://datasets/{base}/{S2}.tar.zst",
            )  # fmt: skip
            assert read_lmdb(tmp_path / f"a{n}") == want
            # A zip over S3: its central directory, then its members in ranged parts.
            rico.convert(
                "bigearthnet", tmp_path / f"z{n}", progress=False,
                bigearthnet_s2_dir=f"s3://datasets/{base}/{S2}.zip",
            )  # fmt: skip
            assert read_lmdb(tmp_path / f"z{n}") == want
            rico.convert(
                "bigearthnet", tmp_path / f"f{n}", progress=False,
                bigearthnet_s2_dir=f"s3://datasets/{base}/tree/{S2}",
            )  # fmt: skip
            assert read_lmdb(tmp_path / f"f{n}") == want
        with pytest.raises(rico.RicoError, match="404"):
            rico.convert(
                "bigearthnet", tmp_path / "missing", progress=False,
                bigearthnet_s2_dir=f"s3://datasets/{prefix}/nope.tar.zst",
            )  # fmt: skip


def test_a_file_name_with_spaces_and_non_ascii_letters_over_http(ben, tmp_path):
    root, want = ben
    served = tmp_path / "served" / "weird dir"
    served.mkdir(parents=True)
    (served / "ünï cödé.tar.zst").write_bytes((root / "served" / f"{S2}.tar.zst").read_bytes())
    with http_server(tmp_path / "served") as (base, _):
        rico.convert(
            "bigearthnet", tmp_path / "db", progress=False,
            bigearthnet_s2_dir=f"{base}/weird dir/ünï cödé.tar.zst",
        )  # fmt: skip
    assert read_lmdb(tmp_path / "db") == want


def test_a_zip_over_http_is_read_in_ranged_parts_in_flight(ben, tmp_path):
    """A zip was read in one small request per member header and per block (1,049 requests
    for 79 MB); now its central directory is read, then its members streamed in parts of
    --fetch-part-mb, several in flight: about one request per part."""
    root, want = ben
    archive = root / "served" / f"{S2}.zip"
    with zipfile.ZipFile(archive) as z:
        members = len(z.infolist())
    size = archive.stat().st_size
    with http_server(root / "served") as (base, faults):
        rico.convert(
            "bigearthnet", tmp_path / "db", progress=False, fetch_part_mb=1, fetch_parts=3,
            bigearthnet_s2_dir=f"{base}/{S2}.zip",
        )  # fmt: skip
        gets = sum(1 for m, _ in faults.requests if m == "GET")
        sent = faults.sent
    assert read_lmdb(tmp_path / "db") == want
    # One part (the archive is under 1 MiB) plus the end and central directory.
    assert gets <= size // (1 << 20) + 4, (gets, members)
    assert gets < members / 4, (gets, members)
    assert sent < 2 * size, (sent, size)


def test_a_few_members_of_a_zip_over_http(ben, tmp_path):
    """A key list reads few members: those are fetched where they lie, not the whole zip."""
    root, want = ben
    key = sorted(want)[0]
    with http_server(root / "served") as (base, _):
        rico.convert(
            "bigearthnet", tmp_path / "db", progress=False, keys=[key.decode()],
            bigearthnet_s2_dir=f"{base}/{S2}.zip",
        )  # fmt: skip
    assert read_lmdb(tmp_path / "db") == {key: want[key]}


def test_a_zip_whose_directory_is_not_in_file_order(ben, tmp_path):
    """Members streamed ahead are read in the central directory's order; a directory listed in
    another order than the members lie (here reversed) still gives every record, each member
    the stream has passed fetched where it lies."""
    root, want = ben
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(root / "served" / f"{S2}.zip") as src:
        with zipfile.ZipFile(served / f"{S2}.zip", "w", zipfile.ZIP_DEFLATED) as out:
            for info in src.infolist():
                out.writestr(info, src.read(info))
            out.filelist.reverse()  # the central directory, written on close, reversed
    with zipfile.ZipFile(served / f"{S2}.zip") as check:
        offsets = [i.header_offset for i in check.infolist()]
    assert offsets == sorted(offsets, reverse=True)
    with http_server(served) as (base, _):
        rico.convert(
            "bigearthnet", tmp_path / "db", progress=False, fetch_part_mb=1,
            bigearthnet_s2_dir=f"{base}/{S2}.zip",
        )  # fmt: skip
    assert read_lmdb(tmp_path / "db") == want
