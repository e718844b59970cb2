"""compat: each g4f internal the plugin writes into, in a shape it does not know.

Every case must give exactly one warning (g4f's debug log, one stderr line
naming the g4f version and the internal) and leave ``Client(provider=AutonomousAI)``
working. The known layouts are checked on real g4f releases by the smoke suite.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
from g4f.client import Client
from helpers import on_an_emulator
from offline import offline_env
from prefetch import Prefetch

import g4f_autonomous_autoload
from g4f_autonomous import AutonomousAI, compat, register
from g4f_autonomous.emulator import answer_text

REPO = Path(__file__).resolve().parent.parent
HELLO = [{"role": "user", "content": "hello compat"}]


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch) -> list[str]:
    """compat warns once per process: give each test a process of its own, as far as warnings go."""
    logged: list[str] = []
    monkeypatch.setattr(compat, "_warned", set())
    monkeypatch.setattr(compat, "_stderr_used", False)
    monkeypatch.setattr(compat, "_debug_log", logged.append)
    return logged


def chat_works(base_url: str) -> bool:
    answer = Client(provider=AutonomousAI).chat.completions.create(model="llama", messages=HELLO, base_url=base_url)
    return answer.choices[0].message.content == answer_text("llama", HELLO)


def one_warning(capsys, logged: list[str], internal: str) -> str:
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    assert f"g4f {compat.G4F_VERSION} changed {internal}" in lines[0]
    assert logged == [lines[0]]
    return lines[0]


# --- the provider registry -----------------------------------------------------------


def test_unknown_registry_warns_once_and_the_class_still_works(capsys, fresh_warnings, threaded_emulator):
    module = types.ModuleType("g4f.Provider")
    module.__all__ = []
    for _ in range(2):
        assert compat.register_provider(AutonomousAI, module) == "unknown"
    one_warning(capsys, fresh_warnings, "g4f.Provider's provider registry")
    assert module.AutonomousAI is AutonomousAI  # what could be registered, is
    assert module.__all__ == ["AutonomousAI"]
    assert chat_works(threaded_emulator.base_url)


def test_registry_whose_tables_refuse_writes_warns(capsys, fresh_warnings, threaded_emulator):
    class ReadOnly(dict):
        def __setitem__(self, key, value):
            raise TypeError("read-only")

    loader = type("ProviderLoader", (), {"loaded": ReadOnly(), "names": [], "from_name": classmethod(lambda c, n: n)})
    module = types.ModuleType("g4f.Provider")
    module.ProviderLoader = loader
    module.__all__ = []
    assert compat.register_provider(AutonomousAI, module) == "unknown"
    assert "TypeError: read-only" in one_warning(capsys, fresh_warnings, "g4f.Provider's provider registry")
    assert chat_works(threaded_emulator.base_url)


def test_all_names_not_a_list_warns(capsys, fresh_warnings, threaded_emulator):
    module = types.ModuleType("g4f.Provider")
    module.__map__, module.__providers__, module.__all__ = {}, [], ("Other",)
    assert compat.register_provider(AutonomousAI, module) == "__map__"
    one_warning(capsys, fresh_warnings, "g4f.Provider.__all__")
    assert module.__map__ == {"AutonomousAI": AutonomousAI}
    assert chat_works(threaded_emulator.base_url)


@pytest.mark.parametrize("layout", ["ProviderLoader", "_provider_names", "__map_paths__", "__map__"])
def test_each_known_layout_takes_the_name_without_warning(layout, capsys):
    module = types.ModuleType("g4f.Provider")
    module.__all__ = []
    if layout == "ProviderLoader":
        module.ProviderLoader = type("ProviderLoader", (), {"loaded": {}, "names": [], "from_name": classmethod(lambda c, n: c.loaded[n])})
    elif layout == "_provider_names":
        module._provider_names, module._loaded_providers = [], {}
    elif layout == "__map_paths__":
        module.__map_paths__, module._loaded_providers = {}, {}
    else:
        module.__map__, module.__providers__ = {}, []
    for _ in range(2):
        assert compat.register_provider(AutonomousAI, module) == layout
    names = {
        "ProviderLoader": lambda: module.ProviderLoader.names,
        "_provider_names": lambda: module._provider_names,
        "__map_paths__": lambda: list(module.__map_paths__),
        "__map__": lambda: list(module.__map__),
    }[layout]()
    assert names == ["AutonomousAI"]
    assert module.__all__ == ["AutonomousAI"]
    assert capsys.readouterr().err == ""


# --- model routing ---------------------------------------------------------------------


def test_changed_model_router_warns(capsys, fresh_warnings, threaded_emulator):
    module = types.ModuleType("g4f.providers.any_provider")
    module.AnyModelProviderMixin = type("AnyModelProviderMixin", (), {"model_map": [], "models": [], "vision_models": []})
    assert compat.add_model_routes(module, AutonomousAI, {"llama-3.3-70b": "llama"}) is False
    one_warning(capsys, fresh_warnings, "g4f.providers.any_provider.AnyModelProviderMixin")
    assert module.AnyModelProviderMixin.model_map == []
    assert chat_works(threaded_emulator.base_url)


def test_missing_model_router_warns(capsys, fresh_warnings):
    assert compat.add_model_routes(types.ModuleType("g4f.providers.any_provider"), AutonomousAI, {}) is False
    one_warning(capsys, fresh_warnings, "g4f.providers.any_provider.AnyModelProviderMixin")


def test_auto_is_taught_where_g4f_does_not_know_it(monkeypatch):
    monkeypatch.setattr(AutonomousAI, "model_aliases", dict(AutonomousAI.model_aliases))
    monkeypatch.setattr(compat, "auto_model_supported", lambda: False)
    register()
    assert AutonomousAI.model_aliases["auto"] == AutonomousAI.default_model
    assert AutonomousAI.get_model("auto") == AutonomousAI.default_model


def test_this_g4f_knows_auto():
    assert compat.auto_model_supported() is True  # the newest g4f, where the full suite runs


# --- the web GUI -----------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["instance method", "no Api"])
def test_changed_gui_api_warns(shape, capsys, fresh_warnings, threaded_emulator):
    module = types.ModuleType("g4f.gui.server.api")
    if shape == "instance method":
        module.Api = type("Api", (), {"get_providers": lambda self: []})
    assert compat.patch_gui_provider_list(module, AutonomousAI) is False
    one_warning(capsys, fresh_warnings, "g4f.gui.server.api.Api.get_providers")
    assert chat_works(threaded_emulator.base_url)


def test_gui_entry_takes_g4f_keys_and_warns_on_a_new_one(capsys, fresh_warnings):
    module = types.ModuleType("g4f.gui.server.api")
    g4f_entry = {"name": "Other", "label": "Other", "sparkle": 3}
    module.Api = type("Api", (), {"get_providers": staticmethod(lambda: [g4f_entry])})
    assert compat.patch_gui_provider_list(module, AutonomousAI) is True
    listed = module.Api.get_providers()
    assert listed[0] is g4f_entry
    assert listed[1] == {"name": "AutonomousAI", "label": AutonomousAI.label, "sparkle": None}
    one_warning(capsys, fresh_warnings, "g4f's GUI provider entries")


class SavedLists:
    """g4f's GUI module as 8.7.4 on has it: lists computed from every provider, saved, then read back."""

    def __init__(self) -> None:
        self.files: dict[str, object] = {}  # what g4f wrote, by key
        files = self.files

        class Storage:  # g4f's FileStorage: get and set by key
            def get(self, key):
                return files.get(key)

            def set(self, key, value):
                files[key] = value

        class Api:
            @staticmethod
            def get_providers():
                saved = files.get("packaged")
                if saved is not None:
                    return saved
                result = [{"name": "Other", "label": "Other"}, compat.gui_entry(AutonomousAI, ["name", "label"])]
                module.storage.set("8.8.6/providers", result)
                Api._write_providers_cache(result)
                return result

            @staticmethod
            def _write_providers_cache(result):
                files["packaged"] = result

            def get_all_models(self):
                saved = module.storage.get("8.8.6/all_models")
                if saved is not None:
                    return saved
                result = {"Other": ["other-1"], "AutonomousAI": list(AutonomousAI.models)}
                module.storage.set("8.8.6/all_models", result)
                return result

        module = types.ModuleType("g4f.gui.server.api")
        module.storage = Storage()
        module.Api = Api
        self.module = module


