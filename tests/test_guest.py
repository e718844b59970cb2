"""A good guest in g4f: nothing g4f writes names AutonomousAI, and routing can be left to g4f.

CI runs this module on every g4f release of its matrix, with test_smoke.py and
under the same rules: it tests the installed wheel (its subprocesses import the
installed copy through the start-up hook, from a folder outside the
repository), imports only what conftest.py, helpers.py, offline.py and prefetch.py provide,
and skips a test only where the g4f release lacks what it tests.

"Without the plugin" is a process started with ``G4F_AUTONOMOUS_AUTOLOAD=0``:
the hook then imports nothing of the plugin (each probe reports that), so g4f
runs exactly as if the plugin were uninstalled. Each test compares the files a
g4f run wrote with and without the plugin, then runs g4f "after the uninstall"
on the folders the plugin run left, as a user who removed the plugin would.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
from helpers import closed_port, on_an_emulator
from offline import offline_env
from prefetch import Prefetch

G4F_VERSION = version("g4f")
NAME = "AutonomousAI"
ALIASES = ["llama-3.3-70b", "qwen-2.5-coder-32b", "hermes-3", "llama-3.2-90b", "llama-3.2-70b"]
# The upstream's own model names: no route to AutonomousAI (g4f's "llama" is its alias of llama-3.3-70b).
UPSTREAM_NAMES = ["qwen_coder", "hermes", "vision", "summary"]
# What each alias asks of the upstream.
UPSTREAM = {"llama-3.3-70b": "llama", "qwen-2.5-coder-32b": "qwen_coder", "hermes-3": "hermes",
            "llama-3.2-90b": "vision", "llama-3.2-70b": "summary"}
PLUGIN_OFF = {"G4F_AUTONOMOUS_AUTOLOAD": "0"}


def g4f_env(root: Path, **extra: str) -> dict[str, str]:
    """g4f offline in ``root``: the installed copy only, and any non-loopback HTTP refused at once."""
    env = offline_env(root, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9",
                      NO_PROXY="127.0.0.1,localhost")
    for name in ("PYTHONPATH", "G4F_AUTONOMOUS_AUTOLOAD", "G4F_AUTONOMOUS_ROUTING", "G4F_IGNORED_PROVIDERS"):
        env.pop(name, None)
    env.update(extra)
    return env


def run_probe(root: Path, env: dict[str, str], script: str, *args: str) -> dict:
    """Run ``script`` in ``root`` with ``env`` (a :func:`g4f_env`); its last line of output, as JSON."""
    done = subprocess.run([sys.executable, "-c", script, *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def probe_in(root: Path, script: str, *args: str, **extra: str) -> functools.partial:
    """``run_probe`` in ``root`` (made now), g4f offline there: its environment fixed now, for a job run later."""
    root.mkdir(parents=True, exist_ok=True)
    return functools.partial(run_probe, root, g4f_env(root, **extra), script, *args)


def files_under(root: Path) -> dict[str, bytes]:
    """Every file in ``root`` (HOME, g4f's cache and config folders of a run), by relative path."""
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file() and "__pycache__" not in path.parts}


def comparable(path: str, data: bytes) -> object:
    """A file's content as compared between two runs: JSON as data (g4f fills some maps in thread order).

    g4f's saved models per provider (``all_models``) differ between two runs of g4f alone (a provider
    whose catalogue fetch races, PollinationsImage on 8.1.7), so that file is compared by its
    providers and by the model router's list, where the plugin's routes would show.
    """
    if not path.endswith(".json"):
        return data
    value = json.loads(data)
    if path.endswith("all_models.json") and isinstance(value, dict):
        return sorted(value), value.get("AnyProvider")
    return value


def same_content(left: dict[str, bytes], right: dict[str, bytes]) -> bool:
    return left.keys() == right.keys() and all(
        comparable(path, data) == comparable(path, right[path]) for path, data in left.items())


def naming_it(files: dict[str, bytes]) -> list[str]:
    return [path for path, data in files.items() if NAME.encode() in data]


def gui_module_has(attribute: str) -> bool:
    """Whether this g4f's GUI backend (g4f.gui.server.api) has ``attribute``, judged by its source: no import."""
    import importlib.util

    spec = importlib.util.find_spec("g4f.gui.server.api")
    return spec is not None and spec.origin is not None and attribute in Path(spec.origin).read_text()


# --- 1. nothing left behind: the GUI's saved lists ------------------------------------------

