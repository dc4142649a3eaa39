"""Every code example of README.md and docs/ runs as written.

Each ```python block is executed, and each line of a ```sh or ```bash block that starts with
``rico `` is run (the binary, or ``python -m rico`` for what needs Python), in a fresh
directory that holds what the examples name: a small BigEarthNet-shaped tree
(``BigEarthNet-S1``, ``BigEarthNet-S2``, ``Reference_Maps``, ``metadata.parquet``), its database
``BigEarthNet.lmdb``, the real samples of the other datasets under their usual folder names, and
small generated MLRSNet, SpectralEarth and Major-TOM S1 trees. A block that writes a database
(``--target-dir NAME`` or ``target_dir="NAME"``) gets a directory without it. A block preceded
by ``<!-- not-run: reason -->`` (one that needs a cluster or a GPU) is skipped with that reason.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.archives import major_tom_parquet, pack_tar
from support.bigearthnet import convert
from support.geotiff import write_tif
from support.trees import make_bigearthnet

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SAMPLES = ROOT / "tests" / "data" / "samples"
RICO_BIN = ROOT / "target" / "release" / "rico"

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.*?)\s*-->\s*$")
WRITES = re.compile(r"""(?:--target-dir[ =]|target_dir\s*=\s*)["']?([\w.-]+)""")
# What the examples name, beside the generated trees: sample folders as the datasets ship them.
SAMPLE_DIRS = ["HySpecNet-11k", "UCMerced_LandUse", "EuroSAT_MS", "EuroSAT_RGB", "Hydro", "SSL4EO-S12"]  # fmt: skip
GENERATED_PATCHES = 40


