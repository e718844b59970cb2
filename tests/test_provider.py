"""AutonomousAI against the emulator: models, the request it sends, the answer it yields."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import threading
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import g4f.debug
import pytest
from aiohttp import web
from forward_proxy import ForwardProxy
from g4f.client import AsyncClient, Client
from g4f.errors import ModelNotFoundError, ProviderNotWorkingError, ResponseError
from g4f.errors import TimeoutError as G4FTimeoutError
from g4f.providers.response import FinishReason, JsonConversation, Usage
from helpers import ClockAheadLoop, ask, texts
from polling import until

from g4f_autonomous import AutonomousAI, provider
from g4f_autonomous import session as pool
from g4f_autonomous.emulator import Fault

HELLO = [{"role": "user", "content": "hello there"}]
MODELS = ["llama", "qwen_coder", "hermes", "vision", "summary"]
ALIASES = {
    "llama-3.3-70b": "llama",
    "qwen-2.5-coder-32b": "qwen_coder",
    "hermes-3": "hermes",
    "llama-3.2-90b": "vision",
    "llama-3.2-70b": "summary",
}
PATHS = {"llama": "/chat", "qwen_coder": "/chat", "hermes": "/chat-hermes", "vision": "/chat-vision", "summary": "/summary"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def decoded_messages(body: dict) -> list:
    return json.loads(base64.b64decode(body["messages"]).decode("utf-8"))


def tiny_png() -> bytes:
    """A valid 1x1 PNG, built here so the test carries no binary file."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b"")


@pytest.fixture
def g4f_log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Lines g4f's debug.log received during the test."""
    lines: list[str] = []
    monkeypatch.setattr(g4f.debug, "logging", True)
    monkeypatch.setattr(g4f.debug, "log_handler", lambda *text, file=None: lines.append(" ".join(map(str, text))))
    return lines


async def start_app(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


# --- declaration ---------------------------------------------------------------

def test_g4fs_own_chat_completion_drives_it_whole_and_streamed(threaded_emulator):
    # What being one of g4f's provider classes gives a user: g4f's entry points take it as their own.
    def create(**kwargs):
        return g4f.ChatCompletion.create(model="hermes-3", provider=AutonomousAI, messages=HELLO,
                                         base_url=threaded_emulator.base_url, **kwargs)

    assert create() == "hermes heard: hello there"
    assert "".join(texts(list(create(stream=True)))) == "hermes heard: hello there"
    assert AutonomousAI.get_models() == MODELS


def test_g4fs_gui_lists_it_as_a_working_vision_provider_that_needs_no_key():
    from g4f.gui.server.api import Api

    [entry] = [entry for entry in Api.get_providers() if entry["name"] == "AutonomousAI"]
    assert (entry["label"], entry["vision"], entry["auth"], entry["active_by_default"]) == (
        "Autonomous AI", True, False, True)


def test_g4f_shows_the_arguments_it_takes_stream_among_them():
    # g4f lists a provider's arguments (its GUI, `g4f api`'s provider details); stream only if supported.
    shown = AutonomousAI.get_params()
    for name in ("model", "messages", "stream", "media", "conversation", "timeout", "max_tokens"):
        assert f"    {name}:" in shown


async def test_system_message_and_history_reach_the_upstream_through_g4fs_client(emulator):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"}, {"role": "user", "content": "again"}]
    client = AsyncClient(provider=AutonomousAI)
    response = await client.chat.completions.create(model="llama", messages=messages, base_url=emulator.base_url)
    assert response.choices[0].message.content == "llama heard: again"
    assert emulator.requests[0].messages == messages


# --- models -------------------------------------------------------------------

@pytest.mark.parametrize("model", MODELS + list(ALIASES))
async def test_model_reaches_its_endpoint_with_its_agent(emulator, model):
    agent = ALIASES.get(model, model)
    items = await ask(model, HELLO, base_url=emulator.base_url)
    assert "".join(texts(items)) == f"{agent} heard: hello there"
    [request] = emulator.requests
    assert request.path == "/api/v1/ai" + PATHS[agent]
    assert request.body["aiAgent"] == agent


@pytest.mark.parametrize("model", ["", None, "auto"])
async def test_empty_model_uses_the_default(emulator, model):
    items = await ask(model, HELLO, base_url=emulator.base_url)
    assert "".join(texts(items)) == "llama heard: hello there"
    assert emulator.requests[0].body["aiAgent"] == "llama"


@pytest.mark.parametrize("name, model", [*ALIASES.items(), *((model, model) for model in MODELS)])
def test_g4fs_get_model_resolves_each_name_to_its_upstream_model(name, model):
    # g4f asks the provider which model a name stands for (its clients, GUI and API server).
    assert AutonomousAI.get_model(name) == model


async def test_model_is_checked_before_the_messages(emulator):
    with pytest.raises(ModelNotFoundError):
        await ask("gpt-4o", messages="not a list", base_url=emulator.base_url)


async def test_unknown_model_names_the_valid_models_and_aliases_and_sends_nothing(emulator):
    with pytest.raises(ModelNotFoundError) as caught:
        await ask("gpt-4o", HELLO, base_url=emulator.base_url)
    message = str(caught.value)
    assert "'gpt-4o'" in message
    assert f"Models: {', '.join(MODELS)}. Aliases: " in message
    assert ", ".join(f"{alias} → {model}" for alias, model in ALIASES.items()) in message
    assert emulator.requests == []


# --- the request -----------------------------------------------------------------

async def test_request_carries_browser_headers(emulator):
    await ask("llama", HELLO, base_url=emulator.base_url)
    headers = {name.lower(): value for name, value in emulator.requests[0].headers.items()}
    assert headers["accept"] == "*/*"
    assert headers["content-type"] == "application/json"
    assert headers["origin"] == "https://www.autonomous.ai"
    assert headers["referer"] == "https://www.autonomous.ai/"
    assert headers["country-code"] == "US"
    assert headers["time-zone"] == "America/New_York"
    assert headers["user-agent"].startswith("Mozilla/5.0 (Windows NT 10.0; Win64; x64)")
    assert "authorization" not in headers and "cookie" not in headers


async def test_request_body_has_exactly_the_upstream_keys(emulator):
    await ask("hermes", HELLO, base_url=emulator.base_url, stream=True)
    body = emulator.requests[0].body
    assert sorted(body) == ["aiAgent", "messages", "stream", "threadId"]
    assert (body["aiAgent"], body["stream"]) == ("hermes", True)
    assert decoded_messages(body) == HELLO


async def test_request_messages_keep_only_role_and_content(emulator):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi", "id": "x1"}]
    await ask("llama", messages, base_url=emulator.base_url)
    assert decoded_messages(emulator.requests[0].body) == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]


