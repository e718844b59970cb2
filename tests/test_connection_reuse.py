"""Keep-alive across calls, and the pooled sessions of loops that are gone.

A small aiohttp.web server of our own (not the emulator) decides when the body
ends after [DONE]: a little later, or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json

import pytest
from aiohttp import web
from g4f.client import Client
from helpers import ask

from g4f_autonomous import AutonomousAI
from g4f_autonomous import session as pool

MESSAGES = [{"role": "user", "content": "hi"}]


def event(payload: object) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


DELTA = event({"choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": None}]})
FINISH = event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})


class LateEndServer:
    """Sends one delta and [DONE], then ends the body after ``end_delay`` seconds,
    or only when ``release`` is set (``end_delay=None``). Records each request's client port."""

    def __init__(self, end_delay: float | None) -> None:
        self.end_delay = end_delay
        self.release = asyncio.Event()
        self.ports: list[int] = []
        self.runner: web.AppRunner | None = None
        self.base_url = ""

    async def chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.ports.append(request.transport.get_extra_info("peername")[1])
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(DELTA + FINISH + b"data: [DONE]\n\n")
        if self.end_delay is None:
            await self.release.wait()
        else:
            await asyncio.sleep(self.end_delay)
        with contextlib.suppress(ConnectionError):  # the client went away first, its right after [DONE]
            await response.write_eof()
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/ai/chat", self.chat)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/api/v1/ai"

    async def stop(self) -> None:
        self.release.set()
        await self.runner.cleanup()


@pytest.fixture
async def late_end_server(request):
    server = LateEndServer(request.param)
    await server.start()
    try:
        yield server
    finally:
        await pool.close_pooled_session()
        await server.stop()


@pytest.mark.parametrize("late_end_server", [0.005], indirect=True)
async def test_connection_is_reused_when_the_body_ends_just_after_done(late_end_server):
    for _ in range(3):
        items = await asyncio.wait_for(ask("llama", MESSAGES, base_url=late_end_server.base_url), 30)
        assert items[0] == "hello"
    assert len(late_end_server.ports) == 3
    assert len(set(late_end_server.ports)) == 1


@pytest.mark.parametrize("late_end_server", [None], indirect=True)
async def test_answer_returns_after_done_while_the_server_keeps_the_body_open(late_end_server):
    items = await asyncio.wait_for(ask("llama", MESSAGES, base_url=late_end_server.base_url), 30)
    assert items[0] == "hello"
    assert [type(item).__name__ for item in items] == ["str", "FinishReason"]
    assert items[1].reason == "stop"
    assert not late_end_server.release.is_set()


def test_sync_client_calls_leave_no_closed_loop_in_the_session_pool(threaded_emulator):
    # g4f's sync client runs each call in a loop of its own; each loop's session
    # must leave the pool with it, or every call leaks a loop and a session.
    client = Client(provider=AutonomousAI, base_url=threaded_emulator.base_url)
    for _ in range(3):
        answer = client.chat.completions.create(messages=MESSAGES, model="llama")
        assert answer.choices[0].message.content == "llama heard: hi"
    gc.collect()
    assert [loop for loop in list(pool._pool) if loop.is_closed()] == []
