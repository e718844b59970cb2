"""g4f's OpenAI-compatible API server offers AutonomousAI.

The server is g4f's own FastAPI app (``g4f.api.create_app``, what ``g4f api``
serves), run by uvicorn in a thread on a socket bound to 127.0.0.1:0, and
called over HTTP. test_autoload.py starts the real ``g4f api`` command.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from helpers import closed_port_url

from g4f_autonomous.emulator import Fault

PING = [{"role": "user", "content": "ping pong"}]


class ApiServer:
    def __init__(self) -> None:
        # conftest has made g4f offline; only now may g4f.api be imported.
        import uvicorn
        from g4f.api import AppConfig, create_app

        self._config = AppConfig
        self._saved = AppConfig.ignore_cookie_files
        AppConfig.ignore_cookie_files = True  # no scan of the user's cookie and .har files
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning", access_log=False))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("g4f's API server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)
        self._socket.close()
        self._config.ignore_cookie_files = self._saved


@pytest.fixture(scope="module")
def api() -> Iterator[ApiServer]:
    server = ApiServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def http(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=60) as client:
        yield client


def test_providers_lists_it(http):
    providers = http.get("/v1/providers").json()
    assert [p for p in providers if p["id"] == "AutonomousAI"] == [
        {"id": "AutonomousAI", "object": "provider", "created": 0,
         "url": "https://www.autonomous.ai/anon/", "label": "Autonomous AI"}
    ]


def test_provider_detail_names_vision_model(http):
    detail = http.get("/v1/providers/AutonomousAI").json()
    assert (detail["id"], detail["label"], detail["vision_models"]) == ("AutonomousAI", "Autonomous AI", ["vision"])


def test_models_lists_provider_and_public_aliases(http):
    models = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert models["AutonomousAI"]["provider"] is True
    assert models["AutonomousAI"]["vision"] is True
    for alias in ("llama-3.3-70b", "qwen-2.5-coder-32b", "hermes-3", "llama-3.2-90b", "llama-3.2-70b"):
        assert models[alias]["provider"] is False


def test_provider_models_marks_vision(http):
    data = http.get("/api/AutonomousAI/models").json()["data"]
    assert [m["id"] for m in data] == ["llama", "qwen_coder", "hermes", "vision", "summary"]
    assert [m["id"] for m in data if m["vision"]] == ["vision"]


def test_chat_completion_answers_with_emulator_text(http, emulator_env):
    response = http.post("/v1/chat/completions", json={"model": "hermes-3", "provider": "AutonomousAI", "messages": PING})
    assert response.status_code == 200
    answer = response.json()
    assert answer["choices"][0]["message"]["content"] == "hermes heard: ping pong"
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["provider"] == "AutonomousAI"
    assert emulator_env.emulator.requests[0].body["stream"] is False


def test_streamed_chat_completion_carries_emulator_deltas(http, emulator_env):
    response = http.post(
        "/v1/chat/completions",
        json={"model": "llama-3.3-70b", "provider": "AutonomousAI", "messages": PING, "stream": True},
    )
    assert response.status_code == 200
    chunks = [json.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "llama heard: ping pong"
    assert {c["provider"] for c in chunks} == {"AutonomousAI"}
    assert emulator_env.emulator.requests[0].body["stream"] is True


def test_provider_path_route_answers(http, emulator_env):
    # g4f also routes /api/<provider>/chat/completions.
    response = http.post("/api/AutonomousAI/chat/completions", json={"model": "llama-3.2-70b", "messages": PING})
    assert response.json()["choices"][0]["message"]["content"] == "summary heard: ping pong"


def test_chat_completion_maps_upstream_failure_to_error(http, emulator_env):
    emulator_env.emulator.fault = Fault(status=429)
    response = http.post("/v1/chat/completions", json={"model": "llama", "provider": "AutonomousAI", "messages": PING})
    # g4f answers a provider's RateLimitError with 429 and a fixed message.
    assert response.status_code == 429
    assert response.json()["error"]["message"] == "Request execution failed"
    assert emulator_env.emulator.requests[0].path == "/api/v1/ai/chat"


def test_health_route_reports_emulator_reachable(http, emulator_env):
    response = http.get("/api/AutonomousAI/health")
    assert response.status_code == 200
    assert response.json() == {"url": emulator_env.base_url, "status": 200, "ok": True}


def test_health_route_reports_closed_port_unreachable(http, monkeypatch):
    closed = closed_port_url()
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", closed)
    health = http.get("/api/AutonomousAI/health").json()
    assert (health["ok"], health["status"], health["url"]) == (False, 0, closed)
    assert "refused" in health["error"].lower()
