#!/usr/bin/env python3
"""The Python package's imports, checked: no module of ``python/rico`` imports, directly or
through others, a module that imports it.

Every import counts, wherever it stands: at the top, inside a function (a deferred import),
under ``if TYPE_CHECKING:``, or ``importlib.import_module`` with a literal name. ``import
rico.x``, ``from rico.x import y``, ``from . import x`` and ``from .x import y`` are resolved
to the module they name (``from pkg import mod`` to ``pkg.mod`` when that is a module, else to
``pkg``); importing a submodule is not counted as importing its parent package. Each circle is
printed with the file and line of each of its imports, and the script exits 1. Run by ``make
lint``::

    python tools/check_imports.py                 # python/rico
    python tools/check_imports.py ROOT PACKAGE    # ROOT/PACKAGE, e.g. a package in a test
    python tools/check_imports.py --edges         # and print every import edge
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from check_layers import circles

ROOT = Path(__file__).resolve().parent.parent / "python"


def modules(root: Path, package: str, sources: bool = True) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file of ``root/package``; with ``sources=False``,
    the compiled extensions instead (``.pyi`` stubs, ``.so`` files: modules that import
    none of the package's)."""
    found = {}
    files = ["*.py"] if sources else ["*.pyi", "*.so"]
    for path in sorted(p for pattern in files for p in (root / package).rglob(pattern)):
        parts = list(path.relative_to(root).parts)
        parts[-1] = parts[-1].split(".")[0]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module ``name`` imports: itself, else its longest prefix that is a module."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in known:
            return ".".join(parts)
        parts.pop()
    return None


def _base(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` written in ``module``."""
    parts = module.split(".")
    if not is_package:
        parts.pop()  # a module's relative imports start at its package
    if level > 1:
        parts = parts[: len(parts) - (level - 1)]
    return ".".join(parts + ([name] if name else []))


def _import_module_call(node: ast.AST, module: str, is_package: bool) -> str | None:
    """The absolute module of ``importlib.import_module("literal"[, __name__])``, or None."""
    if not (isinstance(node, ast.Call) and node.args):
        return None
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    first = node.args[0]
    if called != "import_module" or not isinstance(first, ast.Constant):
        return None
    name = str(first.value)
    if not name.startswith("."):
        return name
    level = len(name) - len(name.lstrip("."))
    return _base(module, is_package, level, name[level:] or None)


def edges(root: Path, package: str) -> dict[tuple[str, str], tuple[Path, int]]:
    """(importer, imported) -> the file and line of the first such import."""
    sources = modules(root, package)
    known = {**modules(root, package, sources=False), **sources}
    out: dict[tuple[str, str], tuple[Path, int]] = {}
    for module, path in sources.items():
        is_package = path.name == "__init__.py"
        targets: list[tuple[str, int]] = []
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets += [(a.name, node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (
                    _base(module, is_package, node.level, node.module)
                    if node.level
                    else node.module or ""
                )
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append((sub if sub in known else base, node.lineno))
            elif (name := _import_module_call(node, module, is_package)) is not None:
                targets.append((name, node.lineno))
        for name, line in targets:
            target = _resolve(name, known)
            if target is not None and target != module:
                out.setdefault((module, target), (path, line))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=ROOT)
    parser.add_argument("package", nargs="?", default="rico")
    parser.add_argument("--edges", action="store_true", help="print every import edge")
    args = parser.parse_args()
    found_edges = edges(args.root, args.package)
    graph: dict[str, set[str]] = {}
    for a, b in found_edges:
        graph.setdefault(a, set()).add(b)
    if args.edges:
        for (a, b), (path, line) in sorted(found_edges.items()):
            print(f"{a} -> {b}    ({path.relative_to(args.root)}:{line})")
    found = circles(graph)
    for circle in found:
        print(f"import circle: {' -> '.join(circle)}", file=sys.stderr)
        for a, b in zip(circle, circle[1:]):
            path, line = found_edges[(a, b)]
            print(f"    {path.relative_to(args.root)}:{line} imports {b}", file=sys.stderr)
    if found:
        print(f"{len(found)} import circle(s) among {args.package}'s modules", file=sys.stderr)
        return 1
    count = len(modules(args.root, args.package))
    print(f"{args.package}: {count} modules, {len(found_edges)} imports, no circle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