@dataclass(frozen=True)
class Example:
    path: Path
    line: int
    lang: str
    code: str
    skip: str | None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def documents() -> list[Path]:
    """README.md and the site's pages (each file once: docs/changelog.md is a link)."""
    seen, out = set(), []
    for path in [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            out.append(path)
    return out


def examples(path: Path) -> list[Example]:
    text = path.read_text()
    found = []
    for m in FENCE.finditer(text):
        lang = m.group(1).lower()
        if lang not in ("python", "sh", "bash"):
            continue
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = NOT_RUN.search(before)
        line = text.count("\n", 0, m.start()) + 2
        found.append(Example(path, line, lang, m.group(2), skip.group(1) if skip else None))
    return found


def rico_lines(code: str) -> list[str]:
    """The shell lines that run rico (continuations joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line.strip() for line in joined.splitlines() if line.strip().startswith("rico ")]


ALL = [e for path in documents() for e in examples(path)]
RUNNABLE = [e for e in ALL if e.lang == "python" or rico_lines(e.code)]


def test_the_examples_are_found():
    readme = [e for e in RUNNABLE if e.path.name == "README.md"]
    assert sum(e.lang == "python" for e in readme) >= 4
    assert any(e.lang != "python" for e in readme)
    assert sum(e.lang == "python" for e in RUNNABLE) >= 30
    skipped = [e.name for e in ALL if e.skip]
    assert len(skipped) <= 3, f"use <!-- not-run --> sparingly: {skipped}"


def make_mlrsnet(root: Path, rng: np.random.Generator) -> None:
    """Images/<category>/<name>.jpg and labels/<category>.csv, as MLRSNet ships them."""
    labels = ["airplane", "bare soil", "buildings", "cars", "grass"]
    (root / "labels").mkdir(parents=True)
    for category in ("airplane", "parking_lot"):
        (root / "Images" / category).mkdir(parents=True)
        rows = []
        for n in range(1, 4):
            name = f"{category}_{n:05d}"
            pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "Images" / category / f"{name}.jpg")
            rows.append([f"{name}.jpg", *(int(v) for v in rng.integers(0, 2, len(labels)))])
        with open(root / "labels" / f"{category}.csv", "w", newline="") as f:
            csv.writer(f).writerows([["image", *labels], *rows])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The folders and the database the examples name."""
    ws = tmp_path_factory.mktemp("docs")
    make_bigearthnet(ws, GENERATED_PATCHES)
    real = SAMPLES / "BigEarthNet"  # the real patches, whose keys the examples read
    for part in ("BigEarthNet-S2", "BigEarthNet-S1", "Reference_Maps"):
        for tile in (real / part).iterdir():
            for patch in tile.iterdir():
                shutil.copytree(patch, ws / part / tile.name / patch.name)
    convert(ws, ws / "BigEarthNet.lmdb", progress=False)
    for name in SAMPLE_DIRS:
        (ws / name).symlink_to(SAMPLES / name)
    (ws / "Major-TOM-Core").mkdir()
    (ws / "Major-TOM-Core" / "S2L2A").symlink_to(SAMPLES / "Major-TOM-Core" / "S2L2A")
    rng = np.random.default_rng(0)
    product = "S1A_IW_GRDH_1SDV_20220706T170000_20220706T170025_044000_054000_ABCD_rtc"
    for band in ("vh", "vv"):
        s1 = ws / "Major-TOM-Core" / "S1RTC" / "0U" / "0U_199R" / product / f"{band}.tif"
        write_tif(s1, rng.random((1, 16, 16), dtype=np.float32))
    for patch in ("1234/00017.tif", "1234/00018.tif"):
        write_tif(ws / "enmap" / patch, rng.integers(-100, 9000, (202, 8, 8), dtype=np.int16))
    make_mlrsnet(ws / "MLRSNet", rng)
    # What the datasets ship as (docs/archives.md): archives and a Major-TOM hub Parquet file.
    for part in ("BigEarthNet-S2", "BigEarthNet-S1", "Reference_Maps"):
        pack_tar(ws / part, ws / f"{part}.tar.zst")
    pack_tar(SAMPLES / "HySpecNet-11k", ws / "hyspecnet-11k-01.tar.gz")
    # BigEarthNet-S1 split into two parts as the hub publishes it (.tar.gzaa, .tar.gzab).
    joined = pack_tar(ws / "BigEarthNet-S1", ws / "BigEarthNet-S1.tar.gz").read_bytes()
    (ws / "BigEarthNet-S1.tar.gz").unlink()
    (ws / "BigEarthNet-S1.tar.gzaa").write_bytes(joined[: len(joined) // 2])
    (ws / "BigEarthNet-S1.tar.gzab").write_bytes(joined[len(joined) // 2 :])
    images = ws / "Core-S2L2A" / "images"
    images.mkdir(parents=True)
    products = [p for p in (SAMPLES / "Major-TOM-Core" / "S2L2A").rglob("S2*") if p.is_dir()]
    major_tom_parquet(products, images / "part_00001.parquet")
    return ws


def run_dir(workspace: Path, tmp_path: Path, code: str) -> Path:
    """A fresh directory with links to the workspace, less the databases ``code`` writes."""
    writes = {
        m.group(1)
        for line in code.splitlines()
        if "verify" not in line
        for m in WRITES.finditer(line)
    }
    for entry in workspace.iterdir():
        if entry.name not in writes:
            (tmp_path / entry.name).symlink_to(entry)
    return tmp_path


def run_rico(line: str, cwd: Path) -> None:
    args = shlex.split(line, comments=True)[1:]
    python_only = any(a.startswith(("--metadata", "--scheduler")) for a in args)
    program = [str(RICO_BIN)] if RICO_BIN.is_file() and not python_only else [sys.executable, "-m", "rico"]  # fmt: skip
    env = dict(os.environ, NO_COLOR="1")
    done = subprocess.run(
        program + args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, f"$ {line}\nexit {done.returncode}\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("example", RUNNABLE, ids=[e.name for e in RUNNABLE])
def test_example_runs_as_written(example, workspace, tmp_path, monkeypatch, capsys):
    if example.skip:
        pytest.skip(example.skip)
    cwd = run_dir(workspace, tmp_path, example.code)
    monkeypatch.chdir(cwd)
    if example.lang == "python":
        namespace = {"__name__": "__docs_example__"}
        exec(compile(example.code, example.name, "exec"), namespace)  # noqa: S102 - the docs' own code
        return
    for line in rico_lines(example.code):
        run_rico(line, cwd)
