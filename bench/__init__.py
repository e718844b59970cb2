"""Benchmarks of the AutonomousAI provider against the emulator (run by hand, not by pytest).

``python -m bench`` (or ``python bench/run.py``) from the repository root prints
the table; ``--quick`` makes it a smoke check. See ``bench/run.py``.
"""
