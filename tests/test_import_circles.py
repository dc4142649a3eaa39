"""python/rico's imports run one way (tools/check_imports.py, run by ``make lint``): no module
imports, directly or through others, deferred or not, a module that imports it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKER = ROOT / "tools" / "check_imports.py"


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CHECKER), *args], capture_output=True, text=True, timeout=120
    )


def test_python_rico_imports_no_circle():
    result = check("--edges")
    assert result.returncode == 0, result.stderr
    assert "no circle" in result.stdout
    # The two circles it once had, each held apart by a late or deferred import, are gone.
    edges = {tuple(line.split()[:3:2]) for line in result.stdout.splitlines() if " -> " in line}
    assert ("rico.torch", "rico._torch_bigearthnet") in edges
    assert ("rico._torch_bigearthnet", "rico.torch") not in edges
    assert ("rico.bigearthnet.dataset", "rico.bigearthnet.loader") in edges
    assert ("rico.bigearthnet.loader", "rico.bigearthnet.dataset") not in edges


def test_a_circle_is_found_through_deferred_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import A\n")
    (pkg / "a.py").write_text("from . import b\n\nA = 1\n")
    # A deferred import, two levels up, closes the circle a -> b -> sub.c -> a.
    (pkg / "b.py").write_text("import pkg.sub.c\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("def f():\n    from ..a import A\n\n    return A\n")
    (pkg / "d.py").write_text("from .sub import c\nfrom . import a\n")  # no circle through d
    result = check(str(tmp_path), "pkg")
    assert result.returncode == 1, result.stdout
    assert "import circle: pkg.a -> pkg.b -> pkg.sub.c -> pkg.a" in result.stderr
    assert "pkg/sub/c.py:2 imports pkg.a" in result.stderr
    assert "pkg/a.py:1 imports pkg.b" in result.stderr
    assert "pkg.d" not in result.stderr
    assert "1 import circle(s)" in result.stderr
    # Cut the deferred import: the same package has no circle.
    (pkg / "sub" / "c.py").write_text("def f():\n    return 1\n")
    assert check(str(tmp_path), "pkg").returncode == 0
