"""Shared fixtures: g4f kept offline, and the emulator on 127.0.0.1 (async and threaded)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterator

import pytest

from offline import prepare_offline_dirs

# Before anything imports g4f: its caches live in a temp dir holding the
# providers list it would otherwise download.
_OFFLINE_ROOT = Path(tempfile.mkdtemp(prefix="g4f-autonomous-tests-"))
os.environ.update(prepare_offline_dirs(_OFFLINE_ROOT))
os.environ.pop("G4F_AUTONOMOUS_BASE_URL", None)
os.environ.pop("G4F_AUTONOMOUS_WORKING", None)

import g4f.debug  # noqa: E402

g4f.debug.version_check = False

from g4f_autonomous.emulator import Emulator, Fault  # noqa: E402


@pytest.fixture
async def emulator() -> Emulator:
    """A fresh emulator in the test's own event loop."""
    server = Emulator()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class EmulatorThread:
    """The emulator in a loop of its own, for sync callers (g4f's sync client, Flask)."""

    def __init__(self) -> None:
        self.emulator = Emulator()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> str:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.emulator.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.emulator.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    def reset(self) -> None:
        self.emulator.fault = Fault()
        self.emulator.next_faults.clear()
        self.emulator.requests.clear()


@pytest.fixture(scope="session")
def _emulator_thread() -> Iterator[EmulatorThread]:
    server = EmulatorThread()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def threaded_emulator(_emulator_thread: EmulatorThread) -> EmulatorThread:
    """The session's threaded emulator, reset (no fault, no recorded requests) for this test."""
    _emulator_thread.reset()
    return _emulator_thread


@pytest.fixture
def emulator_env(threaded_emulator: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> EmulatorThread:
    """The threaded emulator, also set as G4F_AUTONOMOUS_BASE_URL for code that reads the env."""
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", threaded_emulator.base_url)
    return threaded_emulator
