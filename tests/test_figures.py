"""The benchmark figures printed in README.md and docs/ are those of benches/results/*.json.

No benchmark runs here: the pages' figure blocks are rendered again from the results files
(tools/render_figures.py) and compared as text, and every ratio README.md prints (``N.Nx``)
must be a value of a results file at the printed precision.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benches" / "results"
RATIO = re.compile(r"(?<![\w.])(\d+\.(\d+))x\b")


def _renderer():
    spec = importlib.util.spec_from_file_location(
        "render_figures", ROOT / "tools" / "render_figures.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _numbers(value: object) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield float(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)


def _results() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}


@pytest.mark.parametrize("page", ["README.md", "docs/benchmarks.md"])
def test_printed_figures_are_those_of_the_results_files(page: str) -> None:
    render = _renderer()
    text = (ROOT / page).read_text()
    blocks = render.BLOCK.findall(text)
    assert blocks, f"{page} has no figures blocks"
    assert render.render(text) == text, (
        f"{page}'s figures differ from benches/results/: run `python tools/render_figures.py` "
        "(after `make bench-report`), never edit them by hand"
    )


def test_every_ratio_in_the_readme_is_a_value_of_the_results() -> None:
    values = [v for data in _results().values() for v in _numbers(data)]
    printed = RATIO.findall((ROOT / "README.md").read_text())
    assert printed, "README.md prints no ratio"
    missing = [
        f"{text}x"
        for text, decimals in printed
        if not any(f"{v:.{len(decimals)}f}" == text for v in values)
    ]
    assert not missing, f"ratios in README.md that no results file holds: {missing}"


def test_every_results_file_records_its_commit_and_machine() -> None:
    for name, data in _results().items():
        stamp = data.get("stamp")
        assert stamp, f"{name} has no stamp"
        assert re.fullmatch(r"[0-9a-f]{40}", stamp.get("commit") or ""), f"{name}: commit"
        assert stamp.get("date"), f"{name}: date"
        assert stamp.get("command"), f"{name}: command"
        machine = stamp.get("machine") or {}
        assert machine.get("cpu") and machine.get("cores"), f"{name}: machine"


def test_the_peers_are_the_real_packages_by_version() -> None:
    stamp = _results()["peers.json"]["stamp"]
    for package in ("configilm", "litdata", "torchgeo"):
        assert stamp["versions"].get(package), f"peers.json does not name {package}'s version"


def test_no_page_shows_an_unticked_target_list() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in pages:
        assert not re.search(r"^\s*[-*]?\s*\[ \]", page.read_text(), re.M), (
            f"{page.relative_to(ROOT)} shows an unticked target list"
        )