GUI_PROBE = textwrap.dedent(
    """
    import json, sys
    import g4f.debug
    g4f.debug.version_check = False
    from g4f.gui.server.api import Api
    try:
        providers = [entry["name"] for entry in Api.get_providers()]
    except Exception as error:  # g4f 8.3.x's own list recurses without end here, plugin or not
        print(json.dumps({"failed": type(error).__name__}))
        sys.exit(0)
    models = Api().get_all_models() if hasattr(Api, "get_all_models") else {}
    # Read again, from what the first call saved where g4f saves: the same providers, the same router models
    # (the other models per provider may differ: a catalogue fetch races in g4f, plugin or not).
    models_again = Api().get_all_models() if models else {}
    again = [entry["name"] for entry in Api.get_providers()] == providers and sorted(models_again) == sorted(
        models) and models_again.get("AnyProvider") == models.get("AnyProvider")
    print(json.dumps({"plugin": "g4f_autonomous" in sys.modules, "providers": providers,
                      "models_of": sorted(models), "read_again_same": again}))
    """
)


def gui_runs(root: Path) -> Callable[[], dict]:
    """The GUI probe without the plugin, with it, and without it again on what the plugin run saved."""
    without, with_it, after = (probe_in(root / "without", GUI_PROBE, **PLUGIN_OFF), probe_in(root / "with", GUI_PROBE),
                               probe_in(root / "with", GUI_PROBE, **PLUGIN_OFF))

    def run() -> dict:
        runs = {"without": without()}
        if "failed" not in runs["without"]:
            runs["with"] = with_it()
            runs["saved"] = files_under(root / "with")
            runs["after"] = after()
        return runs
    return run


def test_gui_saved_lists_are_the_ones_g4f_alone_saves(prefetched):
    """From 8.1 g4f's GUI saves its provider list and models per provider in its cache folder, without expiry.

    Before 8.1 it saves neither: then the test shows that the GUI writes nothing at all, plugin or not.
    """
    pytest.importorskip("flask", reason="g4f's GUI needs the [gui] extra")
    runs, root = prefetched.result("guest gui lists")
    without = runs["without"]
    if "failed" in without:
        pytest.skip(f"g4f {G4F_VERSION}'s own GUI provider list fails: {without['failed']}")
    with_it = runs["with"]
    assert (without["plugin"], with_it["plugin"]) == (False, True)
    assert without["read_again_same"] and with_it["read_again_same"]

    # The plugin run offers AutonomousAI, in both lists, and writes what g4f alone writes.
    assert NAME not in without["providers"]
    assert with_it["providers"] == [*without["providers"], NAME]
    if without["models_of"]:
        assert with_it["models_of"] == sorted([*without["models_of"], NAME])
    saved = runs["saved"]
    assert naming_it(saved) == []
    assert same_content(saved, files_under(root / "without"))

    # After the uninstall, g4f reads what the plugin run saved: its own lists, byte for byte unchanged.
    after = runs["after"]
    assert after["providers"] == without["providers"]
    assert after["models_of"] == without["models_of"]
    assert files_under(root / "with") == saved


# --- 1. nothing left behind: g4f's packaged providers.json (8.7.4 on) ----------------------


def packaged_providers_json() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("g4f")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "providers.json"


@pytest.fixture
def packaged_list(prefetched) -> Iterator[Path]:
    """g4f's packaged providers.json, which the runs below make g4f rewrite; put back as it was afterwards.

    This module's jobs read it: they end first (how they end is their tests' to say).
    """
    for key in GUEST_JOBS:
        with contextlib.suppress(Exception):
            prefetched.result(key)
    pytest.importorskip("flask", reason="g4f's GUI needs the [gui] extra")
    if not gui_module_has("_write_providers_cache"):
        pytest.skip(f"g4f {G4F_VERSION} keeps no provider list in its package (8.7.4 on)")
    path = packaged_providers_json()
    original = path.read_bytes() if path.exists() else None
    try:
        yield path
    finally:
        if original is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(original)


