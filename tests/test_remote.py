"""Sources behind URLs: archives and Parquet files over HTTP (a real server with Range, ETag and
If-Match, on loopback) and over S3 (moto's server, on loopback), a folder of files over S3.
Every conversion is compared byte for byte with the conversion of the unpacked folders; the
server drops connections, answers 503, and replaces a file mid-run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import rico
from support.archives import major_tom_parquet, pack_tar, pack_zip
from support.bigearthnet import SOURCES, option_flags
from support.cli import run
from support.lmdb_records import read_lmdb
from support.servers import http_server, s3_env, s3_server, upload
from support.trees import make_dataset


@pytest.fixture(scope="module")
def ben(tmp_path_factory) -> tuple[Path, dict[bytes, bytes]]:
    """A 30-patch BigEarthNet tree, its three .tar.zst archives in ``served/`` and the records
    of the folders."""
    root = tmp_path_factory.mktemp("ben")
    make_dataset(root / "tree", 30)
    served = root / "served"
    served.mkdir()
    for name in SOURCES.values():
        pack_tar(root / "tree" / name, served / f"{name}.tar.zst")
    rico.convert(
        "bigearthnet",
        root / "from-folders",
        progress=False,
        **{o: root / "tree" / n for o, n in SOURCES.items()},
    )
    return root, read_lmdb(root / "from-folders")


def urls(base: str) -> dict[str, str]:
    return {o: f"{base}/{n}.tar.zst" for o, n in SOURCES.items()}


def convert_s2(rico_bin: Path, target: Path, url: str, **kw) -> subprocess.CompletedProcess:
    """``rico bigearthnet`` of the S2 source at ``url`` alone into ``target``."""
    return run(rico_bin, "bigearthnet", "--target-dir", target, "--bigearthnet-s2-dir", url, **kw)


def test_archives_over_http_give_the_records_of_the_folders(ben, tmp_path):
    root, want = ben
    with http_server(root / "served") as (base, faults):
        # Small parts, several in flight: many ranged requests per archive.
        rico.convert(
            "bigearthnet", tmp_path / "db", progress=False, fetch_part_mb=1, fetch_parts=3,
            **urls(base),
        )  # fmt: skip
        assert read_lmdb(tmp_path / "db") == want
        assert len(faults.ranges) > 3
        report = rico.verify("bigearthnet", tmp_path / "db", progress=False, **urls(base))
        assert report["ok"], report["text"]


def test_dropped_connections_and_5xx_are_retried_and_resumed(ben, tmp_path, rico_bin):
    root, want = ben
    with http_server(root / "served") as (base, faults):
        faults.fail = 2  # two 503s
        faults.cut = 3  # three bodies cut halfway: asked for again from the last byte received
        flags = [a for o, u in urls(base).items() for a in ("--" + o.replace("_", "-"), u)]
        r = run(
            rico_bin, "bigearthnet", "--target-dir", tmp_path / "db", "--fetch-part-mb", 1, *flags
        )
        assert r.returncode == 0, r.stderr
        assert faults.fail == 0 and faults.cut == 0
        # A cut body is asked for again from its last byte received: a range that does not
        # start on a part boundary.
        starts = [int(r.removeprefix("bytes=").split("-")[0]) for r in faults.ranges]
        assert any(start % (1 << 20) for start in starts), faults.ranges
    assert read_lmdb(tmp_path / "db") == want


def test_every_first_download_cut_at_40_percent(ben, tmp_path):
    root, want = ben
    with http_server(root / "served") as (base, faults):
        faults.cut_first_of_each = True
        faults.cut_at = 0.4
        rico.convert("bigearthnet", tmp_path / "db", progress=False, **urls(base))
        assert faults.cut_files == {f"{n}.tar.zst" for n in SOURCES.values()}
    assert read_lmdb(tmp_path / "db") == want


def test_a_file_replaced_mid_run_is_an_error_not_a_mix(ben, tmp_path, rico_bin):
    root, _ = ben
    with http_server(root / "served") as (base, faults):
        faults.replace_after = 2
        url = f"{base}/BigEarthNet-S2.tar.zst"
        r = run(
            rico_bin, "bigearthnet", "--target-dir", tmp_path / "db",
            "--bigearthnet-s2-dir", url, "--fetch-part-mb", 1, "--fetch-parts", 1,
        )  # fmt: skip
        assert r.returncode != 0
        assert "changed while it was read" in r.stderr, r.stderr


def test_missing_and_forbidden_urls_are_named_without_secrets(ben, tmp_path, rico_bin):
    root, _ = ben
    with http_server(root / "served") as (base, _):
        secret = base.replace("http://", "http://reader:hunter2@")
        for name, words in [("missing.tar.zst", "404"), ("forbidden.tar.zst", "denied")]:
            r = convert_s2(rico_bin, tmp_path / "db", f"{secret}/{name}")
            assert r.returncode == 2, r.stderr
            assert f"{base}/{name}" in r.stderr and words in r.stderr, r.stderr
            assert "hunter2" not in r.stderr and "reader" not in r.stderr
            assert not (tmp_path / "db").exists()
        r = convert_s2(
            rico_bin, tmp_path / "db", f"{base}/BigEarthNet-S2.tar.zst?X-Amz-Signature=abc"
        )
        assert r.returncode == 2 and "abc" not in r.stderr and "<redacted>" in r.stderr


def test_zip_and_parquet_over_http(samples, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    pack_zip(samples / "EuroSAT_MS", served / "EuroSAT_MS.zip")
    products = [p for p in (samples / "Major-TOM-Core" / "S2L2A").rglob("S2*") if p.is_dir()]
    major_tom_parquet(products, served / "part_00001.parquet")
    rico.convert(
        "eurosat-multi-spectral",
        tmp_path / "e0",
        progress=False,
        dataset_dir=samples / "EuroSAT_MS",
    )
    rico.convert(
        "major-tom-core",
        tmp_path / "m0",
        progress=False,
        s2_dir=samples / "Major-TOM-Core" / "S2L2A",
    )
    with http_server(served) as (base, _):
        rico.convert(
            "eurosat-multi-spectral",
            tmp_path / "e1",
            progress=False,
            dataset_dir=f"{base}/EuroSAT_MS.zip",
            fetch_part_mb=1,
        )
        rico.convert(
            "major-tom-core", tmp_path / "m1", progress=False, s2_dir=f"{base}/part_00001.parquet"
        )
    assert read_lmdb(tmp_path / "e1") == read_lmdb(tmp_path / "e0")
    assert read_lmdb(tmp_path / "m1") == read_lmdb(tmp_path / "m0")


@pytest.fixture(scope="module")
def s3(ben):
    root, _ = ben
    with s3_server() as endpoint:
        files = {
            f"archives/{n}.tar.zst": root / "served" / f"{n}.tar.zst" for n in SOURCES.values()
        }
        tree = root / "tree"
        files.update(
            {f"tree/{p.relative_to(tree).as_posix()}": p for p in tree.rglob("*") if p.is_file()}
        )
        upload(endpoint, "datasets", files)
        yield endpoint


def test_archives_and_folders_over_s3(ben, s3, tmp_path, monkeypatch):
    _, want = ben
    for k, v in s3_env(s3).items():
        monkeypatch.setenv(k, v)
    archives = {o: f"s3://datasets/archives/{n}.tar.zst" for o, n in SOURCES.items()}
    rico.convert("bigearthnet", tmp_path / "a", progress=False, **archives)
    assert read_lmdb(tmp_path / "a") == want
    # A folder of files over S3: the objects under a prefix.
    folders = {o: f"s3://datasets/tree/{n}" for o, n in SOURCES.items()}
    rico.convert("bigearthnet", tmp_path / "f", progress=False, **folders)
    assert read_lmdb(tmp_path / "f") == want
    # --resume re-streams and keeps what is committed.
    rico.convert(
        "bigearthnet",
        tmp_path / "r",
        progress=False,
        bigearthnet_s2_dir=archives["bigearthnet_s2_dir"],
    )
    summary = rico.convert("bigearthnet", tmp_path / "r", progress=False, resume=True, **archives)
    assert summary.already_present == 30 and summary.records == 60
    assert read_lmdb(tmp_path / "r") == want


def test_s3_credentials_from_the_profile_file(ben, s3, tmp_path, rico_bin):
    _, want = ben
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[lab]\naws_access_key_id = testing\naws_secret_access_key = from-file\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=s3, AWS_SHARED_CREDENTIALS_FILE=str(credentials), AWS_PROFILE="lab",
        AWS_REGION="us-east-1",
    )  # fmt: skip
    flags = option_flags({o: f"s3://datasets/archives/{n}.tar.zst" for o, n in SOURCES.items()})
    r = run(rico_bin, "bigearthnet", "--target-dir", tmp_path / "db", *flags, env=env)
    assert r.returncode == 0, r.stderr
    assert read_lmdb(tmp_path / "db") == want
    r = convert_s2(rico_bin, tmp_path / "db2", "s3://datasets/archives/nope.tar.zst", env=env)
    assert (
        r.returncode == 2
        and "s3://datasets/archives/nope.tar.zst" in r.stderr
        and "404" in r.stderr
    )


def test_a_key_list_fetches_only_its_parquet_row_groups(samples, tmp_path, rico_bin):
    """Three products in three row groups; converting one fetches its row group (and every
    row group's two key columns), not the others' band columns."""
    s2 = samples / "Major-TOM-Core" / "S2L2A"
    (product,) = [p for p in s2.rglob("S2*") if p.is_dir()]
    cells = tmp_path / "cells"
    for cell in ("0U_199R", "0U_200R", "0U_201R"):
        shutil.copytree(product, cells / cell / product.name)
    served = tmp_path / "served"
    served.mkdir()
    part = major_tom_parquet(sorted(cells.glob("*/*")), served / "part_00001.parquet")
    rico.convert("major-tom-core", tmp_path / "all", progress=False, s2_dir=cells)
    everything = read_lmdb(tmp_path / "all")
    key = f"0U_200R_{product.name}"
    (tmp_path / "keys.txt").write_text(f"# one product\n{key}\n")
    with http_server(served) as (base, faults):
        r = run(
            rico_bin, "major-tom-core", "--target-dir", tmp_path / "one",
            "--s2-dir", f"{base}/{part.name}", "--keys", tmp_path / "keys.txt",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert faults.sent < part.stat().st_size * 0.5, (faults.sent, part.stat().st_size)
    assert read_lmdb(tmp_path / "one") == {key.encode(): everything[key.encode()]}
    # The same subset from Python, from a local folder of tar archives: other patches skipped.
    summary = rico.convert(
        "major-tom-core", tmp_path / "py", progress=False, s2_dir=part, keys=[key]
    )
    assert summary.records == 1
