"""The package's layers: pure modules that load neither g4f nor aiohttp, and registration only where g4f is.

Each check runs in a fresh interpreter (the test process has g4f loaded
already), on the copy of the package under test, with the start-up hook
turned off so that only the package's own behaviour is seen.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from offline import offline_env
from prefetch import Prefetch

import g4f_autonomous
import g4f_autonomous_autoload as autoload

PURE_MODULES = ["sse", "wire", "redact", "inflate", "conformance", "errors"]
CODE_UNDER_TEST = sorted({str(Path(g4f_autonomous.__file__).parent.parent), str(Path(autoload.__file__).parent)})
# What a fresh interpreter reports: heavy modules loaded, and whether AutonomousAI is in g4f's registry.
REPORT = textwrap.dedent(
    """
    import json, sys
    heavy = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("g4f", "aiohttp")})
    ours = sorted(m for m in sys.modules if m.startswith("g4f_autonomous."))
    registered = None
    if "g4f" in sys.modules:
        from g4f.Provider import ProviderUtils
        registered = "AutonomousAI" in ProviderUtils.convert
    print(json.dumps({"heavy": heavy, "ours": ours, "registered": registered}))
    """
)


REGISTERING = [
    "import g4f_autonomous; import g4f",  # the package first, g4f later: registered when g4f arrives
    "import g4f; import g4f_autonomous",  # g4f first: registered at once
    "import g4f_autonomous.sse; import g4f",  # even through a pure module: what the start-up hook does
    "from g4f_autonomous.provider import AutonomousAI",  # the provider's own import brings g4f along
    "from g4f_autonomous import AutonomousAI",
    "from g4f_autonomous import register",
]
ALL_CODE = [*(f"import g4f_autonomous.{module}" for module in PURE_MODULES), "import g4f_autonomous", *REGISTERING]


def run_fresh(root: Path, env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code) + REPORT], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def prefetch(jobs: Prefetch, root: Path) -> None:
    """Every code of this module, each in a new interpreter of its own (see prefetch.py)."""
    for number, code in enumerate(ALL_CODE):
        folder = root / str(number)
        folder.mkdir()
        env = offline_env(folder, PYTHONPATH=":".join(CODE_UNDER_TEST), G4F_AUTONOMOUS_AUTOLOAD="0")
        jobs.submit(code, run_fresh, folder, env, code)


def fresh(prefetched: Prefetch, code: str) -> dict:
    """What REPORT said after ``code`` in a new interpreter, on the code under test, without the start-up hook."""
    done = prefetched.result(code)
    assert done.returncode == 0, done.stderr
    assert "could not register" not in done.stderr, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("module", PURE_MODULES)
def test_a_pure_module_loads_neither_g4f_nor_aiohttp(prefetched, module):
    report = fresh(prefetched, f"import g4f_autonomous.{module}")
    assert report["heavy"] == []
    # nothing that registers, nor anything that would reach g4f
    assert not {"g4f_autonomous.registry", "g4f_autonomous.provider", "g4f_autonomous.compat"} & set(report["ours"])


def test_the_package_alone_loads_nothing_heavy(prefetched):
    assert fresh(prefetched, "import g4f_autonomous") == {"heavy": [], "ours": [], "registered": None}


@pytest.mark.parametrize("code", REGISTERING)
def test_g4f_finds_the_provider_once_both_are_imported(prefetched, code):
    assert fresh(prefetched, code)["registered"] is True


def test_public_names_are_the_providers(tmp_path):
    from g4f_autonomous import provider, registry

    assert g4f_autonomous.AutonomousAI is provider.AutonomousAI
    assert g4f_autonomous.register is registry.register
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        g4f_autonomous.nothing  # noqa: B018


def test_when_imported_from_many_threads_adds_one_finder_and_keeps_every_callback(monkeypatch):
    """register() is called from any thread: the finder goes in once, no callback is lost.

    Without the lock, 8 threads starting together put in a second finder in about 1 round of 60.
    """
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setattr(autoload, "_callbacks", {})
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, so that a race shows
    races = 0
    try:
        for round_ in range(300):
            sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, autoload._PostImportFinder)]
            name = f"layers_never_imported_{round_}"
            start = threading.Barrier(8)

            def arm(worker: int, name: str = name, start: threading.Barrier = start) -> None:
                start.wait()
                autoload.when_imported(name, lambda module, worker=worker: None)

            threads = [threading.Thread(target=arm, args=(worker,)) for worker in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            finders = sum(isinstance(finder, autoload._PostImportFinder) for finder in sys.meta_path)
            races += finders != 1 or len(autoload._callbacks[name]) != 8
    finally:
        sys.setswitchinterval(previous)
    assert races == 0


def test_a_callback_asked_for_while_the_module_notifies_runs_at_once(watched):
    """What the start-up hook does: its callback imports the package, which asks to be told about g4f."""
    seen = []
    autoload.when_imported(watched, lambda module: autoload.when_imported(watched, seen.append))
    module = __import__(watched)
    assert seen == [module]


def test_a_module_imported_again_is_being_imported_while_its_code_runs(watched, tmp_path):
    autoload.when_imported(watched, lambda module: None)
    __import__(watched)
    del sys.modules[watched]
    (tmp_path / f"{watched}.py").write_text(
        "import g4f_autonomous_autoload\nDURING = g4f_autonomous_autoload.being_imported(__name__)\n")
    module = __import__(watched)
    assert module.DURING is True
    assert autoload.being_imported(watched) is False
