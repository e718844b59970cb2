"""The emulator in a process of its own, so server and client never share an event loop or a core."""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
from pathlib import Path

from processes import stop_process  # tests/processes.py, on the path via bench/__init__

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0


class EmulatorProcess:
    """``python -m g4f_autonomous serve --port 0`` on 127.0.0.1; ``base_url`` once started."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env
        self.base_url = ""
        self.process: subprocess.Popen | None = None

    def start(self) -> str:
        command = [sys.executable, "-m", "g4f_autonomous", "serve", "--host", "127.0.0.1", "--port", "0"]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
        )
        # The first line is the base URL; bound the wait so a broken start cannot hang the run.
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(START_TIMEOUT)
        line = self.process.stdout.readline().strip() if ready else ""
        if not line.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"the emulator did not start (first line: {line!r})")
        self.base_url = line
        return line

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        stop_process(process, 10)
        if process.stdout is not None:
            process.stdout.close()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def __enter__(self) -> "EmulatorProcess":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def kill_quietly(pid: int | None) -> None:
    """For the watchdog: end one process we started, by its id."""
    if pid is None:
        return
    try:
        os.kill(pid, 9)
    except OSError:
        pass
