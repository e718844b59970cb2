"""g4f's web GUI offers AutonomousAI: provider list, model list, chat, health.

The GUI is g4f's own Flask backend (``g4f.gui.get_gui_app``, the app that
``g4f gui`` runs), served by werkzeug on 127.0.0.1 and called over HTTP. Its
HTML/JS is downloaded by g4f at run time, so only the backend routes the page
calls are tested. The last test checks that nothing here wrote into g4f's
packaged providers.json.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from g4f_autonomous import AutonomousAI
from g4f_autonomous.emulator import EmulatorThread

PING = [{"role": "user", "content": "ping pong"}]


class GuiServer:
    def __init__(self) -> None:
        # conftest has made g4f offline; only now may g4f.gui be imported.
        import g4f
        from g4f.gui import get_gui_app
        from werkzeug.serving import make_server

        self.providers_json = Path(g4f.__file__).parent / "providers.json"
        self.providers_json_before = self._snapshot()
        self._server = make_server("127.0.0.1", 0, get_gui_app(), threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        # shutdown() waits for the serve loop's next poll: 0.05 s, not the default 0.5 s
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def _snapshot(self) -> tuple[int, bytes]:
        return self.providers_json.stat().st_mtime_ns, self.providers_json.read_bytes()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


@pytest.fixture(scope="module")
def gui() -> Iterator[GuiServer]:
    server = GuiServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(gui: GuiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gui.url, timeout=60) as client:
        yield client


def autonomous_entries(providers: list) -> list[dict]:
    return [p for p in providers if p.get("name") == "AutonomousAI"]


def chat_events(response: httpx.Response) -> list[dict]:
    """The JSON of each ``data:`` line of the GUI's event stream."""
    return [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]


def test_provider_list_shows_it_active_by_default(http):
    response = http.get("/backend-api/v2/providers")
    assert response.status_code == 200
    [entry] = autonomous_entries(response.json())
    assert entry["active_by_default"] is True
    assert entry["label"] == "Autonomous AI"
    assert entry["vision"] is True
    assert entry["auth"] is False


def test_api_get_providers_includes_it_once(gui):
    from g4f.gui.server.api import Api

    assert len(autonomous_entries(Api.get_providers())) == 1


def test_registering_again_keeps_one_entry_in_the_provider_list(http):
    import g4f.gui.server.api

    from g4f_autonomous import compat, register

    for _ in range(3):
        register()
        # What registration does each time g4f's GUI module is (re)imported.
        assert compat.patch_gui_provider_list(g4f.gui.server.api, AutonomousAI) is True
    [entry] = autonomous_entries(http.get("/backend-api/v2/providers").json())
    assert entry["label"] == "Autonomous AI"
    assert len(autonomous_entries(g4f.gui.server.api.Api.get_providers())) == 1


def test_provider_list_hides_it_when_not_working(http, monkeypatch):
    monkeypatch.setattr(AutonomousAI, "working", False)
    assert autonomous_entries(http.get("/backend-api/v2/providers").json()) == []


def test_model_list_shows_five_models_with_vision_marked(http):
    response = http.get("/backend-api/v2/models/AutonomousAI")
    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()}
    assert list(models) == ["llama", "qwen_coder", "hermes", "vision", "summary"]
    assert [name for name, m in models.items() if m["vision"]] == ["vision"]
    assert [name for name, m in models.items() if m["default"]] == ["llama"]


@pytest.mark.parametrize("provider", ["AutonomousAI", "autonomous-ai"])
def test_chat_request_cannot_point_the_provider_at_another_host(http, emulator_env, provider):
    """The GUI passes JSON keys to the provider; g4f's GUI itself drops base_url (but for "Custom")."""
    elsewhere = EmulatorThread()
    elsewhere.start()
    try:
        response = http.post("/backend-api/v2/conversation", json={
            "provider": provider, "model": "hermes-3", "messages": PING, "base_url": elsewhere.base_url,
        })
        assert response.status_code == 200
        events = chat_events(response)
        assert "".join(e["content"] for e in events if e["type"] == "content") == "hermes heard: ping pong"
        assert elsewhere.emulator.requests == []
        assert len(emulator_env.emulator.requests) == 1
    finally:
        elsewhere.stop()


def test_chat_streams_emulator_answer_as_content_events(http, emulator_env):
    response = http.post(
        "/backend-api/v2/conversation",
        json={"provider": "AutonomousAI", "model": "hermes-3", "messages": PING},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = chat_events(response)
    assert "".join(e["content"] for e in events if e["type"] == "content") == "hermes heard: ping pong"
    assert [e["provider"]["name"] for e in events if e["type"] == "provider"] == ["AutonomousAI"]
    assert [e["finish"]["reason"] for e in events if e["type"] == "finish"] == ["stop"]
    assert [r.path for r in emulator_env.emulator.requests] == ["/api/v1/ai/chat-hermes"]


def test_chat_reports_upstream_failure_as_error_event(http, emulator_env):
    from g4f_autonomous.emulator import Fault

    emulator_env.emulator.fault = Fault(status=403, cloudflare=True)
    response = http.post(
        "/backend-api/v2/conversation",
        json={"provider": "AutonomousAI", "model": "llama", "messages": PING},
    )
    events = chat_events(response)
    assert [e for e in events if e["type"] == "content"] == []
    [error] = [e for e in events if e["type"] == "error"]
    assert error["error"] == "CloudflareError"
    assert "Cloudflare challenge page" in error["message"]


def test_health_route_reports_emulator_reachable(http, emulator_env):
    response = http.get("/backend-api/v2/health/AutonomousAI")
    assert response.status_code == 200
    assert response.json() == {"url": emulator_env.base_url, "status": 200, "ok": True}


def test_gui_leaves_packaged_providers_json_unchanged(gui, http):
    # Once more the routes that read g4f's cached provider list, then compare.
    assert http.get("/backend-api/v2/providers").status_code == 200
    assert http.get("/backend-api/v2/models/AutonomousAI").status_code == 200
    assert gui._snapshot() == gui.providers_json_before
