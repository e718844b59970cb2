"""The smoke suite: what must work on every g4f release the plugin supports.

CI runs this module alone on one g4f release at each boundary of g4f's
internals (see .ci/run), and as part of the full suite on the newest. So it
uses only what every supported g4f has: the client, ``g4f.Provider``'s
``ProviderUtils``, ``IterListProvider`` and the GUI's ``Api``; what only some
releases have (config.yaml routes) is skipped, saying so, where it is missing.

The subprocess tests run the copy of the plugin this process imported (the
installed one in CI's matrix), never the one in the working directory.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import g4f.Provider
import pytest
from g4f.client import AsyncClient, Client
from g4f.providers.base_provider import AsyncGeneratorProvider
from g4f.providers.retry_provider import IterListProvider
from helpers import closed_port, closed_port_url, on_an_emulator
from offline import offline_env
from prefetch import Prefetch
from processes import stop_process

import g4f_autonomous
from g4f_autonomous import AutonomousAI, compat
from g4f_autonomous.cli import DEMO_PROMPT
from g4f_autonomous.emulator import answer_text

HELLO = [{"role": "user", "content": "hello smoke"}]


class Backup(AsyncGeneratorProvider):
    """A second provider that answers without any I/O."""

    working = True
    supports_stream = True
    default_model = "backup"
    model_aliases: dict = {}  # g4f 8.3.0's retry list reads it without a default

    @classmethod
    async def create_async_generator(cls, model, messages, **kwargs):
        yield f"backup heard: {messages[-1]['content']}"


def test_registry_layout_is_known():
    # A release whose layout compat does not know would register only partly.
    assert compat.registry_layout() != "unknown", f"g4f {compat.G4F_VERSION}"


def test_registered_under_its_name():
    assert g4f.Provider.ProviderUtils.convert["AutonomousAI"] is AutonomousAI
    assert "AutonomousAI" in g4f.Provider.__all__
    assert g4f.Provider.AutonomousAI is AutonomousAI


def test_streamed_chat_through_client_by_name(threaded_emulator):
    client = Client(provider="AutonomousAI")
    chunks = client.chat.completions.create(
        model="llama-3.3-70b", messages=HELLO, stream=True, base_url=threaded_emulator.base_url
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == answer_text("llama", HELLO)


def test_async_client_by_name(threaded_emulator):
    async def ask() -> str:
        client = AsyncClient(provider="AutonomousAI")
        answer = await client.chat.completions.create(
            model="hermes-3", messages=HELLO, base_url=threaded_emulator.base_url
        )
        return answer.choices[0].message.content

    assert asyncio.run(ask()) == answer_text("hermes", HELLO)


def test_auto_model_means_the_default(threaded_emulator):
    answer = Client(provider=AutonomousAI).chat.completions.create(
        model="auto", messages=HELLO, base_url=threaded_emulator.base_url
    )
    assert answer.choices[0].message.content == answer_text(AutonomousAI.default_model, HELLO)


def test_fallback_to_the_next_provider_through_client():
    provider = IterListProvider([AutonomousAI, Backup], False)
    answer = Client(provider=provider).chat.completions.create(
        model="", messages=HELLO, base_url=closed_port_url()
    )
    assert answer.choices[0].message.content == "backup heard: hello smoke"


def test_fallback_from_the_next_provider_through_client(threaded_emulator):
    class Broken(Backup):
        @classmethod
        async def create_async_generator(cls, model, messages, **kwargs):
            raise RuntimeError("down")
            yield  # pragma: no cover

    provider = IterListProvider([Broken, AutonomousAI], False)
    answer = Client(provider=provider).chat.completions.create(
        model="", messages=HELLO, base_url=threaded_emulator.base_url
    )
    assert answer.choices[0].message.content == answer_text(AutonomousAI.default_model, HELLO)


STARTUP_PROBE = textwrap.dedent(
    """
    import json, sys
    import g4f
    from g4f.Provider import ProviderUtils
    provider = ProviderUtils.convert.get("AutonomousAI")
    print(json.dumps({"provider": provider.__module__ if provider else None,
                      "plugin_imported": "g4f_autonomous" in sys.modules}))
    """
)


def startup_probe_env(root: Path) -> dict[str, str]:
    env = offline_env(root, HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9")
    env.pop("PYTHONPATH", None)
    env.pop("G4F_AUTONOMOUS_AUTOLOAD", None)
    return env


def test_startup_hook_registers_on_import_g4f(prefetched):
    pth = Path(sysconfig.get_paths()["purelib"]) / "g4f_autonomous_autoload.pth"
    assert pth.is_file(), "the smoke suite runs against a regular install"
    done = prefetched.result("smoke startup hook")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"provider": "g4f_autonomous.provider", "plugin_imported": True}
    assert "g4f-autonomous" not in done.stderr  # no warning about a changed g4f


def test_gui_provider_list_offers_it_with_g4f_keys():
    pytest.importorskip("flask", reason="g4f's GUI needs the [gui] extra")
    from g4f.gui.server.api import Api

    try:
        Api.get_providers.__wrapped__()  # g4f's own list, before the plugin's addition
    except Exception as error:  # g4f 8.3.0's own list recurses without end here, plugin or not
        pytest.skip(f"g4f {compat.G4F_VERSION}'s own GUI provider list fails: {type(error).__name__}")
    providers = Api.get_providers()
    ours = [entry for entry in providers if entry["name"] == "AutonomousAI"]
    others = [entry for entry in providers if entry["name"] != "AutonomousAI"]
    assert len(ours) == 1
    assert others, "g4f lists providers of its own"
    assert set(ours[0]) == set(others[0])
    assert ours[0]["label"] == AutonomousAI.label


# --- in a fresh interpreter: by name, with nothing imported but g4f ------------------------------

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks(language: str, marker: str) -> list[str]:
    """The README's code blocks in ``language`` that contain ``marker``."""
    blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    return [block for block in blocks if marker in block]