def test_saved_lists_are_g4f_own_and_readers_add_the_provider():
    gui = SavedLists()
    for _ in range(2):  # patching twice wraps once
        assert compat.keep_out_of_saved_lists(gui.module, AutonomousAI) is True
        assert compat.patch_gui_provider_list(gui.module, AutonomousAI) is True
    api = gui.module.Api
    computed, models = api.get_providers(), api().get_all_models()
    assert gui.files == {"8.8.6/providers": [{"name": "Other", "label": "Other"}],
                         "packaged": [{"name": "Other", "label": "Other"}],
                         "8.8.6/all_models": {"Other": ["other-1"]}}
    # Read back from what was saved: the same lists as computed.
    assert api.get_providers() == computed == [{"name": "Other", "label": "Other"},
                                               {"name": "AutonomousAI", "label": AutonomousAI.label}]
    assert api().get_all_models() == models == {"Other": ["other-1"], "AutonomousAI": list(AutonomousAI.models)}


def test_saved_lists_leave_alone_what_names_no_provider():
    assert compat.without_provider({"providers": 3}, "AutonomousAI") == {"providers": 3}
    assert compat.without_provider(["AutonomousAI"], "AutonomousAI") == ["AutonomousAI"]  # a name, not an entry
    assert compat.without_provider("AutonomousAI", "AutonomousAI") == "AutonomousAI"