async def test_any_unicode_survives_the_base64_messages(emulator):
    text = "naïve 你好 مرحبا שלום 👩‍👩‍👧🚀 tab\tbell\x07"
    items = await ask("llama", [{"role": "user", "content": text}], base_url=emulator.base_url)
    assert emulator.requests[0].messages == [{"role": "user", "content": text}]
    assert "".join(texts(items)) == f"llama heard: {text}"


async def test_each_conversation_gets_a_fresh_uuid_thread_id(emulator):
    await ask("llama", HELLO, base_url=emulator.base_url)
    await ask("llama", HELLO, base_url=emulator.base_url)
    first, second = (request.body["threadId"] for request in emulator.requests)
    assert UUID.match(first) and UUID.match(second)
    assert first != second


@pytest.mark.parametrize("conversation", [JsonConversation(thread_id="thread-42"), {"thread_id": "thread-42"}],
                         ids=["JsonConversation", "dict"])
async def test_conversation_thread_id_is_reused(emulator, conversation):
    await ask("llama", HELLO, base_url=emulator.base_url, conversation=conversation)
    assert emulator.requests[0].body["threadId"] == "thread-42"


async def test_return_conversation_yields_the_thread_id_used(emulator):
    items = await ask("llama", HELLO, base_url=emulator.base_url, return_conversation=True)
    assert isinstance(items[-1], JsonConversation)
    assert items[-1].thread_id == emulator.requests[0].body["threadId"]


async def test_unknown_keyword_arguments_are_accepted(emulator):
    items = await ask("llama", HELLO, base_url=emulator.base_url, api_key=None, temperature=0.2, web_search=False)
    assert "".join(texts(items)) == "llama heard: hello there"


# --- base URL, proxy, timeout ----------------------------------------------------------

async def test_base_url_env_is_used_without_an_argument(emulator, monkeypatch):
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", emulator.base_url)
    items = await ask("summary", HELLO)
    assert "".join(texts(items)) == "summary heard: hello there"
    assert emulator.requests[0].path == "/api/v1/ai/summary"


