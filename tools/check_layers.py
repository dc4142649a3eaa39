#!/usr/bin/env python3
"""The engine's layers, checked: which rico-core modules each module may import.

rico-core is built in layers whose imports run one way (docs/architecture.md):

- ``base``: what every layer shares (errors, the LMDB wrapper and its SIGBUS guard, record
  encoding, labels, progress, aligned buffers);
- ``write``: the conversion (specs and presets, sources, planning, reading, decoding, writing,
  shards, verify), which may use the read layer (verify and resume read databases);
- ``read``: the database reader, key selection, batches, read-ahead, statistics, the read
  benchmark, which never import the write layer.

A module is a file or folder directly under ``src/``; its imports are the ``crate::<module>``
paths in its files (``use crate::{a, b}`` too). Two checks, run by ``make lint``; each failure
is printed and the script exits 1:

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

LAYERS = {
    "base": {"error", "lmdb", "fault", "record", "labels", "progress", "buffer", "layout", "fork"},
    "read": {"reader", "batch", "select", "stats", "bench"},
    "write": set(
        "spec datasets sources planning reading decode writing target pipeline convert sharding"
        " verify".split()
    ),
}
#: The layers each layer may import (besides itself).
MAY_IMPORT = {"base": set(), "read": {"base"}, "write": {"base", "read"}}
#: Items of the crate root (lib.rs) that every layer may use.
ROOT_ITEMS = {"thread_count", "check_count", "MAX_THREADS", "Error", "ErrorKind", "Result"}


def layer_of(module: str) -> str | None:
    return next((name for name, mods in LAYERS.items() if module in mods), None)


def imports(text: str) -> set[str]:
    """The crate modules (or root items) a file names."""
    text = re.sub(r"//[^\n]*", "", text)  # comments, doc comments included
    found = set(re.findall(r"\bcrate::(\w+)", text))
    for group in re.findall(r"\bcrate::\{([^}]*)\}", text, flags=re.S):
        found.update(re.findall(r"(?:^|,)\s*(\w+)", group))
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
    # Module -> the modules it imports outside test code, and the file of each import.
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], str] = {}
    for path in sorted(SRC.rglob("*.rs")):
        rel = path.relative_to(SRC)
        if rel.name == "lib.rs":
            continue
        module = rel.parts[0].removesuffix(".rs")
        layer = layer_of(module)
        if layer is None:
            wrong.append(
                f"{rel}: module {module!r} is in no layer (add it to tools/check_layers.py)"
            )
            continue
        text = path.read_text()
        graph.setdefault(module, set())
        for name in imports(without_tests(text)):
            if name not in ROOT_ITEMS and name != module and layer_of(name) is not None:
                graph[module].add(name)
                where.setdefault((module, name), str(rel))
        for name in sorted(imports(text)):
            if name in ROOT_ITEMS or name == module:
                continue
            other = layer_of(name)
            if other is None:
                wrong.append(f"{rel}: imports crate::{name}, which is in no layer")
            elif other != layer and other not in MAY_IMPORT[layer]:
                wrong.append(f"{rel}: the {layer} layer imports crate::{name} ({other} layer)")
    for line in wrong:
        print(line, file=sys.stderr)
    if wrong:
        print(
            f"{len(wrong)} import(s) against the engine's layers; see tools/check_layers.py",
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
        f"rico-core layers hold, and its {len(graph)} modules import no circle"
        f" ({sum(1 for _ in SRC.rglob('*.rs'))} files)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
