"""The emulator as a server, driven by a plain aiohttp client (no provider involved)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp
import pytest

from g4f_autonomous import wire
from g4f_autonomous.emulator import Emulator, Fault, answer_text, serve_forever

HELLO = [{"role": "user", "content": "hello there"}]
PATHS = {"llama": "/chat", "qwen_coder": "/chat", "hermes": "/chat-hermes", "vision": "/chat-vision", "summary": "/summary"}


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def body_for(agent: str = "llama", messages: list | None = None, stream: bool = True) -> dict[str, Any]:
    return {"messages": wire.encode_messages(messages or HELLO), "threadId": "thread-1", "stream": stream, "aiAgent": agent}


def parse_events(raw: bytes) -> list[Any]:
    """The data of each event: parsed JSON, or the raw string for [DONE]."""
    events = []
    for block in raw.decode("utf-8").split("\n\n"):
        if block:
            assert block.startswith("data: "), block
            data = block[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


def deltas_of(events: list[Any]) -> list[str]:
    return [e["choices"][0]["delta"]["content"] for e in events
            if isinstance(e, dict) and e["choices"] and e["choices"][0]["delta"].get("content")]


async def post(http: aiohttp.ClientSession, emulator: Emulator, path: str, body: Any, **kwargs: Any) -> tuple[int, str, bytes]:
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    async with http.post(emulator.base_url + path, data=data, **kwargs) as response:
        return response.status, response.headers.get("content-type", ""), await response.read()


# --- answers ----------------------------------------------------------------

@pytest.mark.parametrize("agent", list(PATHS))
async def test_each_endpoint_streams_the_deterministic_answer(http, emulator, agent):
    status, content_type, raw = await post(http, emulator, PATHS[agent], body_for(agent))
    assert (status, content_type) == (200, "text/event-stream")
    events = parse_events(raw)
    assert deltas_of(events) == [f"{agent} ", "heard: ", "hello ", "there"]
    assert events[-1] == "[DONE]"


def test_answer_text_echoes_the_last_user_message_and_counts_images():
    messages = [
        {"role": "user", "content": "old"},
        {"role": "user", "content": [
            {"type": "text", "text": "what"}, {"type": "text", "text": "is it"},
            {"type": "image_url", "image_url": {"url": "data:,"}}, {"type": "image_url", "image_url": {"url": "data:,"}},
        ]},
        {"role": "assistant", "content": "ignored"},
    ]
    assert answer_text("vision", messages) == "vision heard: what is it [2 images]"


async def test_stream_ends_with_finish_reason_usage_and_done(http, emulator):
    _, _, raw = await post(http, emulator, "/chat", body_for())
    events = parse_events(raw)
    assert events[-3]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert events[-2]["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
    assert events[-1] == "[DONE]"


async def test_same_request_gives_the_same_bytes(http, emulator):
    first = await post(http, emulator, "/chat-hermes", body_for("hermes"))
    second = await post(http, emulator, "/chat-hermes", body_for("hermes"))
    assert first == second


async def test_stream_false_answers_one_json_object(http, emulator):
    status, content_type, raw = await post(http, emulator, "/summary", body_for("summary", stream=False))
    assert (status, content_type) == (200, "application/json; charset=utf-8")
    answer = json.loads(raw)
    assert answer["object"] == "chat.completion"
    assert answer["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "summary heard: hello there"},
                                  "finish_reason": "stop"}]
    assert answer["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}


async def test_requests_are_recorded_decoded(http, emulator):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "你好 👋"}]
    await post(http, emulator, "/chat", body_for("qwen_coder", messages), headers={"x-probe": "yes"})
    [recorded] = emulator.requests
    assert recorded.path == "/api/v1/ai/chat"
    assert recorded.messages == messages
    assert recorded.body == body_for("qwen_coder", messages)
    assert recorded.headers["x-probe"] == "yes"


# --- strict 400s --------------------------------------------------------------

def error_body(message: str) -> dict:
    return {"error": {"message": message, "code": 400}}


@pytest.mark.parametrize("field", ["messages", "threadId", "stream", "aiAgent"])
async def test_missing_field_is_a_400(http, emulator, field):
    body = body_for()
    del body[field]
    status, _, raw = await post(http, emulator, "/chat", body)
    assert (status, json.loads(raw)) == (400, error_body(f"missing field {field!r}"))
    assert emulator.requests == []


@pytest.mark.parametrize("field, value, kind", [
    ("messages", ["not", "base64"], "str"), ("threadId", 7, "str"), ("stream", "yes", "bool"), ("aiAgent", None, "str"),
])
async def test_wrong_type_is_a_400(http, emulator, field, value, kind):
    body = {**body_for(), field: value}
    status, _, raw = await post(http, emulator, "/chat", body)
    assert (status, json.loads(raw)) == (400, error_body(f"field {field!r} must be {kind}"))


async def test_bad_base64_is_a_400(http, emulator):
    status, _, raw = await post(http, emulator, "/chat", {**body_for(), "messages": "not*base64!"})
    assert (status, json.loads(raw)) == (400, error_body("messages is not valid base64"))


async def test_base64_of_non_json_is_a_400(http, emulator):
    messages = base64.b64encode(b"[{not json").decode()
    status, _, raw = await post(http, emulator, "/chat", {**body_for(), "messages": messages})
    assert (status, json.loads(raw)) == (400, error_body("messages is not base64 of UTF-8 JSON"))


async def test_message_without_role_is_a_400(http, emulator):
    status, _, raw = await post(http, emulator, "/chat", body_for(messages=[{"content": "hi"}]))
    assert (status, json.loads(raw)) == (400, error_body("messages[0] has no 'role': use 'system', 'user' or 'assistant'"))


@pytest.mark.parametrize("messages", [
    [], [{"role": "", "content": "hi"}], [{"role": "user", "content": 5}], ["hi"],
    [{"role": "user", "content": [{"type": "text"}]}], [{"role": "user", "content": [{"text": "no type"}]}],
])
async def test_messages_are_refused_by_the_providers_own_rules(http, emulator, messages):
    """The emulator refuses a request exactly as the provider's own check would refuse its messages."""
    with pytest.raises(ValueError) as refused:
        wire.check_messages(messages)
    raw_messages = base64.b64encode(json.dumps(messages).encode()).decode()
    status, _, raw = await post(http, emulator, "/chat", {**body_for(), "messages": raw_messages})
    assert (status, json.loads(raw)) == (400, error_body(str(refused.value)))


