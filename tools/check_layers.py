#!/usr/bin/env python3
"""The engine's layers, checked: rico-core's folders are its layers, and imports run one way.

``rust/rico-core/src`` holds ``lib.rs`` (the facade: module declarations and re-exports) and
one folder per layer (docs/architecture.md, CONTRIBUTING.md):

- ``base/``: what every layer shares (errors, the LMDB wrapper and its SIGBUS guard, record
  encoding, labels, progress, aligned buffers, thread counts);
- ``read/``: the database reader, key selection, batches, read-ahead, statistics, the read
  benchmark; it never imports the write layer;
- ``write/``: the conversion, its stages in the order a record flows (spec, sources, plan,
  fetch, decode, commit, target), sharding and verify; it may use the read layer (verify and
  resume read databases).

A module is a file or folder directly inside a layer's folder, named ``layer::module``; its
imports are the ``crate::layer::module`` paths in its files (``use crate::layer::{a, b}``
too); the root items re-exported by ``lib.rs`` (``crate::Result``...) belong to ``base``.
Checks, run by ``make lint``; each failure is printed and the script exits 1:

- ``src`` holds ``lib.rs`` and layer folders only, and each folder is a known layer;
- no import crosses a layer the wrong way;
- no import circle among the modules, whatever their layers: outside test code
  (``#[cfg(test)]`` items) a module never imports, directly or through others, a module that
  imports it. Each circle is printed with the file that makes each of its imports.

    python tools/check_layers.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "rust" / "rico-core" / "src"

#: The layers, each a folder of src/, and the layers each may import (besides itself).
MAY_IMPORT = {"base": set(), "read": {"base"}, "write": {"base", "read"}}
#: Items of the crate root (lib.rs re-exports them from base) that every layer may use.
ROOT_ITEMS = {
    "thread_count",
    "check_count",
    "count_out_of_range",
    "cores",
    "MAX_THREADS",
    "Error",
    "ErrorKind",
    "Result",
    "raster",
    "DType",
    "RemoteOptions",
}


def imports(text: str) -> set[str]:
    """The crate modules a file names, as ``layer::module`` (a root item as ``base``)."""
    text = re.sub(r"//[^\n]*", "", text)  # comments, doc comments included
    found: set[str] = set()
    for layer, rest in re.findall(r"\bcrate::(\w+)(?:::(\w+|\{[^}]*\}))?", text, flags=re.S):
        if layer in ROOT_ITEMS:
            found.add("base")
        elif rest.startswith("{"):
            found.update(f"{layer}::{m}" for m in re.findall(r"(?:^|,)\s*(\w+)", rest[1:-1]))
        else:
            found.add(f"{layer}::{rest}" if rest else layer)
    return found


RAW_STRING = re.compile(r'b?r(#*)"')
CHAR = re.compile(r"'(\\.[^']*|[^\\'])'")


def blank_literals(text: str) -> str:
    """``text`` with its comments, string and character literals blanked (spaces, newlines
    kept), so that braces and ``crate::`` inside them are not code."""
    out = list(text)
    i, n = 0, len(text)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif (m := RAW_STRING.match(text, i)) and (i == 0 or not text[i - 1].isalnum()):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            blank(i, j)
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'" and (m := CHAR.match(text, i)):
            blank(i, m.end())
            i = m.end()
        else:
            i += 1
    return "".join(out)


def without_tests(text: str) -> str:
    """``text`` without its ``#[cfg(test)]`` items (``mod tests { ... }``, a test-only
    ``use`` or function): what the crate is built from outside its tests."""
    code = blank_literals(text)
    keep = list(code)
    for m in re.finditer(r"#\[cfg\(test\)\]", code):
        i, depth = m.end(), 0
        while i < len(code):
            c = code[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            elif c == ";" and depth == 0:
                break
            i += 1
        for k in range(m.start(), min(i + 1, len(code))):
            keep[k] = " "
    return "".join(keep)


def circles(graph: dict[str, set[str]], most: int = 50) -> list[list[str]]:
    """The circles of imports among the modules of ``graph`` (module -> modules it imports):
    each a list of modules whose first is also its last, the first being the least by name;
    the shortest first, at most ``most`` of them."""
    found: list[list[str]] = []

    def walk(path: list[str]) -> None:
        for w in sorted(graph.get(path[-1], ())):
            if w == path[0]:
                found.append(path + [w])
            elif w > path[0] and w not in path:
                walk(path + [w])

    for start in sorted(graph):
        walk([start])
    found.sort(key=lambda c: (len(c), c))
    return found[:most]


def main() -> int:
    wrong = []
    for entry in sorted(SRC.iterdir()):
        if entry.is_dir() and entry.name not in MAY_IMPORT:
            wrong.append(f"{entry.name}/: a folder of src/ that is no layer (add it to MAY_IMPORT)")
        elif entry.is_file() and entry.name != "lib.rs":
            wrong.append(f"{entry.name}: src/ holds lib.rs and layer folders only")
    # Module -> the modules it imports outside test code, and the file of each import.
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for path in sorted(SRC.rglob("*.rs")):
        rel = path.relative_to(SRC)
        if len(rel.parts) < 2 or rel.parts[0] not in MAY_IMPORT:
            continue
        layer = rel.parts[0]
        if rel.name == "mod.rs" and len(rel.parts) == 2:
            module = layer  # the layer's own mod.rs: declarations and docs
        else:
            module = f"{layer}::{rel.parts[1].removesuffix('.rs')}"
        text = path.read_text()
        graph.setdefault(module, set())
        for name in imports(without_tests(text)):
            if name != module and "::" in name:
                graph[module].add(name)
                where.setdefault((module, name), str(rel))
        for name in sorted(imports(text)):
            other = name.split("::")[0]
            if other not in MAY_IMPORT:
                wrong.append(f"{rel}: imports crate::{name}, which is in no layer")
            elif other != layer and other not in MAY_IMPORT[layer]:
                wrong.append(f"{rel}: the {layer} layer imports crate::{name} ({other} layer)")
    for line in wrong:
        print(line, file=sys.stderr)
    if wrong:
        print(
            f"{len(wrong)} problem(s) with the engine's layers; see tools/check_layers.py",
            file=sys.stderr,
        )
    found = circles(graph)
    for circle in found:
        print(f"import circle: {' -> '.join(circle)}", file=sys.stderr)
        for a, b in zip(circle, circle[1:]):
            print(f"    {where[(a, b)]} imports crate::{b}", file=sys.stderr)
    if found:
        print(
            f"{len(found)} import circle(s) among rico-core's modules (outside #[cfg(test)] code)",
            file=sys.stderr,
        )
    if wrong or found:
        return 1
    print(
        f"rico-core's {len(MAY_IMPORT)} layer folders hold, and its {len(graph)} modules import"
        f" no circle ({sum(1 for _ in SRC.rglob('*.rs'))} files)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
