"""Ending a subprocess a test or benchmark started."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate, wait up to ``grace`` seconds, then kill: never leave it running."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)