def python_env(root: Path) -> dict[str, str]:
    """g4f offline in ``root``, seeing the copy of the plugin this process imported."""
    environment = offline_env(root, PYTHONPATH=str(Path(g4f_autonomous.__file__).parent.parent))
    environment.pop("G4F_AUTONOMOUS_BASE_URL", None)
    environment.pop("G4F_AUTONOMOUS_AUTOLOAD", None)
    return environment


def run_python(root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """``python *args`` in ``root`` with ``env`` (a :func:`python_env`)."""
    return subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=120)


CHAT_BY_NAME = textwrap.dedent(
    """
    import sys
    from g4f.client import Client
    answer = Client(provider="AutonomousAI").chat.completions.create(
        model="hermes-3", messages=[{"role": "user", "content": "by name"}], base_url=sys.argv[1])
    print(answer.choices[0].message.content)
    """
)


def test_chat_by_name_in_a_fresh_interpreter_that_never_imports_the_plugin(prefetched):
    pth = Path(sysconfig.get_paths()["purelib"]) / "g4f_autonomous_autoload.pth"
    assert pth.is_file(), "the smoke suite runs against a regular install"
    done, _ = prefetched.result("smoke chat by name")
    assert (done.returncode, done.stdout) == (0, "hermes heard: by name\n"), done.stderr


# --- the command line, as a user runs it on this g4f ----------------------------------------------

def test_cli_demo_streams_from_its_own_emulator(prefetched):
    done, requests = prefetched.result("smoke demo")
    assert (done.returncode, done.stdout) == (0, f"llama heard: {DEMO_PROMPT}\n"), done.stderr
    assert requests == []  # the demo's own emulator answered, not the one there is


def test_cli_chat_goes_to_the_base_url_given(prefetched):
    # g4f before 6.8.0 ignores Client(base_url=...): this asked the public service there.
    done, requests = prefetched.result("smoke chat")
    assert (done.returncode, done.stdout) == (0, "llama heard: smoke\n"), done.stderr
    assert [request.path for request in requests] == ["/api/v1/ai/chat"]


def test_cli_models_lists_the_five_models(prefetched):
    done = prefetched.result("smoke models")
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == ["llama", "qwen_coder", "hermes", "vision", "summary"]


def check_twice(root: Path, env: dict[str, str], base_url: str) -> tuple[str, Any, Any]:
    """``check`` of ``base_url``, then of a path below it where nothing is."""
    return (base_url, run_python(root, env, "-m", "g4f_autonomous", "check", "--base-url", base_url),
            run_python(root, env, "-m", "g4f_autonomous", "check", "--base-url", base_url + "/nothing"))


def test_cli_check_passes_on_the_emulator_and_fails_on_a_wrong_path(prefetched):
    (base_url, done, wrong), _ = prefetched.result("smoke check")
    assert (done.returncode, done.stdout) == (0, f"{base_url}: reachable, HTTP 200\n"), done.stderr
    done = wrong
    assert done.returncode == 1
    assert "has no chat endpoint below it" in done.stdout


# --- routing by g4f's config.yaml ------------------------------------------------------------------

CONFIG_ROUTE = textwrap.dedent(
    """
    import os, sys
    import g4f_autonomous
    from g4f.client import Client
    from g4f.cookies import get_cookies_dir, read_cookie_files
    with open(os.path.join(get_cookies_dir(), "config.yaml"), "w", encoding="utf-8") as config:
        config.write(sys.argv[2])
    read_cookie_files()  # what g4f api, g4f gui and g4f client do at start-up
    answer = Client().chat.completions.create(
        model="team-chat", messages=[{"role": "user", "content": "routed"}], base_url=sys.argv[1])
    print(answer.choices[0].message.content, answer.provider)
    """
)


def has_config_routes() -> bool:
    return importlib.util.find_spec("g4f.providers.config_provider") is not None


