"""What ``make dist`` ships: a manylinux wheel, a portable binary and an sdist (``make test-dist``).

* the wheel is abi3 and ``auditwheel show`` places it at manylinux_2_17 (glibc 2.17) or older;
* the binary needs no GLIBC symbol version newer than 2.17, and is stripped;
* the wheel installs into a new virtualenv with no cargo on PATH, and there converts the real
  BigEarthNet samples to the very records the portable binary writes, and rasterio reads;
* the sdist carries the sources a build from it needs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, read_lmdb
from elftools.elf.elffile import ELFFile
from test_bigearthnet import expected_records

DIST = ROOT / "dist"
GLIBC_FLOOR = (2, 17)
# What every glibc system has: glibc's own libraries, and the GCC runtime for unwinding.
BASE_LIBRARIES = {
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
    "libgcc_s.so.1",
}


def one(pattern: str) -> Path:
    found = sorted(DIST.glob(pattern))
    if len(found) != 1:
        pytest.fail(
            f"expected one {pattern} in {DIST}, found {[p.name for p in found]}: run `make dist`"
        )
    return found[0]


@pytest.fixture(scope="module")
def wheel() -> Path:
    return one("rico_eo-*.whl")


@pytest.fixture(scope="module")
def portable_bin() -> Path:
    return one("rico")


@pytest.fixture(scope="module")
def sdist() -> Path:
    return one("rico_eo-*.tar.gz")


def glibc_versions(binary: Path) -> set[tuple[int, ...]]:
    """The GLIBC_x.y versions that ``binary`` needs, from its .gnu.version_r section."""
    with binary.open("rb") as f:
        elf = ELFFile(f)
        section = elf.get_section_by_name(".gnu.version_r")
        if section is None:
            return set()
        return {
            tuple(int(n) for n in aux.name.removeprefix("GLIBC_").split("."))
            for _, auxiliaries in section.iter_versions()
            for aux in auxiliaries
            if re.fullmatch(r"GLIBC_\d+(\.\d+)*", aux.name)
        }


def test_wheel_is_abi3_and_manylinux_2_17_or_older(wheel):
    assert "-cp39-abi3-" in wheel.name, wheel.name
    res = subprocess.run(
        [str(Path(sys.executable).parent / "auditwheel"), "show", str(wheel)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())  # auditwheel wraps its lines
    match = re.search(
        r'consistent with the following platform tag: "manylinux_(\d+)_(\d+)_x86_64"', text
    )
    assert match, text
    assert (int(match[1]), int(match[2])) <= GLIBC_FLOOR, text
    assert "manylinux_2_17_x86_64" in wheel.name or "manylinux2014_x86_64" in wheel.name, wheel.name
    # The extension is in the wheel, beside the Python package and its stubs.
    names = zipfile.ZipFile(wheel).namelist()
    assert any(re.fullmatch(r"rico/_rico\.abi3\.so", n) for n in names), names
    assert "rico/_rico.pyi" in names and "rico/py.typed" in names, names


def test_glibc_versions_are_read_from_a_binary(rico_bin):
    # The reader finds what a binary linked on this machine needs (at least GLIBC_2.2.5, the
    # x86-64 base), so an empty set below could not pass for "needs nothing new".
    assert (2, 2, 5) in glibc_versions(rico_bin)


def test_binary_needs_glibc_2_17_or_older_and_is_stripped(portable_bin):
    versions = glibc_versions(portable_bin)
    assert versions, f"{portable_bin} needs no GLIBC version: is it dynamically linked to glibc?"
    assert max(versions) <= GLIBC_FLOOR, sorted(versions)
    with portable_bin.open("rb") as f:
        elf = ELFFile(f)
        dynamic = elf.get_section_by_name(".dynamic")
        needed = {t.needed for t in dynamic.iter_tags() if t.entry.d_tag == "DT_NEEDED"}
        assert "libc.so.6" in needed and needed <= BASE_LIBRARIES, sorted(needed)
        assert elf.get_section_by_name(".symtab") is None, "the binary is not stripped"
        assert elf.get_section_by_name(".debug_line") is None, "the binary carries debug info"
    res = subprocess.run([str(portable_bin), "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("rico "), res


def no_cargo_env(venv: Path) -> dict[str, str]:
    """The environment less every PATH entry that holds cargo or rustc, and the Rust homes."""
    dirs = [
        d
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if d and not any((Path(d) / tool).exists() for tool in ("cargo", "rustc"))
    ]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CARGO", "RUSTUP", "VIRTUAL_ENV", "PYTHON"))
    }
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *dirs])
    assert shutil.which("cargo", path=env["PATH"]) is None
    assert shutil.which("rustc", path=env["PATH"]) is None
    return env


def test_wheel_in_a_new_venv_without_cargo_converts_like_the_binary(
    wheel, portable_bin, samples, tmp_path
):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = no_cargo_env(venv)
    py = venv / "bin" / "python"

    def run(*args, cwd=tmp_path):
        res = subprocess.run(
            [str(a) for a in args], capture_output=True, text=True, env=env, cwd=cwd
        )
        assert res.returncode == 0, f"{args}\n{res.stdout}\n{res.stderr}"
        return res

    # pip may take numpy from its cache, but rico-eo only from this wheel: no build from source.
    run(py, "-m", "pip", "install", "-q", "--only-binary", ":all:", str(wheel))
    where = run(py, "-c", "import rico, rico._rico as r; print(rico.__file__); print(r.__file__)")
    for line in where.stdout.split():
        assert Path(line).is_relative_to(venv), where.stdout

    root = samples / "BigEarthNet"
    sources = [
        "--bigearthnet-s1-dir",
        root / "BigEarthNet-S1",
        "--bigearthnet-s2-dir",
        root / "BigEarthNet-S2",
        "--bigearthnet-reference-maps-dir",
        root / "Reference_Maps",
    ]
    run(portable_bin, "bigearthnet", *sources, "--target-dir", tmp_path / "bin.lmdb", "-q")
    run(venv / "bin" / "rico", "bigearthnet", *sources, "--target-dir", tmp_path / "cli.lmdb", "-q")
    run(
        py,
        "-c",
        "import sys, rico; rico.convert('bigearthnet', sys.argv[1], bigearthnet_s1_dir=sys.argv[2],"
        " bigearthnet_s2_dir=sys.argv[3], bigearthnet_reference_maps_dir=sys.argv[4])",
        tmp_path / "api.lmdb",
        root / "BigEarthNet-S1",
        root / "BigEarthNet-S2",
        root / "Reference_Maps",
    )

    want = expected_records(root)
    assert len(want) == 3
    by_binary = read_lmdb(tmp_path / "bin.lmdb")
    assert by_binary == want
    assert read_lmdb(tmp_path / "cli.lmdb") == by_binary
    assert read_lmdb(tmp_path / "api.lmdb") == by_binary


def test_sdist_carries_what_a_build_needs(sdist):
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in (
        "pyproject.toml",
        "Cargo.toml",
        "Cargo.lock",
        "python/rico/__init__.py",
        "python/rico/_rico.pyi",
        "rust/rico-py/src/lib.rs",
        "rust/rico-core/Cargo.toml",
        "rust/rico-raster/Cargo.toml",
        "rust/rico-cli/Cargo.toml",
    ):
        assert needed in names, f"{needed} missing from {sdist.name}"
