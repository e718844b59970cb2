"""How an answer ends: a whole JSON answer under max_tokens, an error event's own words, an error
status whose body cannot be decoded, the end of the body after [DONE], and the provider turned off."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import helpers
import pytest
from g4f.errors import ResponseError, ResponseStatusError
from g4f.providers.response import FinishReason
from raw_server import raw_server, read_request

from g4f_autonomous import provider
from g4f_autonomous.answer import read_up_to
from g4f_autonomous.emulator import Fault

MESSAGES = [{"role": "user", "content": "tell me a story"}]
GUARD = 10.0
WHOLE = '{"choices": [{"message": {"content": "the whole answer"}}]}'


async def ask(base_url: str, **kwargs: Any) -> list:
    return await asyncio.wait_for(helpers.ask("llama", MESSAGES, base_url=base_url, **kwargs), GUARD)


def finish_reasons(items: list) -> list[str]:
    return [item.reason for item in items if isinstance(item, FinishReason)]


@pytest.mark.parametrize("max_tokens, reasons", [(1, ["length"]), (2, [])])
async def test_a_whole_json_answer_is_one_delta_under_max_tokens(emulator, max_tokens, reasons):
    # max_tokens makes the provider ask for a stream; an upstream may still answer whole.
    emulator.fault = Fault(body=WHOLE)
    items = await ask(emulator.base_url, max_tokens=max_tokens)
    assert helpers.texts(items) == ["the whole answer"]
    assert finish_reasons(items) == reasons


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)


STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
DELTA = b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n'


async def test_an_error_events_error_member_is_what_is_quoted():
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(STREAM_HEAD + chunked(DELTA, b'event: error\ndata: {"error": "quota exceeded", "id": 7}\n\n')
                     + b"0\r\n\r\n")
        await writer.drain()

    async with raw_server(answer) as base_url:
        with pytest.raises(ResponseError) as caught:
            await ask(base_url)
    assert str(caught.value) == f"{base_url}/chat reported an error: quota exceeded"


@pytest.mark.parametrize("status", [300, 502])
async def test_an_error_status_with_a_body_it_cannot_decode_is_still_named(status):
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 %d Odd\r\nContent-Encoding: zstd\r\nContent-Length: 4\r\n\r\n(\xb5/\xfd" % status)
        await writer.drain()

    async with raw_server(answer) as base_url:
        with pytest.raises(ResponseStatusError) as caught:
            await ask(base_url)
    assert f"{status}" in str(caught.value) and "zstd" not in str(caught.value)


async def test_the_end_of_the_body_after_done_is_read_so_the_connection_is_reused():
    connections = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            await read_request(reader)
            writer.write(STREAM_HEAD + chunked(DELTA, b"data: [DONE]\n\n"))
            await writer.drain()
            await asyncio.sleep(0.01)  # the end of the body comes in a write of its own, a moment later
            writer.write(chunked(b": bye\n\n") + b"0\r\n\r\n")
            await writer.drain()

    async with raw_server(answer) as base_url:
        for _ in range(2):
            assert helpers.text_of(await ask(base_url)) == "hi"
    assert connections == 1


@pytest.mark.parametrize("value, working", [
    (None, True), ("1", True), ("yes", True), ("", True),
    ("0", False), ("false", False), (" No ", False), ("OFF", False), ("False", False),
])
def test_the_working_flag_from_the_environment(monkeypatch, value, working):
    if value is None:
        monkeypatch.delenv(provider.WORKING_ENV, raising=False)
    else:
        monkeypatch.setenv(provider.WORKING_ENV, value)
    assert provider._working_from_env() is working


async def test_a_body_kept_open_after_done_does_not_hold_the_answer():
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(STREAM_HEAD + chunked(DELTA, b"data: [DONE]\n\n"))
        await writer.drain()
        await asyncio.sleep(GUARD * 2)  # never the end of the body

    async with raw_server(answer) as base_url:
        assert helpers.text_of(await ask(base_url)) == "hi"


async def test_read_up_to_gives_the_first_bytes_without_waiting_for_more():
    # What the health probe and `check --deep` read: a page that never ends is cut at the limit.
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"0123456789")
        await writer.drain()
        await asyncio.sleep(GUARD * 2)

    async with raw_server(answer) as base_url, aiohttp.ClientSession(auto_decompress=False) as session, \
            session.get(base_url) as response:
        assert await asyncio.wait_for(read_up_to(response, 10), GUARD) == b"0123456789"
        assert await asyncio.wait_for(read_up_to(response, 0), GUARD) == b""


async def test_max_tokens_holds_across_reads():
    # Each delta in a read of its own: the count must carry over from one read to the next.
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(STREAM_HEAD)
        for _ in range(4):
            writer.write(chunked(DELTA))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await writer.drain()

    async with raw_server(answer) as base_url:
        items = await ask(base_url, max_tokens=2)
    assert helpers.texts(items) == ["hi", "hi"]
    assert finish_reasons(items) == ["length"]


@pytest.mark.parametrize("event, kind", [("[1, 2]", "list"), ('"text"', "str"), ("7", "int")])
async def test_an_event_that_is_no_object_is_an_error_naming_its_type(emulator, event, kind):
    emulator.fault = Fault(events=[event])
    with pytest.raises(ResponseError) as caught:
        await ask(emulator.base_url)
    assert str(caught.value) == f"{emulator.base_url}/chat sent {kind} where an answer object was expected"