def serve_and_get(root: Path, command: list[str], port: int, path: str, **extra: str) -> list[dict]:
    """Start one of g4f's own commands (g4f gui, g4f api), GET ``path`` once it answers, stop it."""
    root.mkdir(parents=True, exist_ok=True)
    log = root / "server.log"
    with open(log, "w") as output:
        process = subprocess.Popen([sys.executable, "-m", "g4f.cli", *command], cwd=root,
                                   env=g4f_env(root, **extra), stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:  # urllib: the smoke venvs have no httpx
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
                    return json.loads(response.read())
            except (urllib.error.URLError, ConnectionError):  # not serving yet (an HTTP error is a URLError)
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"g4f {command[0]} did not answer {path}:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(30)


def gui_with_ignored(root: Path, ignored: str, **extra: str) -> list[str]:
    """``g4f gui --ignored-providers <ignored>``: the provider names its page is given."""
    port = closed_port()
    command = ["gui", "--host", "127.0.0.1", "--port", str(port), "--ignore-cookie-files",
               *(["--ignored-providers", ignored] if ignored else [])]
    return [entry["name"] for entry in serve_and_get(root, command, port, "/backend-api/v2/providers", **extra)]


@functools.lru_cache(maxsize=1)
def api_help() -> str:
    """``g4f api --help``, asked once: a fresh interpreter importing g4f costs a second."""
    with tempfile.TemporaryDirectory() as root:
        return subprocess.run([sys.executable, "-m", "g4f.cli", "api", "--help"], capture_output=True, text=True,
                              timeout=120, cwd=root, env=g4f_env(Path(root))).stdout


def api_with_ignored(root: Path, ignored: str, **extra: str) -> list[str]:
    """``g4f api`` with ``G4F_IGNORED_PROVIDERS``: the provider names its GUI page is given."""
    port = closed_port()
    command = ["api", "--bind", f"127.0.0.1:{port}", "--ignore-cookie-files", "--no-access-log"]
    if "--disable-pa-auto-download" in api_help():
        command.append("--disable-pa-auto-download")  # 8.7 on: else it fetches an add-on at start
    providers = serve_and_get(root, command, port, "/backend-api/v2/providers",
                              **({"G4F_IGNORED_PROVIDERS": ignored} if ignored else {}), **extra)
    return [entry["name"] for entry in providers]


@pytest.mark.parametrize("serve", [gui_with_ignored, api_with_ignored], ids=["g4f gui", "g4f api"])
def test_ignored_providers_rewrite_providers_json_as_g4f_alone_would(tmp_path, packaged_list, serve):
    """With providers ignored, g4f recomputes its list and rewrites the providers.json in its package."""
    original = packaged_list.read_bytes()
    ignored = json.loads(original)[0]["name"]  # any provider of g4f's own will do

    without = serve(tmp_path / "without", ignored, **PLUGIN_OFF)
    written_without = packaged_list.read_bytes()
    packaged_list.write_bytes(original)
    with_it = serve(tmp_path / "with", ignored)
    written_with = packaged_list.read_bytes()

    assert ignored not in without and ignored not in with_it
    assert NAME not in without
    assert with_it == [*without, NAME]
    assert written_with == written_without  # byte for byte
    assert NAME.encode() not in written_with
    assert naming_it(files_under(tmp_path / "with")) == []

    # After the uninstall: g4f serves its own list from that file, without AutonomousAI, and leaves it as it is.
    after = serve(tmp_path / "with", "", **PLUGIN_OFF)
    assert NAME not in after
    assert after == [entry["name"] for entry in json.loads(written_without)]
    assert packaged_list.read_bytes() == written_without


def test_ignoring_it_keeps_it_out_of_the_gui_list(tmp_path, packaged_list):
    """A user who ignores AutonomousAI by name does not get it back from the plugin."""
    assert NAME not in gui_with_ignored(tmp_path, NAME)
    assert NAME.encode() not in packaged_list.read_bytes()


# --- 2. routing in the open -------------------------------------------------------------------

ROUTE_PROBE = textwrap.dedent(
    """
    import ast, json, sys
    import g4f.debug
    g4f.debug.version_check = False
    lines = []
    g4f.debug.log = lambda *values, **kwargs: lines.append(" ".join(str(value) for value in values))
    from g4f.client import Client
    try:
        from g4f.providers.any_provider import AnyProvider
        model_map = AnyProvider.model_map
    except ImportError:  # g4f before 8: no model router
        model_map = {}
    PING = [{"role": "user", "content": "ping"}]

    def outcome(**kwargs):
        lines.clear()
        try:
            answer = Client().chat.completions.create(messages=PING, **kwargs)
            result = {"answer": [answer.provider or kwargs.get("provider"), answer.choices[0].message.content]}
        except Exception as error:
            result = {"error": type(error).__name__}
        tried = None  # the candidates g4f's router picked, from its own log line
        for line in lines:
            if "Using providers:" in line:
                tried = sorted(ast.literal_eval(line.split("Using providers:", 1)[1].split(" for model")[0].strip()))
        return {**result, "tried": tried}

    routes = {alias: {**outcome(model=alias), "map": sorted(model_map.get(alias, {}))} for alias in sys.argv[1:]}
    by_name = {"provider=AutonomousAI": outcome(model="hermes-3", provider="AutonomousAI"),
               "model=AutonomousAI:hermes": outcome(model="AutonomousAI:hermes")}
    # Where g4f's API server and GUI look a provider name up, and the GUI's provider list.
    from g4f.Provider import ProviderUtils
    listed = {"by name": getattr(ProviderUtils.convert.get("AutonomousAI"), "__name__", None)}
    try:
        from g4f.gui.server.api import Api
        listed["gui"] = "AutonomousAI" in [entry["name"] for entry in Api.get_providers()]
    except Exception:  # no [gui] extra, or g4f 8.3.x's own list failing offline
        listed["gui"] = None
    print(json.dumps({"plugin": "g4f_autonomous" in sys.modules, "routes": routes, "by_name": by_name,
                      "listed": listed, "has_router": bool(model_map)}))
    """
)


def routing_runs(root: Path) -> Callable[[str], dict[str, dict]]:
    """The five aliases and the upstream's names, asked with no provider named: plugin on, routing off, plugin off."""
    names = [*ALIASES, *UPSTREAM_NAMES]
    envs = {"on": {}, "off": {"G4F_AUTONOMOUS_ROUTING": "0"}, "without": PLUGIN_OFF}
    for name in envs:
        (root / name).mkdir(parents=True)
    envs = {name: g4f_env(root / name, **extra) for name, extra in envs.items()}

    def run(base_url: str) -> dict[str, dict]:
        return {name: run_probe(root / name, {**env, "G4F_AUTONOMOUS_BASE_URL": base_url}, ROUTE_PROBE, *names)
                for name, env in envs.items()}
    return run


GUEST_JOBS = ["guest gui lists", "guest routing"]


def prefetch(jobs: Prefetch, root: Path) -> None:
    """The probes, ahead of their tests (see prefetch.py); the routing ones on an emulator of their own."""
    if importlib.util.find_spec("flask"):  # else the test skips
        run = gui_runs(root / "gui")
        jobs.submit("guest gui lists", lambda: (run(), root / "gui"))
    jobs.submit("guest routing", on_an_emulator, routing_runs(root / "routing"))


@pytest.fixture(scope="module")
def routing(prefetched) -> dict[str, dict]:
    """The routing probes' results (see routing_runs)."""
    runs, _ = prefetched.result("guest routing")
    return runs


def test_routing_off_leaves_g4f_routing_as_without_the_plugin(routing):
    assert (routing["off"]["plugin"], routing["without"]["plugin"]) == (True, False)
    assert routing["off"]["routes"] == routing["without"]["routes"]
    for alias, route in routing["off"]["routes"].items():
        assert NAME not in route["map"], alias
        assert NAME not in (route["tried"] or []), alias
        assert route.get("answer", [None])[0] != NAME, alias


def test_routing_off_keeps_it_selectable_by_name(routing):
    assert routing["off"]["listed"] == routing["on"]["listed"]
    assert routing["off"]["listed"]["by name"] == NAME  # g4f's API server finds it by this lookup
    assert routing["off"]["listed"]["gui"] in (True, None)  # None: this g4f's GUI list is not available
    assert routing["off"]["by_name"] == routing["on"]["by_name"]
    assert routing["off"]["by_name"]["provider=AutonomousAI"]["answer"] == [NAME, "hermes heard: ping"]
    if routing["off"]["has_router"]:  # "Provider:model" strings are read by g4f's model router (8 on)
        assert routing["off"]["by_name"]["model=AutonomousAI:hermes"]["answer"][1] == "hermes heard: ping"


def test_routing_on_sends_each_alias_to_it(routing):
    if not routing["on"]["has_router"]:
        pytest.skip(f"g4f {G4F_VERSION} has no model router (g4f.providers.any_provider, 8 on)")
    without = routing["without"]["routes"]
    for alias in ALIASES:
        route = routing["on"]["routes"][alias]
        # Offline, g4f's other providers fail, so the answer is AutonomousAI's: the alias reached it.
        assert route.get("answer") == [NAME, f"{UPSTREAM[alias]} heard: ping"], (alias, route)
        # It joins the route g4f had; where g4f had none, it is the route.
        assert route["map"] == sorted({*without[alias]["map"], NAME}), alias
        if route["tried"] is not None:
            assert NAME in route["tried"], alias
        if not without[alias]["map"]:  # g4f alone has no provider for it (8.8.6: hermes-3, llama-3.2-70b)
            assert route["tried"] in (None, [NAME]), alias



def test_upstream_model_names_route_as_without_the_plugin(routing):
    """Only the aliases route to it: g4f 8.8 would also have found it by its upstream names ("qwen_coder")."""
    for name in UPSTREAM_NAMES:
        assert routing["on"]["routes"][name] == routing["without"]["routes"][name], name
