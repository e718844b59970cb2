"""Auto-activation: after a regular install, any process that imports g4f has AutonomousAI.

The subprocess tests run with a working directory outside the repository, so
they import the *installed* copy (as CI's regular install provides it), and
reach g4f's own commands the way users start them. ``G4F_AUTONOMOUS_AUTOLOAD=0``
must turn it all off. Interpreter start-up must stay free of g4f and aiohttp.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from helpers import closed_port
from offline import offline_env
from prefetch import Prefetch
from processes import stop_process

import g4f_autonomous_autoload as autoload

PTH_LINE = "import g4f_autonomous_autoload; g4f_autonomous_autoload.arm()"


def subprocess_env(root: Path, **extra: str) -> dict[str, str]:
    """g4f offline, the installed copy only, and any stray non-loopback HTTP sent nowhere."""
    env = offline_env(root, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
                      NO_PROXY="127.0.0.1,localhost")
    env.pop("PYTHONPATH", None)
    env.pop("G4F_AUTONOMOUS_AUTOLOAD", None)
    env.update(extra)
    return env


def run_python(root: Path, env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120)


def start_and_query(root: Path, env: dict[str, str], command: list[str], path: str) -> list[dict]:
    """Start one of g4f's own commands on a free port (``{port}`` in ``command``), GET ``path`` once it answers, stop it."""
    port = closed_port()
    command = [arg.replace("{port}", str(port)) for arg in command]
    log = root / "server.log"
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "-m", "g4f.cli", *command], cwd=root, env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10)
                if response.status_code == 200:
                    return response.json()
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"g4f {command[0]} did not answer {path}:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
    finally:
        stop_process(process, 30)


API = ["api", "--bind", "127.0.0.1:{port}", "--no-gui", "--ignore-cookie-files", "--disable-pa-auto-download",
       "--no-access-log"]
GUI = ["gui", "--host", "127.0.0.1", "--port", "{port}", "--ignore-cookie-files"]


def prefetch(jobs: Prefetch, root: Path) -> None:
    """This module's interpreters and g4f servers, run ahead of the tests that read them (see prefetch.py)."""
    def folder(name: str, **extra: str) -> tuple[Path, dict[str, str]]:
        (root / name).mkdir()
        return root / name, subprocess_env(root / name, **extra)

    jobs.submit("autoload startup", run_python, *folder("startup"),
                ["-X", "importtime", "-c", "import sys, json; print(json.dumps(sorted(sys.modules)))"])
    jobs.submit("autoload on", run_python, *folder("on"), ["-c", PROBE])
    jobs.submit("autoload off", run_python, *folder("off", G4F_AUTONOMOUS_AUTOLOAD="0"), ["-c", PROBE])
    jobs.submit("autoload api", start_and_query, *folder("api"), API, "/v1/providers")
    jobs.submit("autoload api off", start_and_query, *folder("api-off", G4F_AUTONOMOUS_AUTOLOAD="0"), API,
                "/v1/providers")
    # Not g4f gui: it rewrites g4f's packaged providers.json, which test_guest compares byte for byte.


# --- the installed hook --------------------------------------------------------


def test_regular_install_put_pth_file_in_site_packages():
    pth = Path(sysconfig.get_paths()["purelib"]) / "g4f_autonomous_autoload.pth"
    assert pth.read_text().strip() == PTH_LINE


@pytest.fixture(scope="module")
def startup(prefetched) -> tuple[list[str], str]:
    """The modules loaded by a bare interpreter start-up, and its -X importtime report."""
    done = prefetched.result("autoload startup")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def test_startup_runs_the_hook(startup):
    modules, _ = startup
    assert "g4f_autonomous_autoload" in modules


def test_startup_imports_neither_g4f_nor_aiohttp(startup):
    modules, _ = startup
    heavy = [m for m in modules if m.split(".")[0] in ("g4f", "aiohttp", "g4f_autonomous")]
    assert heavy == []


def test_startup_hook_imports_no_module_of_its_own(startup):
    # -X importtime lists a module's imports just above it, indented deeper.
    _, report = startup
    rows = [line.split("|")[-1] for line in report.splitlines() if line.startswith("import time:") and "|" in line]
    names = [(len(row) - len(row.lstrip()), row.strip()) for row in rows]
    index = [name for _, name in names].index("g4f_autonomous_autoload")
    depth = names[index][0]
    children = []
    for level, name in reversed(names[:index]):
        if level <= depth:
            break
        children.append(name)
    assert children == []


