"""Puts ``tests/`` on ``sys.path``, so that the bench scripts (``python benches/X.py``) and suites
import the generators and helpers they share with the tests from ``tests/support``::

    import _tests_path  # noqa: F401  (first: tests/ on sys.path)
    from support.trees import make_dataset
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = str(Path(__file__).resolve().parents[1] / "tests")
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