def test_provider_ignored_by_the_user_is_not_added_back(monkeypatch):
    import g4f.Provider

    gui = SavedLists()
    gui.files["packaged"] = [{"name": "Other", "label": "Other"}]
    gui.files["8.8.6/all_models"] = {"Other": []}
    compat.patch_gui_provider_list(gui.module, AutonomousAI)
    monkeypatch.setattr(g4f.Provider.ProviderLoader, "ignored", ["AutonomousAI"])
    assert gui.module.Api.get_providers() == [{"name": "Other", "label": "Other"}]
    assert gui.module.Api().get_all_models() == {"Other": []}


def test_changed_saved_list_writers_warn(capsys, fresh_warnings, threaded_emulator):
    gui = SavedLists()
    gui.module.storage = object()  # no set method
    gui.module.Api._write_providers_cache = lambda self, result: None  # no longer a static method
    assert compat.keep_out_of_saved_lists(gui.module, AutonomousAI) is True
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "g4f.gui.server.api.storage" in err[0]  # one stderr line per process
    assert [line.split(" changed ")[1].split(" (")[0] for line in fresh_warnings] == [
        "g4f.gui.server.api.storage", "g4f.gui.server.api.Api._write_providers_cache"]
    assert chat_works(threaded_emulator.base_url)


def test_gui_without_saved_lists_needs_nothing(capsys):
    module = types.ModuleType("g4f.gui.server.api")
    module.Api = type("Api", (), {"get_providers": staticmethod(lambda: [])})
    assert compat.keep_out_of_saved_lists(module, AutonomousAI) is False
    assert capsys.readouterr().err == ""


# --- model discovery (8.8 on) -----------------------------------------------------------


def router_module(all_providers) -> types.ModuleType:
    module = types.ModuleType("g4f.providers.provider_router")
    module.ProviderRouter = type("ProviderRouter", (), {"all_providers": all_providers})
    return module


def test_model_discovery_leaves_out_the_provider():
    other = type("Other", (), {})
    module = router_module(classmethod(lambda cls: [other, AutonomousAI]))
    for _ in range(2):
        assert compat.hide_from_model_discovery(module, AutonomousAI) is True
    assert module.ProviderRouter.all_providers() == [other]


def test_changed_model_discovery_warns(capsys, fresh_warnings, threaded_emulator):
    module = router_module(staticmethod(lambda: [AutonomousAI]))
    assert compat.hide_from_model_discovery(module, AutonomousAI) is False
    one_warning(capsys, fresh_warnings, "g4f.providers.provider_router.ProviderRouter.all_providers")
    assert chat_works(threaded_emulator.base_url)


def test_gui_entry_with_all_known_keys():
    assert compat.gui_entry(AutonomousAI)["name"] == "AutonomousAI"
    assert compat.gui_entry(AutonomousAI, ["label", "auth"]) == {"label": AutonomousAI.label, "auth": False}


def test_two_changes_give_one_stderr_line_and_two_log_lines(capsys, fresh_warnings):
    registry = types.ModuleType("g4f.Provider")
    registry.__all__ = []
    compat.register_provider(AutonomousAI, registry)
    compat.patch_gui_provider_list(types.ModuleType("g4f.gui.server.api"), AutonomousAI)
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert len(fresh_warnings) == 2


# --- a real g4f, changed before the plugin is imported ----------------------------------

CHANGED_G4F = textwrap.dedent(
    """
    import sys
    import g4f, g4f.Provider
    import g4f.gui.server.api
    # g4f renames its registry and reshapes its GUI API, as a future release might
    vars(g4f.Provider)["Registry"] = vars(g4f.Provider).pop("ProviderLoader")
    g4f.gui.server.api.Api = type("Api", (), {{}})
    import g4f_autonomous
    from g4f.client import Client
    answer = Client(provider=g4f_autonomous.AutonomousAI).chat.completions.create(
        model="llama", messages=[{{"role": "user", "content": "hi"}}], base_url={base_url!r})
    print(answer.choices[0].message.content)
    """
)