# --- g4f sees it without importing the plugin ----------------------------------

PROBE = textwrap.dedent(
    """
    import json, sys
    import g4f
    from g4f.Provider import ProviderUtils
    from g4f.client.factory import AbstractClientFactory
    provider = ProviderUtils.convert.get("AutonomousAI")
    print(json.dumps({
        "provider": provider.__module__ if provider else None,
        "plugin_imported": "g4f_autonomous" in sys.modules,
        # registration must not pull in g4f's GUI, API server or model router ...
        "heavy": sorted(m for m in ("g4f.gui", "g4f.api", "g4f.providers.any_provider") if m in sys.modules),
        # ... nor load g4f's providers list (a network fetch when not cached)
        "providers_list_loaded": bool(AbstractClientFactory._live_providers),
    }))
    """
)


@pytest.fixture(scope="module")
def probe_on(prefetched) -> dict:
    done = prefetched.result("autoload on")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_importing_g4f_registers_provider(probe_on):
    assert (probe_on["provider"], probe_on["plugin_imported"]) == ("g4f_autonomous.provider", True)


def test_registration_imports_no_gui_api_or_router(probe_on):
    assert probe_on["heavy"] == []


def test_registration_does_not_load_providers_list(probe_on):
    assert probe_on["providers_list_loaded"] is False


def test_autoload_zero_leaves_g4f_alone(prefetched):
    done = prefetched.result("autoload off")
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert (probe["provider"], probe["plugin_imported"]) == (None, False)


def test_g4f_api_command_lists_it(prefetched):
    providers = prefetched.result("autoload api")
    assert [p["label"] for p in providers if p["id"] == "AutonomousAI"] == ["Autonomous AI"]


def test_g4f_api_command_with_autoload_zero_does_not(prefetched):
    providers = prefetched.result("autoload api off")
    assert len(providers) > 10  # the server answered with g4f's own list ...
    assert [p for p in providers if p["id"] == "AutonomousAI"] == []  # ... without ours


def test_g4f_gui_command_offers_it(tmp_path):
    providers = start_and_query(tmp_path, subprocess_env(tmp_path), GUI, "/backend-api/v2/providers")
    [entry] = [p for p in providers if p["name"] == "AutonomousAI"]
    assert entry["active_by_default"] is True


# --- the hook itself, in this process ------------------------------------------


def test_callback_runs_when_watched_module_is_imported(watched):
    seen = []
    autoload.when_imported(watched, seen.append)
    assert seen == []
    module = __import__(watched)
    assert seen == [module]
    assert module.VALUE == 42


def test_watched_module_keeps_its_real_loader(watched):
    autoload.when_imported(watched, lambda module: None)
    module = __import__(watched)
    assert type(module.__loader__).__name__ == "SourceFileLoader"
    assert module.__spec__.loader is module.__loader__


def test_callback_runs_at_once_for_imported_module(watched):
    module = __import__(watched)
    seen = []
    autoload.when_imported(watched, seen.append)
    assert seen == [module]


def test_same_callback_waits_only_once(watched):
    seen = []
    for _ in range(3):
        autoload.when_imported(watched, seen.append)
    __import__(watched)
    assert len(seen) == 1


def test_failing_callback_does_not_break_the_import(watched, capsys):
    def broken(module):
        raise RuntimeError("boom")

    autoload.when_imported(watched, broken)
    assert __import__(watched).VALUE == 42
    assert capsys.readouterr().err == f"g4f-autonomous: could not register with {watched}: RuntimeError('boom')\n"


@pytest.mark.parametrize("value", ["0", "false", "off", "no", " OFF "])
def test_arm_does_nothing_when_turned_off(monkeypatch, value):
    calls = []
    monkeypatch.setattr(autoload, "when_imported", lambda *args: calls.append(args))
    monkeypatch.setenv("G4F_AUTONOMOUS_AUTOLOAD", value)
    autoload.arm()
    assert calls == []


def test_arm_watches_g4f_by_default(monkeypatch):
    calls = []
    monkeypatch.setattr(autoload, "when_imported", lambda *args: calls.append(args))
    monkeypatch.delenv("G4F_AUTONOMOUS_AUTOLOAD", raising=False)
    autoload.arm()
    assert [name for name, _ in calls] == ["g4f"]
