"""Shared fixtures: g4f kept offline, and the emulator on 127.0.0.1 (async and threaded)."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from offline import prepare_offline_dirs
from prefetch import Prefetch

# Before anything imports g4f: its caches (and HOME) live in a temp dir holding
# the providers list it would otherwise download.
_OFFLINE_ROOT = Path(tempfile.mkdtemp(prefix="g4f-autonomous-tests-"))


def _remove_offline_root(owner: int = os.getpid()) -> None:
    """At exit, after g4f's own exit handlers (registered later, so run earlier); not in a forked child."""
    if os.getpid() == owner:
        shutil.rmtree(_OFFLINE_ROOT, ignore_errors=True)


atexit.register(_remove_offline_root)
os.environ.update(prepare_offline_dirs(_OFFLINE_ROOT))
os.environ.pop("G4F_AUTONOMOUS_BASE_URL", None)
os.environ.pop("G4F_AUTONOMOUS_WORKING", None)

import g4f.debug  # noqa: E402

g4f.debug.version_check = False

import g4f_autonomous_autoload as autoload  # noqa: E402
from g4f_autonomous.emulator import Emulator, EmulatorThread  # noqa: E402


@pytest.fixture
async def emulator() -> Emulator:
    """A fresh emulator in the test's own event loop."""
    server = Emulator()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules with jobs run ahead (see prefetch.py) go after the others, so that the worker has run
    their jobs while the others kept pytest busy; tests marked ``alone`` go last, once no job is left."""
    def order(item: pytest.Item) -> int:
        if item.get_closest_marker("alone") is not None:
            return 2
        return int(hasattr(getattr(item, "module", None), "prefetch"))

    items.sort(key=order)  # stable: each group keeps the order pytest collected it in


@pytest.fixture(scope="session")
def prefetched(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prefetch]:
    """The session's :class:`prefetch.Prefetch`, holding the jobs of every module that defines ``prefetch``."""
    jobs = Prefetch()
    try:
        modules = {item.module: None for item in request.session.items if getattr(item, "module", None)}
        for module in modules:
            if hasattr(module, "prefetch"):
                module.prefetch(jobs, tmp_path_factory.mktemp(f"prefetch-{module.__name__}"))
        yield jobs
    finally:
        jobs.close()


@pytest.fixture(scope="session", autouse=True)
def _prefetch_at_start(prefetched: Prefetch) -> None:
    """Submit every module's jobs before the first test runs (see prefetch.py)."""


@pytest.fixture(autouse=True)
def _alone(request: pytest.FixtureRequest, prefetched: Prefetch) -> Iterator[None]:
    """A test marked ``alone`` runs with the prefetch worker paused."""
    if request.node.get_closest_marker("alone") is None:
        yield
        return
    with prefetched.paused():
        yield


@pytest.fixture
def watched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh importable module name, for the start-up hook to watch; forgotten again afterwards."""
    name = f"watched_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)
    autoload._callbacks.pop(name, None)
    autoload._executed.pop(name, None)