def run_python(root: Path, env: dict[str, str], code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout)


def prefetch(jobs: Prefetch, root: Path) -> None:
    """This module's fresh interpreters, run ahead of their tests (see prefetch.py)."""
    for name in ("changed", "hook alone", "names gone"):
        (root / name).mkdir()
    plugin_off = {"G4F_AUTONOMOUS_AUTOLOAD": "0", "PYTHONPATH": str(REPO)}
    changed = offline_env(root / "changed", **plugin_off)
    jobs.submit("compat changed g4f", on_an_emulator, lambda base_url: run_python(
        root / "changed", changed, CHANGED_G4F.format(base_url=base_url), timeout=120))
    jobs.submit("compat hook alone", run_python, root / "hook alone", offline_env(root / "hook alone", **plugin_off),
                HOOK_ALONE)
    jobs.submit("compat names gone", run_python, root / "names gone",
                offline_env(root / "names gone", G4F_AUTONOMOUS_AUTOLOAD="0"),
                NAMES_GONE.format(path=str(REPO / "g4f_autonomous" / "compat.py")))


def test_plugin_import_on_a_changed_g4f(prefetched):
    done, _ = prefetched.result("compat changed g4f")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "llama heard: hi"
    warnings = [line for line in done.stderr.splitlines() if line.startswith("g4f-autonomous:")]
    assert len(warnings) == 1, done.stderr
    assert f"g4f {compat.G4F_VERSION} changed g4f.Provider's provider registry" in warnings[0]


# --- no import cycle ----------------------------------------------------------------------


def test_startup_hook_is_a_leaf():
    tree = ast.parse(Path(g4f_autonomous_autoload.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported == {"_thread", "os", "sys"}  # _thread: built into the interpreter, loaded before start-up
    assert "_thread" in sys.builtin_module_names
    assert g4f_autonomous_autoload.PACKAGE == "g4f_autonomous"


HOOK_ALONE = "import sys, g4f_autonomous_autoload; print('g4f_autonomous' in sys.modules, 'g4f' in sys.modules)"


def test_startup_hook_alone_does_not_import_the_package(prefetched):
    done = prefetched.result("compat hook alone")
    assert done.stdout.split() == ["False", "False"], done.stderr


# --- what a g4f version lacks, said plainly -------------------------------------------------


def test_check_without_g4f_health_routes_still_probes(monkeypatch, capsys, threaded_emulator):
    from g4f_autonomous import cli

    monkeypatch.setattr(compat, "has_health_routes", lambda: False)
    assert cli.main(["check", "--base-url", threaded_emulator.base_url]) == 0
    out, err = capsys.readouterr()
    assert "reachable, HTTP 200" in out
    assert f"g4f {compat.G4F_VERSION} has no provider health routes" in err


def test_this_g4f_has_health_routes():
    assert compat.has_health_routes() is True


# --- the README's table and CI's matrix -------------------------------------------------------


def test_readme_compatibility_table_names_the_ci_matrix():
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Compatibility", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    in_readme = {v for row in rows[1:] for v in re.findall(r"\d+\.\d+\.\d+|newest", row[2])}
    ci = (REPO / ".ci" / "run").read_text()
    matrix = re.search(r"^MATRIX=\((.*)\)$", ci, flags=re.M).group(1).split()
    in_ci = {re.sub(r"^(\d+\.\d+\.\d+)\.0$", r"\1", v) for v in matrix}
    assert in_readme == in_ci


# --- the names provider.py and wire.py import from g4f ------------------------------------------

NAMES_GONE = textwrap.dedent(
    """
    import importlib.util, sys
    import g4f.errors
    del g4f.errors.CloudflareError, g4f.errors.G4FError
    sys.modules["g4f.providers.response"] = None  # "import g4f.providers.response" now fails
    # compat.py alone: the package would import provider.py, which imports these names itself
    spec = importlib.util.spec_from_file_location("compat_alone", {path!r})
    compat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compat)
    assert issubclass(compat.CloudflareError, g4f.errors.ResponseStatusError)
    assert compat.FinishReason("stop") == "" and compat.Usage(total_tokens=3) == ""
    assert compat.JsonConversation(thread_id="t").thread_id == "t"
    print("ok")
    """
)


def test_missing_g4f_names_get_stand_ins_and_one_warning(prefetched):
    done = prefetched.result("compat names gone")
    assert done.stdout.strip() == "ok", done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "changed g4f.errors.CloudflareError" in lines[0], lines