async def test_base_url_argument_beats_the_env(emulator, monkeypatch):
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", "http://127.0.0.1:9/nothing-here")
    items = await ask("llama", HELLO, base_url=emulator.base_url)
    assert "".join(texts(items)) == "llama heard: hello there"


async def test_proxy_carries_the_request(emulator):
    proxy = ForwardProxy()
    await proxy.start()
    try:
        items = await ask("hermes", HELLO, base_url=emulator.base_url, proxy=proxy.url)
    finally:
        await proxy.stop()
    assert "".join(texts(items)) == "hermes heard: hello there"
    assert proxy.targets == [emulator.base_url + "/chat-hermes"]
    assert len(emulator.requests) == 1


async def test_timeout_without_an_answer_raises_g4f_timeout_error(emulator):
    emulator.fault = Fault(first_byte_delay=1.0)
    with pytest.raises(G4FTimeoutError):
        await ask("llama", HELLO, base_url=emulator.base_url, timeout=0.2)


# --- the answer ----------------------------------------------------------------------

async def test_stream_yields_each_delta_then_finish_reason_then_usage(emulator):
    items = await ask("llama", [{"role": "user", "content": "one two three"}], base_url=emulator.base_url,
                          join_deltas=False)
    assert items[:5] == ["llama ", "heard: ", "one ", "two ", "three"]
    assert len(items) == 7
    assert isinstance(items[5], FinishReason) and items[5].reason == "stop"
    assert isinstance(items[6], Usage)
    assert items[6].get_dict() == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}


async def test_stream_reads_a_top_level_finish_reason(emulator):
    emulator.fault = Fault(legacy_finish=True)
    items = await ask("llama", HELLO, base_url=emulator.base_url)
    reasons = [item.reason for item in items if isinstance(item, FinishReason)]
    assert reasons == ["stop"]


async def test_stream_of_one_byte_chunks_gives_the_same_deltas(emulator):
    emulator.fault = Fault(chunk_size=1)
    items = await ask("llama", HELLO, base_url=emulator.base_url, join_deltas=False)
    assert texts(items) == ["llama ", "heard: ", "hello ", "there"]


async def test_stream_false_json_answer_is_one_whole_text(emulator):
    items = await ask("hermes", HELLO, base_url=emulator.base_url, stream=False)
    assert emulator.requests[0].body["stream"] is False
    assert texts(items) == ["hermes heard: hello there"]
    assert isinstance(items[1], FinishReason) and items[1].reason == "stop"
    assert isinstance(items[2], Usage) and items[2].get_dict()["completion_tokens"] == 4


async def test_stream_false_answered_as_an_event_stream_is_one_whole_text():
    events = [{"choices": [{"delta": {"content": piece}, "finish_reason": None}]} for piece in ("all ", "in ", "one")]
    events.append({"choices": [{"delta": {}, "finish_reason": "stop"}]})
    payload = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    seen: list[dict] = []

    async def stream_anyway(request: web.Request) -> web.StreamResponse:
        seen.append(await request.json())
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for start in range(0, len(payload), 7):  # several network chunks
            await response.write(payload[start:start + 7])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/api/chat", stream_anyway)
    runner, root = await start_app(app)
    try:
        items = await ask("llama", HELLO, base_url=root + "/api", stream=False)
    finally:
        await runner.cleanup()
    assert seen[0]["stream"] is False
    assert texts(items) == ["all in one"]
    assert [item.reason for item in items if isinstance(item, FinishReason)] == ["stop"]


# --- through g4f's own clients --------------------------------------------------------------

def test_g4f_sync_client_streams_the_exact_text(emulator_env):
    client = Client(provider=AutonomousAI)
    chunks = client.chat.completions.create(model="hermes-3", messages=HELLO, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "hermes heard: hello there"
    assert emulator_env.emulator.requests[0].path == "/api/v1/ai/chat-hermes"


def test_g4f_sync_client_without_stream_gives_the_exact_text(emulator_env):
    client = Client(provider=AutonomousAI)
    answer = client.chat.completions.create(model="qwen-2.5-coder-32b", messages=HELLO, stream=False)
    assert answer.choices[0].message.content == "qwen_coder heard: hello there"
    assert emulator_env.emulator.requests[0].body["stream"] is False


async def test_g4f_async_client_streams_the_exact_text(emulator):
    client = AsyncClient(provider=AutonomousAI, base_url=emulator.base_url)
    pieces = [chunk.choices[0].delta.content or "" async for chunk in
              client.chat.completions.create(model="llama-3.2-70b", messages=HELLO, stream=True) if chunk.choices]
    assert "".join(pieces) == "summary heard: hello there"


# --- vision -------------------------------------------------------------------------------

async def test_media_becomes_an_image_url_part_of_the_last_user_message(emulator):
    png = tiny_png()
    messages = [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "describe"}]
    items = await ask("vision", messages, base_url=emulator.base_url, media=[(png, "a.png")])
    assert emulator.requests[0].messages == [
        {"role": "user", "content": "earlier"}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [
            {"type": "text", "text": "describe"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()}},
        ]},
    ]
    assert "".join(texts(items)) == "vision heard: describe [1 image]"


