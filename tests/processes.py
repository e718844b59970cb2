"""Starting and ending the subprocesses a test or benchmark runs."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_process(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate, wait up to ``grace`` seconds, then kill: never leave it running."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)


class Batch:
    """Subprocesses started together and read one by one: while a test reads one, the others run on.

    A fresh interpreter importing g4f takes half a second of one core: a batch of them
    started at once keeps both cores busy. Each result is the process's own, as
    ``subprocess.run`` would give it; ``stop()`` ends whatever still runs.
    """

    def __init__(self) -> None:
        self._processes: dict[str, subprocess.Popen] = {}
        self._results: dict[str, subprocess.CompletedProcess] = {}

    def start(self, name: str, args: list[str], **options: Any) -> None:
        self._processes[name] = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                 stderr=subprocess.PIPE, text=True, **options)

    def result(self, name: str, timeout: float = 120) -> subprocess.CompletedProcess:
        if name not in self._results:
            process = self._processes[name]
            try:
                out, err = process.communicate(timeout=timeout)
            finally:
                stop_process(process)
            self._results[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        return self._results[name]

    def stop(self) -> None:
        for process in self._processes.values():
            stop_process(process)
            process.communicate()  # closes its pipes
