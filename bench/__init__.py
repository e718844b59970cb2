"""Benchmarks of the AutonomousAI provider against a light local upstream (run by hand, not by pytest).

``python -m bench`` (or ``python bench/run.py``) from the repository root prints
the table; ``--quick`` makes it a smoke check. See ``bench/run.py``.
"""

import sys
from pathlib import Path

# The benchmarks share the tests' helpers (offline g4f, ending subprocesses).
_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