async def test_media_with_a_non_vision_model_switches_to_vision(emulator, g4f_log):
    media = [(tiny_png(), "a.png"), (tiny_png(), "b.png")]
    items = await ask("hermes-3", [{"role": "user", "content": "compare"}], base_url=emulator.base_url, media=media)
    assert "".join(texts(items)) == "vision heard: compare [2 images]"
    request = emulator.requests[0]
    assert (request.path, request.body["aiAgent"]) == ("/api/v1/ai/chat-vision", "vision")
    assert "AutonomousAI: hermes cannot see images, using vision" in g4f_log


# --- messages are checked before any request ---------------------------------------------------

@pytest.mark.parametrize("messages, expected", [
    ("hello", "messages must be a list"),
    ({"role": "user", "content": "hi"}, "messages must be a list"),
    ([], "messages is empty"),
    ([{"content": "hi"}], r"messages\[0\] has no 'role'"),
    ([{"role": "user", "content": "a"}, {"role": "", "content": "b"}], r"messages\[1\] has no 'role'"),
    (["hi"], r"messages\[0\] must be a dict"),
    ([{"role": "user", "content": 42}], r"messages\[0\]\.content must be a string or a list of content parts, got int"),
    ([{"role": "user"}], r"messages\[0\]\.content must be a string or a list of content parts, got NoneType"),
    ([{"role": "user", "content": ["text"]}], r"messages\[0\]\.content\[0\] must be a dict with a 'type'"),
], ids=["str", "dict", "empty", "no-role", "empty-role", "not-a-dict", "int-content", "no-content", "bad-part"])
async def test_bad_messages_raise_value_error_before_any_request(emulator, messages, expected):
    with pytest.raises(ValueError, match=expected):
        await ask("llama", messages, base_url=emulator.base_url)
    assert emulator.requests == []



# --- arguments the provider itself checks and keeps --------------------------------------------

@pytest.mark.parametrize("value, shown", [
    (0, "0"), (-1, "-1"), (2.0, "2.0"), (True, "True"), ("3", "str"), (-10**50, str(-10**50)[:40]),
])
async def test_max_tokens_must_be_a_whole_number_of_at_least_1(emulator, value, shown):
    with pytest.raises(ValueError) as caught:
        await ask("llama", HELLO, base_url=emulator.base_url, max_tokens=value)
    assert str(caught.value) == f"max_tokens must be a whole number of at least 1, got {shown}"
    assert emulator.requests == []


async def test_turned_off_it_refuses_by_name_and_sends_nothing(emulator, monkeypatch):
    monkeypatch.setattr(AutonomousAI, "working", False)
    with pytest.raises(ProviderNotWorkingError) as caught:
        await ask("llama", HELLO, base_url=emulator.base_url)
    assert str(caught.value) == ("AutonomousAI is not working "
                                 "(turned off by G4F_AUTONOMOUS_WORKING=0 or its working attribute)")
    assert emulator.requests == []


async def test_deltas_of_one_read_come_as_one_text_unless_max_tokens_or_join_deltas_false_says_otherwise(emulator):
    emulator.fault = Fault(deltas=3)  # all three events in one write
    assert texts(await ask("llama", HELLO, base_url=emulator.base_url)) == ["tok tok tok "]
    assert texts(await ask("llama", HELLO, base_url=emulator.base_url, max_tokens=3)) == ["tok "] * 3
    assert texts(await ask("llama", HELLO, base_url=emulator.base_url, join_deltas=False)) == ["tok "] * 3


