"""Registration: every way g4f picks a provider finds AutonomousAI, and treats it like its own.

Covers g4f's provider loader and name lookup, the clients, "Provider:model"
strings, retry lists, model routing without a provider, fallback on failure
and the ``working`` flag. The GUI and the API server have files of their own.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import g4f.Provider
import pytest
from g4f.errors import CloudflareError, ProviderNotWorkingError, RateLimitError, ResponseError, ResponseStatusError
from g4f.errors import TimeoutError as G4FTimeoutError
from g4f.providers.base_provider import AsyncGeneratorProvider
from g4f.providers.retry_provider import IterListProvider, ProviderCircuitBreaker, RetryProvider
from helpers import ask, closed_port_url, on_an_emulator, texts
from offline import offline_env
from prefetch import Prefetch

from g4f_autonomous import AutonomousAI, register
from g4f_autonomous.emulator import Fault
from g4f_autonomous.wire import MODEL_ALIASES

REPO = Path(__file__).resolve().parent.parent
PING = [{"role": "user", "content": "ping pong"}]


@pytest.fixture(autouse=True)
def fresh_circuit_breaker():
    """g4f remembers failures per provider name; keep one test's failures out of the next."""
    ProviderCircuitBreaker.reset()
    yield
    ProviderCircuitBreaker.reset()


class Backup(AsyncGeneratorProvider):
    """A tiny second provider: answers without any I/O and remembers being called."""

    working = True
    supports_stream = True
    calls: list = []

    @classmethod
    async def create_async_generator(cls, model, messages, **kwargs):
        cls.calls.append(model)
        yield f"backup heard: {messages[-1]['content']}"


@pytest.fixture
def backup():
    Backup.calls = []
    return Backup


@pytest.fixture
def failures(monkeypatch) -> list:
    """The errors g4f's retry lists swallowed (they report each through debug.error)."""
    import g4f.debug

    seen = []
    monkeypatch.setattr(g4f.debug, "error", lambda *args, **kwargs: seen.extend(a for a in args if isinstance(a, Exception)))
    return seen


async def collect(provider, model: str = "llama-3.3-70b", **kwargs) -> list[str]:
    """The text one of g4f's retry lists (not AutonomousAI alone) answers to PING with."""
    return texts(await ask(model, PING, provider=provider, **kwargs))


# --- g4f's provider loader -----------------------------------------------------


def test_provider_loader_holds_the_class():
    assert g4f.Provider.ProviderLoader.loaded["AutonomousAI"] is AutonomousAI
    assert g4f.Provider.ProviderLoader.names.count("AutonomousAI") == 1


@pytest.mark.parametrize("name", ["AutonomousAI", "autonomousai", "AUTONOMOUSAI", "Autonomous-AI", "autonomous_ai"])
def test_convert_finds_provider_under_any_spelling(name):
    assert name in g4f.Provider.ProviderUtils.convert
    assert g4f.Provider.ProviderUtils.convert[name] is AutonomousAI


def test_provider_module_attribute_is_the_class():
    assert g4f.Provider.AutonomousAI is AutonomousAI
    assert "AutonomousAI" in dir(g4f.Provider)


def test_providers_list_contains_it():
    assert AutonomousAI in g4f.Provider.__providers__


def test_register_is_idempotent():
    import g4f_autonomous_autoload

    for _ in range(3):
        assert register() is AutonomousAI
    assert g4f.Provider.ProviderLoader.names.count("AutonomousAI") == 1
    assert g4f.Provider.__all__.count("AutonomousAI") == 1
    for waiting in g4f_autonomous_autoload._callbacks.values():
        assert len(waiting) == len(set(waiting))


def test_register_from_many_threads_adds_one_entry(monkeypatch):
    loader = g4f.Provider.ProviderLoader
    monkeypatch.setattr(loader, "names", [name for name in loader.names if name != "AutonomousAI"])
    monkeypatch.setattr(loader, "loaded", {k: v for k, v in loader.loaded.items() if v is not AutonomousAI})
    start = threading.Barrier(16)
    errors = []

    def worker():
        start.wait()
        try:
            register()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert loader.names.count("AutonomousAI") == 1
    assert loader.loaded["AutonomousAI"] is AutonomousAI