@pytest.mark.parametrize("agent, path", [("hermes", "/chat"), ("llama", "/chat-hermes"), ("vision", "/summary")])
async def test_agent_on_another_endpoint_is_a_400(http, emulator, agent, path):
    status, _, raw = await post(http, emulator, path, body_for(agent))
    assert (status, json.loads(raw)) == (400, error_body(f"aiAgent {agent!r} is not served at {path}"))


async def test_non_json_body_is_a_400(http, emulator):
    status, _, raw = await post(http, emulator, "/chat", b"messages=hi&stream=true")
    assert (status, json.loads(raw)) == (400, error_body("body is not JSON"))
    assert emulator.requests == []


# --- fault injection ------------------------------------------------------------

async def test_server_wide_fault_applies_to_every_request(http, emulator):
    emulator.fault = Fault(status=503)
    for _ in range(2):
        status, _, raw = await post(http, emulator, "/chat", body_for())
        assert (status, json.loads(raw)) == (503, {"error": {"message": "emulated failure 503", "code": 503}})


async def test_next_faults_apply_once_each_in_order(http, emulator):
    emulator.next_faults.extend([Fault(status=429), Fault(status=500, body="oops", content_type="text/plain")])
    statuses = [await post(http, emulator, "/chat", body_for()) for _ in range(3)]
    assert [(s, b) for s, _, b in statuses[:2]] == [
        (429, json.dumps({"error": {"message": "emulated failure 429", "code": 429}}).encode()), (500, b"oops")]
    assert statuses[2][0] == 200
    assert deltas_of(parse_events(statuses[2][2])) == ["llama ", "heard: ", "hello ", "there"]


async def test_fault_header_applies_to_that_request_only(http, emulator):
    header = {"x-emulator-fault": json.dumps({"status": 418})}
    status, _, _ = await post(http, emulator, "/chat", body_for(), headers=header)
    assert status == 418
    status, _, _ = await post(http, emulator, "/chat", body_for())
    assert status == 200


async def test_bad_fault_header_is_a_400(http, emulator):
    status, _, raw = await post(http, emulator, "/chat", body_for(), headers={"x-emulator-fault": '{"no_such_field": 1}'})
    assert status == 400
    assert json.loads(raw)["error"]["message"].startswith("bad x-emulator-fault header: ")


async def test_legacy_finish_puts_finish_reason_at_the_top_level(http, emulator):
    emulator.fault = Fault(legacy_finish=True)
    events = parse_events((await post(http, emulator, "/chat", body_for()))[2])
    assert events[-3]["finish_reason"] == "stop"
    assert events[-3]["choices"] == [{"index": 0, "delta": {}}]


async def test_one_byte_chunks_give_the_same_events(http, emulator):
    _, _, whole = await post(http, emulator, "/chat", body_for())
    emulator.fault = Fault(chunk_size=1)
    _, _, chunked = await post(http, emulator, "/chat", body_for())
    assert chunked == whole


async def test_deltas_fault_sends_that_many_token_deltas(http, emulator):
    emulator.fault = Fault(deltas=7)
    events = parse_events((await post(http, emulator, "/chat", body_for()))[2])
    assert deltas_of(events) == ["tok "] * 7
    assert events[-2]["usage"]["completion_tokens"] == 7


# --- health and binding -----------------------------------------------------------

@pytest.mark.parametrize("suffix", ["", "/"])
async def test_health_get_on_the_base_url(http, emulator, suffix):
    async with http.get(emulator.base_url + suffix) as response:
        assert response.status == 200
        assert await response.json() == {"service": "autonomous-ai-emulator", "models": list(PATHS)}


async def test_emulator_binds_loopback_on_a_free_port_by_default(emulator):
    assert emulator.base_url.startswith("http://127.0.0.1:")
    assert emulator.base_url.endswith("/api/v1/ai")
    assert [address[0] for address in emulator._runner.addresses] == ["127.0.0.1"]


async def test_serve_forever_prints_a_loopback_base_url_that_answers(http, capsys):
    task = asyncio.create_task(serve_forever())
    try:
        for _ in range(500):
            printed = capsys.readouterr().out
            if printed:
                break
            await asyncio.sleep(0.01)
        base_url = printed.strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api/v1/ai")
        async with http.get(base_url) as response:
            assert (await response.json())["service"] == "autonomous-ai-emulator"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