async def test_total_timeout_ends_a_stream_that_keeps_going(emulator):
    emulator.fault = Fault(stall_after=1, stall_seconds=2.0)  # a gap well under the 120 s default
    with pytest.raises(G4FTimeoutError, match="total_timeout of 0.05 s reached"):
        await ask("llama", HELLO, base_url=emulator.base_url, total_timeout=0.05)


async def test_proxy_credentials_of_an_https_request_go_on_its_connect():
    heads: list[bytes] = []

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    proxy = await asyncio.start_server(refuse, "127.0.0.1", 0)
    proxy_url = f"http://u:p@127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
    try:
        with pytest.raises(ResponseError):
            await ask("llama", HELLO, base_url="https://127.0.0.1:9/api/v1/ai", proxy=proxy_url)
    finally:
        proxy.close()
        await proxy.wait_closed()
    [head] = heads
    assert head.startswith(b"CONNECT 127.0.0.1:9 HTTP/1.1\r\n")
    assert b"\r\nProxy-Authorization: Basic " + base64.b64encode(b"u:p") + b"\r\n" in head


class Watched(Mapping):
    """A message that notes the threads its role is read in (wire reads it while checking the messages)."""

    def __init__(self, content: Any, threads: set[int]) -> None:
        self._message = {"role": "user", "content": content}
        self._threads = threads

    def __getitem__(self, key: str) -> Any:
        if key == "role":
            self._threads.add(threading.get_ident())
        return self._message[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._message)

    def __len__(self) -> int:
        return len(self._message)


LIMIT = provider.OFF_LOOP_CHARACTERS


@pytest.mark.parametrize("others, content, off_loop", [
    (provider.OFF_LOOP_MESSAGES - 1, "hi", False),
    (provider.OFF_LOOP_MESSAGES, "hi", True),
    (0, "x" * LIMIT, False),
    (0, "x" * (LIMIT + 1), True),
    (1, "x" * (LIMIT - 2), False),  # the other message is "hi": characters of all messages add up
    (1, "x" * (LIMIT - 1), True),
    (1, [{"type": "text", "text": "x" * (LIMIT - 4)}, {"type": "image_url"}, {"type": "text", "text": "hi"}], False),
    (1, [{"type": "text", "text": "x" * (LIMIT - 3)}, {"type": "text", "text": "hi"}], True),
], ids=["messages-at-limit", "messages-over", "text-at-limit", "text-over", "texts-at-limit", "texts-over",
        "parts-at-limit", "parts-over"])
async def test_only_a_request_over_the_limits_is_checked_and_built_off_the_loop(emulator, others, content, off_loop):
    threads: set[int] = set()
    messages = [{"role": "user", "content": "hi"}] * others + [Watched(content, threads)]
    await ask("llama", messages, base_url=emulator.base_url)
    assert threads and (threads != {threading.get_ident()}) is off_loop


def test_without_total_timeout_a_call_that_keeps_progressing_ends_at_the_default_total():
    # answer.DEFAULT_TOTAL_TIMEOUT (600 s), the gap (timeout, 120 s) being shorter. A loop whose clock the test moves
    # on: a delta every 100 s keeps the gap from expiring, and the sixth step passes 600 s.
    delta = b'data: {"choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": null}]}\n\n'
    loop = ClockAheadLoop()

    async def call() -> tuple[int, BaseException | None]:
        step, over = asyncio.Event(), asyncio.Event()

        async def drip(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await response.prepare(request)
            while True:
                await step.wait()
                step.clear()
                if over.is_set():
                    return response
                await response.write(delta)

        app = web.Application()
        app.router.add_post("/api/chat", drip)
        runner, root = await start_app(app)
        received: list[Any] = []

        async def consume() -> None:
            async for item in AutonomousAI.create_async_generator("llama", HELLO, base_url=root + "/api"):
                received.append(item)

        consumer = asyncio.ensure_future(consume())
        try:
            for sent in range(1, 8):
                step.set()
                assert await until(lambda: len(received) == sent or consumer.done())  # noqa: B023
                if consumer.done():
                    break
                loop.ahead += 100
            await asyncio.wait([consumer], timeout=10)
            return len(received), consumer.exception() if consumer.done() else None
        finally:
            consumer.cancel()
            over.set()
            step.set()
            await runner.cleanup()
            await pool.close_pooled_session()

    try:
        deltas, error = loop.run_until_complete(call())
    finally:
        loop.close()
    assert isinstance(error, G4FTimeoutError)
    assert "did not end within 600 s" in str(error)
    assert deltas == 6