# --- clients, model strings and retry lists ------------------------------------


def test_sync_client_by_name_streams_emulator_text(emulator_env):
    from g4f.client import Client

    chunks = Client(provider="AutonomousAI").chat.completions.create(model="hermes-3", messages=PING, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == "hermes heard: ping pong"
    assert emulator_env.emulator.requests[0].path == "/api/v1/ai/chat-hermes"


async def test_async_client_by_name_answers_emulator_text(emulator, monkeypatch):
    from g4f.client import AsyncClient

    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", emulator.base_url)
    answer = await AsyncClient(provider="AutonomousAI").chat.completions.create(model="llama-3.2-70b", messages=PING)
    assert answer.choices[0].message.content == "summary heard: ping pong"
    assert answer.provider == "AutonomousAI"


def test_provider_model_string_without_provider_reaches_emulator(emulator_env):
    from g4f.client import Client

    answer = Client().chat.completions.create(model="AutonomousAI:hermes", messages=PING)
    assert answer.choices[0].message.content == "hermes heard: ping pong"
    assert emulator_env.emulator.requests[0].body["aiAgent"] == "hermes"


async def test_iter_list_provider_resolves_string_entry(emulator, monkeypatch):
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", emulator.base_url)
    assert "".join(await collect(IterListProvider(["AutonomousAI"], shuffle=False))) == "llama heard: ping pong"


async def test_retry_provider_resolves_string_entry(emulator, monkeypatch):
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", emulator.base_url)
    assert "".join(await collect(RetryProvider(["autonomous-ai"], shuffle=False), "hermes-3")) == "hermes heard: ping pong"


# --- g4f's model routing (no provider given) -----------------------------------


# The model names a user gives g4f without a provider → the upstream model and its endpoint.
PUBLIC_MODELS = {
    "llama-3.3-70b": ("llama", "/api/v1/ai/chat"),
    "qwen-2.5-coder-32b": ("qwen_coder", "/api/v1/ai/chat"),
    "hermes-3": ("hermes", "/api/v1/ai/chat-hermes"),
    "llama-3.2-90b": ("vision", "/api/v1/ai/chat-vision"),
    "llama-3.2-70b": ("summary", "/api/v1/ai/summary"),
}


@pytest.mark.parametrize("name", list(PUBLIC_MODELS))
def test_model_routing_sends_each_public_name_to_its_upstream_model(emulator_env, name):
    from g4f.client import Client
    from g4f.providers.any_provider import AnyModelProviderMixin

    upstream, path = PUBLIC_MODELS[name]
    # g4f's other providers for a shared name would need the network: a user may leave them out too.
    others = [provider for provider in AnyModelProviderMixin.model_map[name] if provider != "AutonomousAI"]
    answer = Client().chat.completions.create(model=name, messages=PING, ignored=others)
    assert answer.choices[0].message.content == f"{upstream} heard: ping pong"
    assert answer.provider == "AutonomousAI"
    assert [(r.path, r.body["aiAgent"]) for r in emulator_env.emulator.requests] == [(path, upstream)]


def test_public_aliases_are_in_g4f_model_map():
    from g4f.providers.any_provider import AnyModelProviderMixin, AnyProvider

    for alias, model in MODEL_ALIASES.items():
        assert AnyModelProviderMixin.model_map[alias]["AutonomousAI"] == model
        assert alias in AnyProvider.get_models()


def test_upstream_names_do_not_take_over_g4f_model_names():
    from g4f.providers.any_provider import AnyModelProviderMixin

    # g4f itself maps "llama" to "llama-3.3-70b" with all its providers.
    for name in AutonomousAI.models:
        assert "AutonomousAI" not in AnyModelProviderMixin.model_map.get(name, {})
    assert AnyModelProviderMixin.model_aliases["llama"] == "llama-3.3-70b"


def test_vision_alias_is_a_vision_model_for_routing():
    from g4f.providers.any_provider import AnyModelProviderMixin

    assert "llama-3.2-90b" in AnyModelProviderMixin.vision_models


def test_g4f_model_discovery_does_not_route_upstream_names_to_it(emulator_env):
    # g4f 8.8 searches every registered provider's model list for a name missing from its map:
    # "qwen_coder" would go here instead of to Pollinations. Only the public aliases route here.
    from g4f.client import Client
    from g4f.providers.provider_router import ProviderRouter

    assert AutonomousAI not in ProviderRouter.all_providers()
    with pytest.raises(Exception):  # noqa: B017 - whatever g4f's own route fails with, offline
        Client().chat.completions.create(model="summary", messages=PING, ignored=["G4FSpace"])
    assert emulator_env.emulator.requests == []


def test_g4f_ranks_autonomousai_among_candidates_for_shared_model():
    # What AnyProvider does for "llama-3.3-70b": the map's providers, ranked.
    from g4f.providers.any_provider import AnyModelProviderMixin
    from g4f.providers.provider_router import ProviderRouter

    loader = g4f.Provider.ProviderLoader
    names = [name for name in AnyModelProviderMixin.model_map["llama-3.3-70b"] if name in loader.names]
    ranked = [p.__name__ for p in ProviderRouter.rank([loader.from_name(n) for n in names], model="llama-3.3-70b")]
    assert "AutonomousAI" in ranked
    assert len(ranked) > 1


def test_model_without_provider_reaches_emulator(emulator_env):
    from g4f.client import Client

    # "hermes-3" is only in g4f's map through this plugin, so routing picks AutonomousAI.
    answer = Client().chat.completions.create(model="hermes-3", messages=PING)
    assert answer.choices[0].message.content == "hermes heard: ping pong"
    assert answer.provider == "AutonomousAI"
    assert [r.body["aiAgent"] for r in emulator_env.emulator.requests] == ["hermes"]


# --- G4F_AUTONOMOUS_ROUTING=0: routing left to g4f, the provider kept by name --------


@pytest.mark.parametrize("value, enabled", [
    (None, True), ("1", True), ("yes", True), ("", True),
    ("0", False), ("false", False), (" Off ", False), ("NO", False),
])
def test_routing_setting_reads_like_the_other_flags(monkeypatch, value, enabled):
    from g4f_autonomous import registry

    if value is None:
        monkeypatch.delenv(registry.ROUTING_ENV, raising=False)
    else:
        monkeypatch.setenv(registry.ROUTING_ENV, value)
    assert registry.routing_enabled() is enabled


ROUTING_OFF_PROBE = textwrap.dedent(
    """
    import json
    import g4f.debug
    g4f.debug.version_check = False
    import g4f_autonomous
    from g4f.client import Client
    from g4f.providers.any_provider import AnyModelProviderMixin
    from g4f.providers.provider_router import ProviderRouter

    def ask(**kwargs):
        try:
            return Client().chat.completions.create(messages=[{"role": "user", "content": "ping"}],
                                                    **kwargs).choices[0].message.content
        except Exception as error:
            return type(error).__name__

    print(json.dumps({
        "in_map": sorted(alias for alias, providers in AnyModelProviderMixin.model_map.items()
                         if "AutonomousAI" in providers),
        "discovered": "AutonomousAI" in [p.__name__ for p in ProviderRouter.all_providers()],
        "hermes-3": ask(model="hermes-3"),
        "by name": ask(model="hermes-3", provider="AutonomousAI"),
        "by model string": ask(model="AutonomousAI:hermes"),
    }))
    """
)


def run_routing_off_probe(root: Path, env: dict[str, str], base_url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", ROUTING_OFF_PROBE], cwd=root,
                          env={**env, "G4F_AUTONOMOUS_BASE_URL": base_url}, capture_output=True, text=True, timeout=120)


def test_routing_off_keeps_model_names_from_it_but_not_its_name(prefetched):
    done, requests = prefetched.result("registry routing off")
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["in_map"] == []
    assert probe["discovered"] is False
    assert probe["hermes-3"] != "hermes heard: ping"  # g4f alone has no provider for it, offline
    assert probe["by name"] == probe["by model string"] == "hermes heard: ping"
    assert [r.body["aiAgent"] for r in requests] == ["hermes", "hermes"]


# --- fallback: fail before the first delta → next provider; after → error -----


@pytest.mark.parametrize(
    "fault, error_type",
    [
        (Fault(status=500), ResponseStatusError),
        (Fault(status=403, cloudflare=True), CloudflareError),
        (Fault(status=429), RateLimitError),
    ],
    ids=["http-500", "cloudflare", "rate-limited"],
)
async def test_iter_list_falls_over_to_next_on_http_failure(emulator, monkeypatch, backup, failures, fault, error_type):
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", emulator.base_url)
    emulator.fault = fault
    provider = IterListProvider(["AutonomousAI", backup], shuffle=False)
    assert await collect(provider) == ["backup heard: ping pong"]
    assert [type(error) for error in failures] == [error_type]  # AutonomousAI was tried first
    assert backup.calls == ["llama-3.3-70b"]


async def test_iter_list_falls_over_on_connection_refused(monkeypatch, backup, failures):
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", closed_port_url())
    provider = IterListProvider([AutonomousAI, backup], shuffle=False)
    assert await collect(provider) == ["backup heard: ping pong"]
    assert [type(error) for error in failures] == [ResponseError]
    assert "cannot reach" in str(failures[0])
    assert backup.calls == ["llama-3.3-70b"]


async def test_iter_list_falls_over_on_timeout(emulator, monkeypatch, backup, failures):
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", emulator.base_url)
    emulator.fault = Fault(first_byte_delay=30)  # the emulator notices the hang-up and stops waiting
    provider = IterListProvider(["AutonomousAI", backup], shuffle=False)
    assert await collect(provider, timeout=0.5) == ["backup heard: ping pong"]
    assert [type(error) for error in failures] == [G4FTimeoutError]


async def test_retry_provider_falls_over_on_http_failure(emulator, monkeypatch, backup):
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", emulator.base_url)
    emulator.fault = Fault(status=502)
    provider = RetryProvider(["AutonomousAI", backup], shuffle=False)
    assert await collect(provider) == ["backup heard: ping pong"]
    assert backup.calls == ["llama-3.3-70b"]


async def test_falls_over_to_second_autonomousai_on_healthy_emulator(emulator, threaded_emulator, monkeypatch):
    class HealthyAutonomousAI(AutonomousAI):
        """The same provider, pointed at another (healthy) upstream."""

        @classmethod
        async def create_async_generator(cls, model, messages, base_url=None, **kwargs):
            async for item in super().create_async_generator(model, messages, base_url=threaded_emulator.base_url, **kwargs):
                yield item

    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", emulator.base_url)
    emulator.fault = Fault(status=503)
    provider = IterListProvider([AutonomousAI, HealthyAutonomousAI], shuffle=False)
    assert "".join(await collect(provider, "hermes-3")) == "hermes heard: ping pong"
    assert len(emulator.requests) == 1
    assert [r.body["aiAgent"] for r in threaded_emulator.emulator.requests] == ["hermes"]


async def test_failure_after_content_started_surfaces_as_error(emulator, monkeypatch, backup):
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", emulator.base_url)
    emulator.fault = Fault(drop_after=2)
    provider = IterListProvider(["AutonomousAI", backup], shuffle=False)
    received = []
    with pytest.raises(ResponseError, match="stream broke after 2 deltas"):
        async for item in provider.create_async_generator("llama-3.3-70b", PING):
            if isinstance(item, str):
                received.append(item)
    assert "".join(received) == "llama heard: "
    assert backup.calls == []


async def test_stall_after_content_started_surfaces_as_timeout(emulator, monkeypatch, backup):
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", emulator.base_url)
    emulator.fault = Fault(stall_after=1, stall_seconds=30)
    provider = IterListProvider(["AutonomousAI", backup], shuffle=False)
    received = []
    with pytest.raises(G4FTimeoutError, match="stalled"):
        async for item in provider.create_async_generator("llama-3.3-70b", PING, timeout=0.5):
            if isinstance(item, str):
                received.append(item)
    assert received == ["llama "]
    assert backup.calls == []


def test_sync_client_with_fallback_list_answers_from_second(emulator_env, backup):
    from g4f.client import Client

    emulator_env.emulator.fault = Fault(status=403, cloudflare=True)
    client = Client(provider=IterListProvider(["AutonomousAI", backup], shuffle=False))
    answer = client.chat.completions.create(model="hermes-3", messages=PING)
    assert answer.choices[0].message.content == "backup heard: ping pong"
    assert len(emulator_env.emulator.requests) == 1


# --- the working flag --------------------------------------------------------------


@pytest.fixture
def not_working(monkeypatch):
    monkeypatch.setattr(AutonomousAI, "working", False)  # monkeypatch restores it
    return AutonomousAI


def test_not_working_is_refused_by_g4f(not_working):
    from g4f.client.service import get_model_and_provider

    with pytest.raises(ProviderNotWorkingError, match="AutonomousAI is not working"):
        get_model_and_provider("hermes-3", "AutonomousAI", stream=True)


def test_not_working_is_refused_by_chat_completion(not_working):
    import g4f

    with pytest.raises(ProviderNotWorkingError, match="AutonomousAI is not working"):
        g4f.ChatCompletion.create(model="hermes-3", provider="AutonomousAI", messages=PING)


def test_not_working_is_dropped_from_retry_list(not_working, backup):
    from g4f.client.service import get_model_and_provider

    _, provider = get_model_and_provider("hermes-3", IterListProvider(["AutonomousAI", backup], shuffle=False))
    assert provider.providers == [backup]


def test_not_working_is_skipped_by_router(not_working, backup):
    from g4f.providers.provider_router import ProviderRouter

    assert ProviderRouter.rank([AutonomousAI, backup], model="hermes-3") == [backup]


def run_with_working_zero(env: dict[str, str]) -> subprocess.CompletedProcess:
    script = textwrap.dedent(
        """
        import g4f, g4f.debug
        g4f.debug.version_check = False
        from g4f.errors import ProviderNotWorkingError
        from g4f_autonomous import AutonomousAI
        print("working:", AutonomousAI.working)
        try:
            g4f.ChatCompletion.create(model="hermes-3", provider="AutonomousAI",
                                      messages=[{"role": "user", "content": "hi"}])
        except ProviderNotWorkingError as error:
            print("refused:", error)
        """
    )
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def prefetch(jobs: Prefetch, root: Path) -> None:
    """This module's fresh interpreters, run ahead of their tests (see prefetch.py)."""
    for name in ("routing off", "working zero"):
        (root / name).mkdir()
    offline = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost"}
    routing_off = offline_env(root / "routing off", G4F_AUTONOMOUS_AUTOLOAD="0", G4F_AUTONOMOUS_ROUTING="0",
                              PYTHONPATH=str(REPO), **offline)
    jobs.submit("registry routing off", on_an_emulator,
                functools.partial(run_routing_off_probe, root / "routing off", routing_off))
    working_zero = offline_env(root / "working zero", G4F_AUTONOMOUS_WORKING="0",
                               G4F_AUTONOMOUS_BASE_URL=closed_port_url(),
                               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **offline)
    jobs.submit("registry working zero", run_with_working_zero, working_zero)


def test_working_env_zero_turns_it_off_at_import(prefetched):
    done = prefetched.result("registry working zero")
    assert done.stdout == "working: False\nrefused: AutonomousAI is not working\n", done.stderr


def test_not_working_is_refused_even_when_a_client_names_it(not_working, threaded_emulator):
    from g4f.client import Client

    client = Client(provider="AutonomousAI", base_url=threaded_emulator.base_url)
    with pytest.raises(ProviderNotWorkingError, match="AutonomousAI is not working"):
        client.chat.completions.create(model="hermes-3", messages=PING)
    assert threaded_emulator.emulator.requests == []