def test_the_readmes_config_yaml_route_to_autonomousai_answers(prefetched):
    if not has_config_routes():
        pytest.skip(f"g4f {compat.G4F_VERSION} has no config.yaml routes")
    pytest.importorskip("yaml", reason="g4f reads config.yaml only with PyYAML installed")
    [route] = readme_blocks("yaml", "AutonomousAI")
    done, requests = prefetched.result("smoke config.yaml route")
    assert (done.returncode, done.stdout) == (0, "hermes heard: routed AutonomousAI\n"), done.stderr
    assert [request.path for request in requests] == ["/api/v1/ai/chat-hermes"]


# --- the README's offline recipe for g4f's servers, on this g4f ------------------------------------


def run_the_offline_recipe(root: Path, recipe: str, user_env: dict[str, str], base_url: str) -> tuple[Any, str]:
    """The README's offline recipe, then ``g4f api`` as it says; its answer to one chat, and its log."""
    port = closed_port()
    # As the README says: g4f 0.5.x mounts no GUI in g4f api and has no --no-gui.
    no_gui = "" if compat.G4F_VERSION.startswith("0.5.") else "--no-gui"
    script = f"{recipe}\nexec {sys.executable} -m g4f.cli api --bind 127.0.0.1:{port} {no_gui}\n"
    # mktemp's folders under root.
    env = {**user_env, "TMPDIR": str(root), "G4F_AUTONOMOUS_BASE_URL": base_url,
           "PYTHONPATH": str(Path(g4f_autonomous.__file__).parent.parent)}
    log = root / "g4f-api.log"
    with open(log, "w") as output:
        server = subprocess.Popen(["bash", "-c", script], cwd=root, env=env, stdout=output, stderr=subprocess.STDOUT)
    request = {"provider": "AutonomousAI", "model": "hermes-3", "messages": [{"role": "user", "content": "hi"}]}
    try:
        answer = None
        deadline = time.monotonic() + 90
        while answer is None:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                post = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions",
                                              data=json.dumps(request).encode(),
                                              headers={"content-type": "application/json"})
                with urllib.request.urlopen(post, timeout=30) as response:
                    answer = json.load(response)
            except (ConnectionError, urllib.error.URLError):
                time.sleep(0.1)
    finally:
        stop_process(server, 30)
    return answer, log.read_text()[-3000:]


def test_readme_offline_recipe_lets_g4f_api_answer_a_chat(prefetched):
    pytest.importorskip("uvicorn", reason="g4f api needs the [api] extra")
    [_] = readme_blocks("sh", "offline=$(mktemp -d)")
    (answer, log), _ = prefetched.result("smoke offline recipe")
    assert answer["choices"][0]["message"]["content"] == "hermes heard: hi", log


def prefetch(jobs: Prefetch, root: Path) -> None:
    """This module's fresh interpreters and g4f api, run ahead of their tests (see prefetch.py).

    Each run has a folder (and offline g4f folders) of its own: two of them may run at once.
    """
    def folder(name: str) -> Path:
        (root / name).mkdir()
        return root / name

    def python(name: str, *args: str) -> functools.partial:
        """``run_python(*args)`` in a folder of its own, its environment fixed now; a base URL may follow."""
        return functools.partial(run_python, folder(name), python_env(root / name), *args)

    jobs.submit("smoke startup hook", run_python, folder("startup"), startup_probe_env(root / "startup"), "-c",
                STARTUP_PROBE)
    jobs.submit("smoke chat by name", on_an_emulator, python("by name", "-c", CHAT_BY_NAME))
    demo = python("demo", "-m", "g4f_autonomous", "demo")
    jobs.submit("smoke demo", on_an_emulator, lambda _: demo())  # told no base URL: it has an emulator of its own
    jobs.submit("smoke chat", on_an_emulator, python("chat", "-m", "g4f_autonomous", "chat", "smoke", "--base-url"))
    jobs.submit("smoke models", python("models", "-m", "g4f_autonomous", "models"))
    jobs.submit("smoke check", on_an_emulator, functools.partial(check_twice, folder("check"), python_env(root / "check")))
    routes = readme_blocks("yaml", "AutonomousAI")
    if has_config_routes() and importlib.util.find_spec("yaml") and len(routes) == 1:  # else the test says why not
        route = python("config", "-c", CONFIG_ROUTE)
        jobs.submit("smoke config.yaml route", on_an_emulator, lambda base_url: route(base_url, routes[0]))
    recipes = readme_blocks("sh", "offline=$(mktemp -d)")
    if importlib.util.find_spec("uvicorn") and len(recipes) == 1:
        # A user's environment: no cache or config folder of the tests'.
        user_env = {key: value for key, value in os.environ.items() if not key.startswith("G4F_")}
        jobs.submit("smoke offline recipe", on_an_emulator,
                    functools.partial(run_the_offline_recipe, folder("recipe"), recipes[0], user_env))
