"""A griffe extension for the API pages: rico's docstrings are Google-style with a few
reStructuredText habits (doctest blocks, ``::`` literal blocks, ``:func:`name``` roles), which
Markdown would otherwise render as quotes, reference links and stray colons. This rewrites
them into Markdown before mkdocstrings parses the docstrings; the sources stay as they are."""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|meth|data|attr|mod|exc|obj):`~?([^`]+)`")
DOCTEST_FLAG = re.compile(r"\s*#\s*doctest:.*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def markdown(text: str) -> str:
    """``text`` with doctest blocks and literal blocks fenced and roles as code spans."""
    lines = ROLE.sub(r"`\1`", text).splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(">>>"):
            # A doctest block: prompts, continuations and output, up to a blank line.
            pad = " " * _indent(line)
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(DOCTEST_FLAG.sub("", lines[i])[len(pad) :])
                i += 1
            out += [pad + "```pycon", *(pad + b for b in block), pad + "```"]
            continue
        if stripped.endswith("::") and i + 1 < len(lines) and not lines[i + 1].strip():
            # A literal block: the indented lines after "::" and a blank line.
            base = _indent(line)
            j = i + 2
            block = []
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            if block:
                head = line.rstrip()[:-1]
                if head.strip() != ":":
                    out.append(head)
                pad = " " * base
                code = textwrap.dedent("\n".join(block)).splitlines()
                out += ["", pad + "```python", *(pad + c if c else c for c in code), pad + "```"]
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


class RestToMarkdown(griffe.Extension):
    """Rewrites every docstring of the loaded objects with :func:`markdown`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
