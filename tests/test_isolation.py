"""One call gets its share of the process and no more: of the event loop's time (no step
holds it long, whatever the compression), of memory (whatever the JSON's shape), of wall
time (keep-alives are no answer), and every answer ends honestly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import tracemalloc
from typing import Any

import aiohttp
import helpers
import pytest
from g4f.errors import ResponseError
from g4f.errors import TimeoutError as G4FTimeoutError
from g4f.providers.response import FinishReason
from polling import until
from ticker import LoopTicker

from g4f_autonomous import AutonomousAI, answer, inflate, wire
from g4f_autonomous.emulator import FAULT_HEADER, Emulator, Fault

MESSAGES = [{"role": "user", "content": "tell me a story"}]
GUARD = 30.0  # a regression that hangs fails instead
# A stall this long is a frozen loop, not a slow machine.
FREEZE = 0.5
TEXT_EVENT = '{"choices": [{"delta": {"content": "ж"}}]}'  # one character outside Latin-1: a str object each
ENCODINGS = ["gzip", "deflate", "br"]


async def ask(emulator: Emulator, fault: Fault, **kwargs: Any) -> list:
    emulator.fault = fault
    kwargs.setdefault("base_url", emulator.base_url)
    return await asyncio.wait_for(helpers.ask("llama", kwargs.pop("messages", MESSAGES), **kwargs), GUARD)


async def warm(emulator: Emulator, fault: Fault) -> None:
    """Have the emulator build (and cache) a large compressed answer before anything is measured."""
    body = {"messages": wire.encode_messages(MESSAGES), "threadId": "warm", "stream": True, "aiAgent": "llama"}
    headers = {FAULT_HEADER: json.dumps(fault.__dict__), "accept-encoding": "identity"}
    async with aiohttp.ClientSession(auto_decompress=False) as session, session.post(
        emulator.base_url + "/chat", json=body, headers=headers
    ) as response:
        await response.content.read(1)


# --- the loop is never held long ----------------------------------------------------

# Built by the test that uses them, not at collection: held for the whole run, they cost every test's GC.
HUGE_REQUESTS = {
    "one 80 MB message": lambda: [{"role": "user", "content": "word " * 2**24}],
    "400,000 messages": lambda: [{"role": "user", "content": f"note {n}"} for n in range(400_000)],
}


@pytest.mark.parametrize("size", HUGE_REQUESTS)
async def test_building_a_huge_request_does_not_freeze_the_loop(size):
    # Checked and encoded on the loop, this held it 0.9-1.2 s; in a thread, one slice at a time.
    # Nothing listens at the URL: what is measured is the build, and the call ends in a g4f error.
    messages = HUGE_REQUESTS[size]()
    async with LoopTicker() as ticker:
        with pytest.raises(ResponseError, match="cannot reach"):
            await asyncio.wait_for(helpers.ask("llama", messages, base_url=helpers.closed_port_url()), GUARD)
    assert ticker.longest_work < FREEZE / 2, f"the loop was held {ticker.longest_work:.3f} s"


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_compressed_text_less_events_never_freeze_the_loop(emulator, encoding):
    # 24 MB of "data: {}" in about 50 KiB of gzip (a few hundred bytes of br): aiohttp
    # inflated each read whole and the events were parsed with the loop held for seconds.
    fault = Fault(encoding=encoding, filler_events=2_400_000)
    await warm(emulator, fault)
    start = time.monotonic()
    async with LoopTicker() as ticker:
        with contextlib.suppress(G4FTimeoutError):  # the usual end: no part of an answer within 0.3 s
            await ask(emulator, fault, timeout=0.3, total_timeout=0.6)
        await asyncio.sleep(0.02)  # the ticker's next wake-up measures the last step
    assert ticker.longest_work < FREEZE
    assert time.monotonic() - start < 10
    assert await until(lambda: emulator.open_streams == 0)


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_deadline_is_kept_while_compressed_bytes_keep_coming(emulator, encoding):
    fault = Fault(encoding=encoding, filler_events=2_400_000)
    await warm(emulator, fault)
    start = time.monotonic()
    with pytest.raises(G4FTimeoutError) as caught:
        await ask(emulator, fault, timeout=0.3, total_timeout=0.6)
    assert time.monotonic() - start < 3
    assert str(caught.value).endswith(("stream stalled for 0.3 s after 0 deltas", "total_timeout of 0.6 s reached"))


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("stream", [True, False])
async def test_compressed_answers_read_as_plain_ones(emulator, encoding, stream):
    items = await ask(emulator, Fault(encoding=encoding), stream=stream)
    assert helpers.text_of(items) == "llama heard: tell me a story"
    assert emulator.requests[-1].headers["Accept-Encoding"] == inflate.ACCEPT_ENCODING


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_compressed_error_body_is_quoted(emulator, encoding):
    with pytest.raises(ResponseError) as caught:
        await ask(emulator, Fault(status=503, encoding=encoding, body="overloaded, try later",
                                  content_type="text/plain"))
    assert str(caught.value) == f"HTTP 503 from {emulator.base_url}/chat: overloaded, try later"


async def test_an_encoding_that_cannot_be_bounded_is_a_g4f_error_naming_it(emulator):
    with pytest.raises(ResponseError) as caught:
        await ask(emulator, Fault(encoding="zstd", body='{"choices": [{"message": {"content": "hi"}}]}'))
    assert str(caught.value).startswith(f"{emulator.base_url}/chat: answer has content-encoding 'zstd'")


async def test_corrupt_gzip_is_a_g4f_error(emulator):
    garbage = b"\x1f\x8b\x08\x00 this is no gzip at all, only its magic"
    # connection: close, or the pooled connection keeps the raw handler (and the teardown) waiting 15 s.
    raw = (b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\n"
           b"content-length: %d\r\n\r\n%s" % (len(garbage), garbage))
    with pytest.raises(ResponseError) as caught:
        await ask(emulator, Fault(raw=raw))
    assert str(caught.value).startswith(f"{emulator.base_url}/chat: the gzip body is corrupt")


async def test_decoded_bytes_per_answer_are_capped_however_well_they_compress(emulator, monkeypatch):
    monkeypatch.setattr(answer, "MAX_DECODED_SIZE", 2**20)
    with pytest.raises(ResponseError) as caught:
        await ask(emulator, Fault(encoding="gzip", filler_events=200_000), timeout=30)
    assert str(caught.value) == (f"{emulator.base_url}/chat: answer body decodes to more than 1048576 bytes "
                                 "(answer.MAX_DECODED_SIZE)")
    assert await until(lambda: emulator.open_streams == 0)


def test_gzip_members_and_raw_deflate_decode_whole():
    import zlib

    text = b"data: {}\n\n" * 100_000
    raw = zlib.compressobj(6, zlib.DEFLATED, -15)
    cases = {"gzip": _gzip(text) + _gzip(b"more"), "deflate": raw.compress(text) + raw.flush()}
    for name, packed in cases.items():
        decoder = inflate.decoder_for(name)
        assert decoder is not None
        out, largest = [], 0
        for start in range(0, len(packed), 1000):
            piece = decoder.feed(packed[start:start + 1000], 2**12)
            out.append(piece)
            while decoder.pending:
                piece = decoder.feed(b"", 2**12)
                largest = max(largest, len(piece))
                out.append(piece)
        assert b"".join(out) == text + (b"more" if name == "gzip" else b"")
        assert largest <= 2**12


def _gzip(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


# --- memory within a small multiple of the caps --------------------------------------

@pytest.mark.alone
async def test_whole_json_answer_of_empty_objects_is_refused_before_it_is_built(emulator):
    # 30 MB of {"x":[{},{},...]}: json.loads would build 10 M dicts, +800 MiB.
    error, peak = await helpers.traced_peak(ask(emulator, Fault(wide_json_bytes=30_000_000)), ResponseError)
    assert str(error) == (f"{emulator.base_url}/chat: the JSON answer holds more than {answer.MAX_JSON_VALUES} "
                          "JSON values (answer.MAX_JSON_VALUES)")
    assert peak < 160 * 2**20  # the body, as bytes and as text, and no more


@pytest.mark.alone
async def test_event_of_empty_objects_is_refused_before_it_is_built(emulator):
    error, peak = await helpers.traced_peak(ask(emulator, Fault(wide_json_bytes=3_000_000, wide_json_event=True)), ResponseError)
    assert str(error) == (f"{emulator.base_url}/chat: an event holds more than {answer.MAX_JSON_VALUES} "
                          "JSON values (answer.MAX_JSON_VALUES)")
    assert peak < 40 * 2**20


@pytest.mark.alone
async def test_stream_false_holds_one_character_deltas_compactly(emulator):
    # 200,000 deltas of one character each: a str per delta held ~17 MB more than now (16.5 MiB peak in all).
    fault = Fault(filler_events=200_000, filler=TEXT_EVENT)
    tracemalloc.start()
    try:
        items = await ask(emulator, fault, stream=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    text = helpers.text_of(items)
    assert text == "ж" * 200_000 + "llama heard: tell me a story"
    # About 9 MiB, whatever the count: CPython's StringIO (before 3.12) keeps up to 100,000 written strs
    # before it joins them; the rest is the buffers of both ends.
    assert peak < 13 * 2**20


@pytest.mark.parametrize("text, values", [
    ('{"a": "x, y: [z {"}', 2), ("[1, 2, 3]", 3), ('{"a": {"b": [1, "]"]}}', 6), ('"\\"[,,,"', 0),
])
def test_json_values_are_counted_outside_strings(text, values):
    assert not wire.json_values_over(text * 1, values)
    assert wire.json_values_over(text, values - 1) or values == 0


def test_counting_values_is_linear_even_for_broken_strings():
    start = time.monotonic()
    assert not wire.json_values_over('"' + '\\",' * 1_000_000, 10)  # one unterminated string
    assert not wire.json_values_over('"\\' + "," * 1_000_000, 10)
    assert time.monotonic() - start < 2


# --- time: only parts of an answer restart the gap; a default total bound -----------

@pytest.mark.parametrize("filler", ["{}", "keepalive", ""])
async def test_text_less_events_do_not_keep_a_call_alive(emulator, filler):
    fault = Fault(filler_events=100, filler=filler, keepalive_seconds=0.1)
    start = time.monotonic()
    with pytest.raises(G4FTimeoutError) as caught:
        await ask(emulator, fault, timeout=0.3)
    assert time.monotonic() - start < 5
    assert str(caught.value) == f"{emulator.base_url}/chat: stream stalled for 0.3 s after 0 deltas"
    assert await until(lambda: emulator.open_streams == 0)


async def test_events_carrying_text_do_restart_the_gap(emulator):
    # 0.6 s of events, one every 0.1 s: twice the gap allowed.
    items = await ask(emulator, Fault(filler_events=6, filler=TEXT_EVENT, keepalive_seconds=0.1), timeout=0.3)
    assert helpers.text_of(items) == "ж" * 6 + "llama heard: tell me a story"


@pytest.mark.parametrize("event", [
    '{"choices": [{"delta": {"role": "assistant"}}]}',
    '{"choices": [{"delta": {}, "finish_reason": "stop"}]}',
    '{"choices": [], "usage": {"completion_tokens": 1}}',
])
async def test_role_finish_reason_and_usage_are_parts_of_an_answer(emulator, event):
    items = await ask(emulator, Fault(filler_events=6, filler=event, keepalive_seconds=0.1), timeout=0.3)
    assert helpers.text_of(items) == "llama heard: tell me a story"


async def test_a_call_without_total_timeout_still_ends(emulator, monkeypatch):
    monkeypatch.setattr(answer, "DEFAULT_TOTAL_TIMEOUT", 0.5)
    start = time.monotonic()
    with pytest.raises(G4FTimeoutError) as caught:
        await ask(emulator, Fault(filler_events=100, filler=TEXT_EVENT, keepalive_seconds=0.1), timeout=0.3)
    assert time.monotonic() - start < 5
    assert str(caught.value).startswith(f"{emulator.base_url}/chat: the answer did not end within 0.5 s")
    assert "answer.DEFAULT_TOTAL_TIMEOUT" in str(caught.value)


async def test_the_default_total_bound_is_never_shorter_than_the_gap(emulator, monkeypatch):
    # A caller who allows 1 s between parts of an answer is not cut off sooner by the default total.
    monkeypatch.setattr(answer, "DEFAULT_TOTAL_TIMEOUT", 0.15)
    items = await ask(emulator, Fault(filler_events=3, filler=TEXT_EVENT, keepalive_seconds=0.1), timeout=1)
    assert helpers.text_of(items) == "жжж" + "llama heard: tell me a story"


@pytest.mark.parametrize("how", ["aclose", "break", "cancel"])
async def test_caller_going_away_closes_the_upstream_at_once(emulator, how):
    emulator.fault = Fault(filler_events=1000, filler="{}", keepalive_seconds=0.1)
    calls = AutonomousAI.create_async_generator("llama", MESSAGES, base_url=emulator.base_url, timeout=30)
    if how == "cancel":
        task = asyncio.create_task(helpers.ask("llama", MESSAGES, base_url=emulator.base_url, timeout=30))
        assert await until(lambda: emulator.open_streams == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:
        emulator.fault = Fault(filler_events=1000, filler=TEXT_EVENT, keepalive_seconds=0.1)
        async for _ in calls:
            break
        assert emulator.open_streams == 1
        if how == "aclose":
            await calls.aclose()
        else:
            del calls  # a broken-off async for leaves the generator to its finaliser
    assert await until(lambda: emulator.open_streams == 0, 2)


# --- every answer ends honestly ------------------------------------------------------

async def test_error_event_after_a_first_delta_is_an_error_not_a_short_answer(emulator):
    with pytest.raises(ResponseError) as caught:
        await ask(emulator, Fault(error_event="model overloaded"))
    assert str(caught.value) == f"{emulator.base_url}/chat reported an error: model overloaded"


async def test_error_inside_the_first_choice_is_an_error_not_a_short_answer(emulator):
    with pytest.raises(ResponseError) as caught:
        await ask(emulator, Fault(choice_error="context length exceeded"))
    assert str(caught.value) == f"{emulator.base_url}/chat reported an error: context length exceeded"


async def test_error_event_echoing_the_prompt_is_redacted(emulator):
    secret = "my very private question about taxes"
    with pytest.raises(ResponseError) as caught:
        await ask(emulator, Fault(error_event="cannot answer: {text}"), messages=[{"role": "user", "content": secret}])
    assert "private question" not in str(caught.value)
    assert str(caught.value).startswith(f"{emulator.base_url}/chat reported an error: cannot answer: ")


async def test_lone_surrogate_in_a_delta_becomes_a_replacement_character(emulator):
    events = ['{"choices": [{"delta": {"content": "a\\ud800b"}}]}', '{"choices": [{"delta": {"content": "\\udc00"}}]}']
    items = await ask(emulator, Fault(events=events))
    assert helpers.text_of(items) == "a\ufffdb\ufffd"
    helpers.text_of(items).encode("utf-8")  # what g4f's API does with it


@pytest.mark.parametrize("stream", [True, False])
async def test_max_tokens_ends_the_answer_with_finish_reason_length(emulator, stream):
    items = await ask(emulator, Fault(deltas=10), stream=stream, max_tokens=3)
    assert helpers.text_of(items) == "tok tok tok "
    assert [item.reason for item in items if isinstance(item, FinishReason)] == ["length"]
    assert await until(lambda: emulator.open_streams == 0)


async def test_max_tokens_above_the_answer_leaves_it_whole(emulator):
    items = await ask(emulator, Fault(deltas=10), stream=False, max_tokens=50)
    assert helpers.text_of(items) == "tok " * 10
    assert [item.reason for item in items if isinstance(item, FinishReason)] == ["stop"]


@pytest.mark.parametrize("value", [0, -1, 2.5, "3", True])
async def test_unusable_max_tokens_is_a_value_error_naming_it(emulator, value):
    with pytest.raises(ValueError, match="max_tokens"):
        await ask(emulator, Fault(), max_tokens=value)
    assert not emulator.requests


def test_g4fs_client_keeps_max_tokens_without_streaming(threaded_emulator):
    from g4f.client import Client

    threaded_emulator.emulator.fault = Fault(deltas=10)
    client = Client(provider=AutonomousAI)
    for max_tokens, text, reason in ((3, "tok tok tok ", "length"), (5, "tok " * 5, "length"),
                                     (50, "tok " * 10, "stop")):
        result = client.chat.completions.create(model="llama", messages=MESSAGES, base_url=threaded_emulator.base_url,
                                                max_tokens=max_tokens, stream=False)
        assert (result.choices[0].message.content, result.choices[0].finish_reason) == (text, reason)


def test_a_streaming_client_of_g4fs_api_going_away_closes_the_upstream(emulator_env):
    import httpx
    from test_api_server import ApiServer

    emulator_env.emulator.fault = Fault(filler_events=1000, filler=TEXT_EVENT, keepalive_seconds=0.1)
    server = ApiServer()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client, client.stream(
            "POST", "/v1/chat/completions",
            json={"model": "llama", "provider": "AutonomousAI", "messages": MESSAGES, "stream": True},
        ) as response:
            next(response.iter_bytes())  # the stream has begun
            assert emulator_env.emulator.open_streams == 1
        end = time.monotonic() + 5
        while emulator_env.emulator.open_streams and time.monotonic() < end:
            time.sleep(0.02)
        assert emulator_env.emulator.open_streams == 0
    finally:
        server.stop()
