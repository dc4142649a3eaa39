#!/usr/bin/env python3
"""The engine's layers, checked: which rico-core modules each module may import.

rico-core is built in layers whose imports run one way (docs/architecture.md):

- ``base``: what every layer shares (errors, the LMDB wrapper and its SIGBUS guard, record
  encoding, labels, progress, aligned buffers);
- ``write``: the conversion (specs and presets, sources, planning, reading, decoding, writing,
  shards, verify), which may use the read layer (verify and resume read databases);
- ``read``: the database reader, key selection, batches, read-ahead, statistics, the read
  benchmark, which never import the write layer.

A module's imports are the ``crate::<module>`` paths in its files (``use crate::{a, b}`` too).
Run by ``make lint``; prints each import that crosses a layer the wrong way and exits 1.

    python tools/check_layers.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "rust" / "rico-core" / "src"

LAYERS = {
    "base": {"error", "lmdb", "fault", "record", "labels", "progress", "buffer"},
    "read": {"reader", "batch", "select", "stats", "bench"},
    "write": set("spec datasets sources planning reading writing convert sharding verify".split()),
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


def main() -> int:
    wrong = []
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
        for name in sorted(imports(path.read_text())):
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
        return 1
    print(f"rico-core layers hold ({sum(1 for _ in SRC.rglob('*.rs'))} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
