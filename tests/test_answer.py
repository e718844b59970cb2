"""Reading one answer, piece by piece: the deadline's clock, the body's bounded decoding, and what the
caller is given for each kind of answer. Fast: raw servers on 127.0.0.1 that write exact bytes at once.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import random
import time
import weakref
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import helpers
import pytest
from g4f.errors import ResponseError, ResponseStatusError
from g4f.errors import TimeoutError as G4FTimeoutError
from g4f.providers.response import FinishReason, Usage
from raw_server import raw_server, read_request

from g4f_autonomous import AutonomousAI, answer
from g4f_autonomous.answer import Body, BodyError, Deadline, Expired
from g4f_autonomous.errors import BODY_EXCERPT, Origin

MESSAGES = [{"role": "user", "content": "tell me a story"}]
GUARD = 10.0  # a regression that hangs fails instead
ORIGIN = Origin("http://upstream/chat")


# --- the deadline ------------------------------------------------------------------

async def test_check_passes_before_the_gap_and_names_the_gap_after_it():
    deadline = Deadline(0.05, None, 60)
    assert deadline.check() <= asyncio.get_running_loop().time()
    time.sleep(0.06)
    with pytest.raises(Expired, match="^gap$"):
        deadline.check()
    assert str(deadline.error(ORIGIN)) == "http://upstream/chat: no answer within 0.05 s"
    assert str(deadline.error(ORIGIN, 2)) == "http://upstream/chat: stream stalled for 0.05 s after 2 deltas"


@pytest.mark.parametrize("total, expected", [
    (0.05, "total_timeout of 0.05 s reached"),
    (None, "the answer did not end within 0.05 s, the bound on a call without total_timeout "
           "(answer.DEFAULT_TOTAL_TIMEOUT); pass total_timeout for a longer one"),
])
async def test_the_total_is_named_as_given_or_as_the_default(total, expected):
    deadline = Deadline(60, total, 0.05)
    time.sleep(0.06)
    with pytest.raises(Expired, match="^total$"):
        deadline.check()
    assert str(deadline.error(ORIGIN, 3)) == f"http://upstream/chat: {expected}"


async def test_the_total_given_wins_over_the_default():
    deadline = Deadline(60, 60, 0.01)
    time.sleep(0.02)
    deadline.check()  # the default applies only without a total


async def test_progress_starts_the_gap_again():
    deadline = Deadline(0.1, None, 60)
    for _ in range(3):
        time.sleep(0.06)
        deadline.progress()
        deadline.check()  # 0.18 s since the start, never 0.1 s since the last progress


async def test_a_wait_gives_the_result_of_what_it_waited_for():
    deadline = Deadline(5, None, 60)
    assert await deadline.wait(asyncio.sleep(0, "ready")) == "ready"
    assert await deadline.wait(asyncio.sleep(0.01, "later")) == "later"
    deadline.close()


@pytest.fixture(params=[True, False], ids=["uncancel", "3.10"])
def can_uncancel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param and not answer.CAN_UNCANCEL:
        pytest.skip("Task.uncancel is new in 3.11")
    monkeypatch.setattr(answer, "CAN_UNCANCEL", request.param)
    return request.param


async def test_a_wait_whose_awaitable_is_cancelled_ends_at_once_as_a_cancel(can_uncancel):
    # Not a timeout a gap later: what was waited for is gone (aiohttp cancels a read when its connection goes).
    loop = asyncio.get_running_loop()
    read = loop.create_future()
    loop.call_later(0.01, read.cancel)
    deadline = Deadline(5, None, 60)
    start = loop.time()
    with pytest.raises(asyncio.CancelledError):
        await deadline.wait(read)
    assert loop.time() - start < 1 and not deadline.expired
    deadline.close()


async def test_a_wait_gives_the_error_of_what_it_waited_for(can_uncancel):
    async def refused() -> None:
        await asyncio.sleep(0.01)
        raise ConnectionRefusedError("no")

    deadline = Deadline(5, None, 60)
    with pytest.raises(ConnectionRefusedError, match="^no$"):
        await deadline.wait(refused())
    assert await deadline.wait(asyncio.sleep(0.01, "after")) == "after"
    deadline.close()


async def test_a_wait_gives_its_result_on_either_path(can_uncancel):
    deadline = Deadline(5, None, 60)
    assert await deadline.wait(asyncio.sleep(0.01, "later")) == "later"
    deadline.close()


async def test_progress_during_a_wait_moves_the_deadline(can_uncancel):
    deadline = Deadline(0.1, None, 60)

    async def steady() -> None:  # a part of an answer every 0.05 s, as a reader would report
        for _ in range(5):
            await asyncio.sleep(0.05)
            deadline.progress()

    assert await deadline.wait(asyncio.ensure_future(steady())) is None
    with pytest.raises(Expired, match="^gap$"):  # and the timer still runs out once progress stops
        await deadline.wait(asyncio.sleep(5))
    deadline.close()


async def test_the_total_ends_a_wait_however_steady_the_progress(can_uncancel):
    deadline = Deadline(0.1, 0.2, 60)

    async def steady() -> None:
        while True:
            await asyncio.sleep(0.03)
            deadline.progress()

    ticker = asyncio.ensure_future(steady())
    try:
        with pytest.raises(Expired, match="^total$"):
            await asyncio.wait_for(deadline.wait(asyncio.sleep(5)), GUARD)
    finally:
        ticker.cancel()
        deadline.close()


async def test_a_timer_that_comes_due_between_waits_does_not_end_the_next_one(can_uncancel):
    deadline = Deadline(0.05, None, 60)
    await deadline.wait(asyncio.sleep(0))
    await asyncio.sleep(0.1)  # the consumer's time: the timer comes due with nothing waiting
    deadline.progress()  # the consumer came back for more
    assert await deadline.wait(asyncio.sleep(0.01, "next")) == "next"
    deadline.close()


async def test_an_outside_cancel_of_a_wait_is_a_cancel(can_uncancel):
    deadline = Deadline(0.05, None, 60)
    await deadline.wait(asyncio.sleep(0))
    await asyncio.sleep(0.1)  # the timer comes due between waits, with nothing waiting
    deadline.progress()
    task = asyncio.ensure_future(deadline.wait(asyncio.sleep(5)))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline.close()


async def test_a_closed_deadline_does_not_keep_the_callers_task_alive():
    # The loop holds a timer until it is due (minutes): a closed deadline's must not hold the call's state.
    async def call() -> None:
        deadline = Deadline(600, None, 600)
        await deadline.wait(asyncio.sleep(0))
        deadline.close()
        deadline.close()  # twice is harmless

    task = asyncio.ensure_future(call())
    await task
    alive = weakref.ref(task)
    del task
    await asyncio.sleep(0)  # the loop's own references to the finished task go with this turn
    gc.collect()
    assert alive() is None


async def test_a_deadline_that_expired_closes():
    deadline = Deadline(0.01, None, 60)
    with pytest.raises(Expired):
        await deadline.wait(asyncio.sleep(5))
    deadline.close()


# --- the body ------------------------------------------------------------------------

@asynccontextmanager
async def response_of(head: bytes, body: bytes, hold: bool = False) -> AsyncIterator[aiohttp.ClientResponse]:
    """A GET answered with ``head`` and ``body`` (``hold``: the connection then stays open, silent)."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head + body)
        await writer.drain()
        if hold:
            await asyncio.sleep(GUARD * 2)

    async with raw_server(serve) as base_url, aiohttp.ClientSession(auto_decompress=False) as session, \
            session.get(base_url) as response:
        yield response


def head_for(body: bytes, encoding: str = "", content_type: str = "text/plain") -> bytes:
    coding = f"Content-Encoding: {encoding}\r\n" if encoding else ""
    return (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{coding}Content-Length: {len(body)}\r\n\r\n"
            .encode())


async def all_slices(body: Body) -> list[bytes]:
    slices = []
    while block := await asyncio.wait_for(body.next(), GUARD):
        slices.append(block)
    return slices


@pytest.mark.parametrize("encoding, compress", [
    ("gzip", gzip.compress), ("deflate", zlib.compress), ("", lambda data: data),
])
async def test_a_body_is_decoded_in_slices_of_at_most_slice_bytes(encoding, compress):
    # Four letters: it compresses to about a quarter, several reads, each decoding to more than a slice.
    text = bytes(random.Random(7).choices(b"acgt", k=400_000))
    wire = compress(text)
    async with response_of(head_for(wire, encoding), wire) as response:
        body = Body(response, ORIGIN, Deadline(GUARD, None, GUARD))
        slices = await all_slices(body)
        assert await body.next() == b""  # the end stays the end
    assert b"".join(slices) == text
    assert body.size == len(text)
    assert max(map(len, slices)) <= answer.SLICE
    if encoding:
        assert len(slices) >= len(text) // answer.SLICE  # a whole read is never inflated in one step


async def test_a_body_that_decodes_past_the_cap_is_refused(monkeypatch):
    monkeypatch.setattr(answer, "MAX_DECODED_SIZE", 100_000)
    wire = gzip.compress(b"\0" * 100_001)
    async with response_of(head_for(wire, "gzip"), wire) as response:
        body = Body(response, ORIGIN)
        with pytest.raises(BodyError) as caught:
            await all_slices(body)
    assert str(caught.value.error) == ("http://upstream/chat: answer body decodes to more than 100000 bytes "
                                       "(answer.MAX_DECODED_SIZE)")
    assert body.size == 100_001


async def test_a_body_that_decodes_to_the_cap_exactly_is_read(monkeypatch):
    monkeypatch.setattr(answer, "MAX_DECODED_SIZE", 100_000)
    wire = gzip.compress(b"\0" * 100_000)
    async with response_of(head_for(wire, "gzip"), wire) as response:
        assert len(b"".join(await all_slices(Body(response, ORIGIN)))) == 100_000


async def test_an_unknown_encoding_is_refused_at_the_first_read():
    async with response_of(head_for(b"(\xb5/\xfd", "zstd"), b"(\xb5/\xfd") as response:
        body = Body(response, ORIGIN)
        for _ in range(2):
            with pytest.raises(BodyError) as caught:
                await body.next()
            assert isinstance(caught.value.error, ResponseError)
            assert str(caught.value) == str(caught.value.error) == (
                "http://upstream/chat: answer has content-encoding 'zstd' (only gzip, deflate, br are decoded), not decoded")


async def test_a_corrupt_body_is_refused_in_inflates_words():
    wire = b"\x1f\x8b\x08\x00" + b"\xff" * 40
    async with response_of(head_for(wire, "gzip"), wire) as response:
        with pytest.raises(BodyError) as caught:
            await all_slices(Body(response, ORIGIN))
    assert str(caught.value.error).startswith("http://upstream/chat: the gzip body is corrupt (")


async def test_a_body_whose_bytes_are_all_there_still_stops_at_the_deadline():
    # Every read is ready at once, so the deadline's timer never gets to run: the clock is read at each step.
    text = b"x" * 200_000
    wire = gzip.compress(text)
    async with response_of(head_for(wire, "gzip"), wire) as response:
        await asyncio.sleep(0.05)  # all of it has arrived
        deadline = Deadline(0.05, None, 60)
        body = Body(response, ORIGIN, deadline)
        assert await body.next()
        time.sleep(0.06)
        with pytest.raises(Expired, match="^gap$"):
            await body.next()
        deadline.close()


async def test_a_silent_body_is_ended_by_the_deadline():
    async with response_of(head_for(b"x" * 100), b"", hold=True) as response:
        deadline = Deadline(0.05, None, 60)
        with pytest.raises(Expired, match="^gap$"):
            await asyncio.wait_for(Body(response, ORIGIN, deadline).next(), GUARD)
        deadline.close()


async def test_decoding_a_large_ready_body_gives_the_loop_turns(monkeypatch):
    # A turn every millisecond of work, so that even a fast machine takes dozens of them.
    monkeypatch.setattr(answer, "TURN", 0.001)
    text = b"x" * (8 * 2**20)
    wire = gzip.compress(text)
    turns = 0

    async def other_user() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    async with response_of(head_for(wire, "gzip"), wire) as response:
        await asyncio.sleep(0.05)
        other = asyncio.ensure_future(other_user())
        try:
            started = time.monotonic()
            # Well under a second of work: each turn given is a turn, not a pause (3 s is a hang).
            slices = asyncio.wait_for(all_slices(Body(response, ORIGIN, Deadline(GUARD, None, GUARD))), 3)
            size = len(b"".join(await slices))
            seconds = time.monotonic() - started
        finally:
            other.cancel()
    assert size == len(text)
    # At least one turn for every TURN seconds of work (half of them: a busy machine is slower between turns).
    assert turns >= seconds / answer.TURN / 2


# --- what the caller is given --------------------------------------------------------

def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)


STREAM_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def delta(text: str) -> bytes:
    return b'data: {"choices": [{"delta": {"content": "%s"}}]}\n\n' % text.encode()


async def ask_raw(raw: bytes, **kwargs: Any) -> list:
    """The items of one call to a server that writes ``raw`` and closes."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(raw)
        await writer.drain()

    async with raw_server(serve) as base_url:
        return await asyncio.wait_for(helpers.ask("llama", MESSAGES, base_url=base_url, **kwargs), GUARD)


async def error_of(raw: bytes, **kwargs: Any) -> str:
    with pytest.raises(Exception) as caught:
        await ask_raw(raw, **kwargs)
    return str(caught.value).split(": ", 1)[1] if ": " in str(caught.value) else str(caught.value)


def stream_of(*events: bytes, end: bool = True) -> bytes:
    """An event stream, one HTTP chunk per event (``end``: then the end of the body)."""
    return STREAM_HEAD + chunked(*events) + (b"0\r\n\r\n" if end else b"")


def whole(body: bytes, content_type: str = "application/json", status: str = "200 OK") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body)


DONE = b"data: [DONE]\n\n"
FINISH = b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, ' \
         b'"completion_tokens": 2, "total_tokens": 3}}\n\n'


def ending(items: list) -> list:
    return [(type(item).__name__, item.reason if isinstance(item, FinishReason) else item.get_dict())
            for item in items if isinstance(item, (FinishReason, Usage))]


@pytest.mark.parametrize("join, expected", [(True, ["ab", "c"]), (False, ["a", "b", "c"])])
async def test_deltas_of_one_read_come_joined_unless_asked_not_to(join, expected):
    # Two deltas in one HTTP chunk (one read), the third in a chunk of its own after a pause.
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(STREAM_HEAD + chunked(delta("a") + delta("b")))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(chunked(delta("c"), FINISH, DONE) + b"0\r\n\r\n")
        await writer.drain()

    async with raw_server(serve) as base_url:
        items = await asyncio.wait_for(helpers.ask("llama", MESSAGES, base_url=base_url, join_deltas=join), GUARD)
    assert helpers.texts(items) == expected
    assert ending(items) == [("FinishReason", "stop"),
                             ("Usage", {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3})]


async def test_a_single_delta_of_a_read_is_given_as_it_is():
    items = await ask_raw(stream_of(delta("only"), DONE))
    assert items == ["only"]


async def test_without_stream_the_deltas_come_as_one_text_then_the_ending():
    items = await ask_raw(stream_of(delta("a") + delta("b"), delta("c"), FINISH, DONE), stream=False)
    assert helpers.texts(items) == ["abc"]
    assert [type(item).__name__ for item in items] == ["str", "FinishReason", "Usage"]


async def test_nothing_after_done_is_read_as_the_answer():
    items = await ask_raw(stream_of(delta("a") + DONE + delta("b"), delta("c")))
    assert helpers.texts(items) == ["a"]


FILLER = b": " + b"x" * answer.FEED_SIZE + b"\n\n"  # a comment longer than what the decoder is given at once


async def test_nothing_after_done_is_read_even_far_into_the_same_read():
    items = await ask_raw(stream_of(delta("a") + DONE + FILLER + delta("b")))
    assert helpers.texts(items) == ["a"]


async def test_max_tokens_holds_far_into_the_same_read():
    items = await ask_raw(stream_of(delta("a") + FILLER + delta("b") + FILLER + delta("c") + DONE), max_tokens=1)
    assert helpers.texts(items) == ["a"]


async def test_a_stream_that_ends_without_done_keeps_its_text():
    assert helpers.texts(await ask_raw(stream_of(delta("a"), delta("b")), join_deltas=False)) == ["a", "b"]


async def test_a_last_event_without_its_blank_line_is_still_read():
    assert helpers.texts(await ask_raw(stream_of(delta("a"), delta("b")[:-2]))) == ["a", "b"]


@pytest.mark.parametrize("events, expected", [
    ((b"data: {}\n\n", DONE), "answer reached [DONE] without any text"),
    ((b'data: {"choices": [{"delta": {}, "finish_reason": "content_filter"}]}\n\n',),
     "answer reached its end without any text (finish reason 'content_filter')"),
])
async def test_an_answer_without_text_is_an_error(events, expected):
    assert await error_of(stream_of(*events)) == expected


@pytest.mark.parametrize("max_tokens, texts, reasons", [
    (1, ["a"], ["length"]), (2, ["a", "b"], ["length"]), (3, ["a", "b", "c"], ["length"]), (4, ["a", "b", "c"], []),
])
async def test_max_tokens_ends_the_answer_after_that_many_deltas(max_tokens, texts, reasons):
    # All in one read: the count stops inside it.
    items = await ask_raw(stream_of(delta("a") + delta("b") + b"data: {}\n\n" + delta("c") + DONE),
                          max_tokens=max_tokens)
    assert helpers.texts(items) == texts
    assert [item.reason for item in items if isinstance(item, FinishReason)] == reasons


async def test_max_tokens_without_stream_gives_the_text_held_so_far():
    items = await ask_raw(stream_of(delta("a") + delta("b") + delta("c"), DONE), max_tokens=2, stream=False)
    assert helpers.texts(items) == ["ab"]
    assert [item.reason for item in items if isinstance(item, FinishReason)] == ["length"]


async def test_a_stream_that_breaks_off_names_the_deltas_it_gave(can_uncancel):
    # A chunk cut short, then the connection closed, all at once: the delta before the cut still counts
    # (aiohttp's reads raise once it has seen the end, so the wait must not take an extra turn of the loop).
    raw = STREAM_HEAD + chunked(delta("a")) + b"ff\r\ndata: {"
    assert (await error_of(raw, join_deltas=False)).startswith("stream broke after 1 deltas: ")


async def test_a_json_answer_that_breaks_off_is_a_body_that_broke_off():
    raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"choices\": "
    assert (await error_of(raw)).startswith("body broke off: ")


async def test_an_event_larger_than_the_decoders_bound_is_an_error(monkeypatch):
    big = b"data: " + b"x" * 5_000_000 + b"\n\n"
    message = await error_of(stream_of(delta("a"), big))
    assert "event" in message and "4194304" in message


async def test_held_text_past_the_bound_is_an_error(monkeypatch):
    monkeypatch.setattr(answer, "MAX_ANSWER_SIZE", 5)
    assert await error_of(stream_of(delta("abc"), delta("def"), DONE), stream=False) == (
        "answer is longer than 5 characters, the most held for stream=False; stream it instead")


async def test_held_text_is_bounded_across_reads(monkeypatch):
    monkeypatch.setattr(answer, "MAX_ANSWER_SIZE", 2)  # "a", then "bc" in a read of its own
    with pytest.raises(ResponseError, match="answer is longer than 2 characters"):
        await stream_then(0.02, delta("bc"), hold=False, stream=False)


async def test_held_text_up_to_the_bound_is_given(monkeypatch):
    monkeypatch.setattr(answer, "MAX_ANSWER_SIZE", 6)
    assert helpers.texts(await ask_raw(stream_of(delta("abc"), delta("def"), DONE), stream=False)) == ["abcdef"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream"])
async def test_a_body_that_starts_like_events_is_read_as_events(content_type):
    assert helpers.texts(await ask_raw(whole(delta("a") + DONE, content_type))) == ["a"]


async def test_an_event_stream_type_is_read_as_events_whatever_the_body_starts_with():
    body = b"note: a field nobody knows\n\n" + delta("a")
    assert helpers.texts(await ask_raw(whole(body, "Text/Event-Stream; charset=utf-8"))) == ["a"]


WHOLE = b'{"choices": [{"message": {"content": "the whole answer"}, "finish_reason": "stop"}]}'


async def test_a_whole_json_answer_is_one_text_with_its_ending():
    items = await ask_raw(whole(WHOLE), stream=False)
    assert items[0] == "the whole answer" and ending(items) == [("FinishReason", "stop")]


async def test_a_large_whole_json_answer_is_read():
    text = "x" * (answer.OFF_LOOP_SIZE + 10)
    body = b'{"choices": [{"message": {"content": "%s"}}]}' % text.encode()
    assert helpers.texts(await ask_raw(whole(body), stream=False)) == [text]


async def test_a_whole_json_answer_past_the_bound_is_refused(monkeypatch):
    monkeypatch.setattr(answer, "MAX_ANSWER_SIZE", len(WHOLE) - 1)
    assert await error_of(whole(WHOLE), stream=False) == f"JSON answer is larger than {len(WHOLE) - 1} bytes"


async def test_a_whole_json_answer_at_the_bound_is_read(monkeypatch):
    monkeypatch.setattr(answer, "MAX_ANSWER_SIZE", len(WHOLE))
    assert helpers.texts(await ask_raw(whole(WHOLE), stream=False)) == ["the whole answer"]


async def test_a_whole_answer_that_is_not_json_quotes_its_start():
    body = b"{" + b"y" * 3000
    message = await error_of(whole(body), stream=False)
    assert message.startswith("answer is not valid JSON: {yyy")


async def test_the_quote_of_a_whole_answer_that_is_not_json_comes_from_its_first_bytes_only():
    # Up to 32 MiB were read: the quote decodes no more than its excerpt can show (errors.excerpt).
    # Its first BODY_EXCERPT * 8 bytes end in the first byte of an "é": the rest is not decoded.
    body = b"{" + b" " * (BODY_EXCERPT * 8 - 2) + "é".encode() * 100
    assert await error_of(whole(body), stream=False) == "answer is not valid JSON: { \ufffd"


async def test_a_whole_json_answer_without_text_is_an_error():
    assert await error_of(whole(b'{"choices": [{"message": {"content": ""}}]}'), stream=False, max_tokens=1) == (
        "answer reached its end without any text")


async def test_a_whole_json_answer_of_too_many_values_is_refused():
    body = b'{"x": [' + b", ".join([b"{}"] * (answer.MAX_JSON_VALUES + 1)) + b"]}"
    assert await error_of(whole(body), stream=False) == (
        f"the JSON answer holds more than {answer.MAX_JSON_VALUES} JSON values (answer.MAX_JSON_VALUES)")


async def test_an_event_of_too_many_values_is_refused():
    event = b'data: {"x": [' + b", ".join([b"{}"] * (answer.MAX_JSON_VALUES + 1)) + b"]}\n\n"
    assert await error_of(stream_of(delta("a"), event)) == (
        f"an event holds more than {answer.MAX_JSON_VALUES} JSON values (answer.MAX_JSON_VALUES)")


def event_of_values(values: int) -> bytes:
    """A delta "b" whose JSON has exactly ``values`` values (by what opens one or adds one), over 64 KiB."""
    head = '{"choices": [{"delta": {"content": "b"}}], "pad": "' + "z" * 70_000 + '", "x": ['
    count = sum(head.count(mark) for mark in ",:{[")
    zeros = values - count + 1  # n zeros add n - 1 commas
    return b"data: " + (head + ", ".join(["0"] * zeros) + "]}").encode() + b"\n\n"


async def test_an_event_of_as_many_values_as_allowed_is_read():
    assert helpers.texts(await ask_raw(stream_of(delta("a"), event_of_values(answer.MAX_JSON_VALUES), DONE),
                                       join_deltas=False)) == ["a", "b"]
    assert await error_of(stream_of(delta("a"), event_of_values(answer.MAX_JSON_VALUES + 1))) == (
        f"an event holds more than {answer.MAX_JSON_VALUES} JSON values (answer.MAX_JSON_VALUES)")


@pytest.mark.parametrize("event, kind", [
    (b"data: " + b"[" * 5000 + b"]" * 5000 + b"\n\n", "nested too deeply"),
    (b'data: {"n": ' + b"9" * 5000 + b"}\n\n", "a number too long to read"),
])
async def test_an_event_python_cannot_hold_is_an_error(event, kind):
    assert await error_of(stream_of(delta("a"), event)) == f"an event could not be read ({kind})"


@pytest.mark.parametrize("data, quoted", [
    (b'{"error": "quota exceeded"}', "quota exceeded"),
    (b'{"message": "busy"}', "busy"),
    (b"plain words", "plain words"),
    (b'"a string"', "a string"),
])
async def test_an_error_event_is_raised_in_its_own_words(data, quoted):
    message = await error_of(stream_of(delta("a"), b"event: error\ndata: " + data + b"\n\n"))
    assert quoted in message


async def test_an_error_status_is_named_with_its_body():
    with pytest.raises(ResponseStatusError) as caught:
        await ask_raw(whole(b"it went wrong", "text/plain", "500 Internal Server Error"))
    assert "HTTP 500" in str(caught.value) and "it went wrong" in str(caught.value)


async def test_a_redirect_is_named_with_its_location():
    raw = whole(b"moved", "text/plain", "302 Found").replace(b"\r\n\r\n", b"\r\nLocation: https://elsewhere/x\r\n\r\n", 1)
    with pytest.raises(ResponseStatusError) as caught:
        await ask_raw(raw)
    assert "HTTP 302" in str(caught.value) and "redirect to https://elsewhere/x not followed" in str(caught.value)


async def test_a_200_that_is_no_answer_is_named_with_its_body():
    assert await error_of(whole(b"<p>hello\xff</p>", "text/plain")) == (
        "answer is neither an event stream nor JSON: <p>hello\ufffd</p>")


async def test_a_200_that_is_no_answer_and_cannot_be_decoded_says_so():
    raw = whole(b"\x1f\x8b\x08\x00" + b"\xff" * 40, "text/html").replace(
        b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n", 1)
    assert (await error_of(raw)).startswith("the gzip body is corrupt")


async def test_an_error_body_is_read_up_to_its_bound():
    body = b"a" * answer.ERROR_BODY_LIMIT + b"<html>Just a moment...</html>"
    with pytest.raises(ResponseStatusError):  # the challenge page's words past the bound are not read
        await ask_raw(whole(body, "text/html", "403 Forbidden"))


async def stream_then(pause: float, *events: bytes, repeat: int = 1, hold: bool = True, **kwargs: Any) -> list:
    """The items of a call whose server sends delta "a", then ``events`` ``repeat`` times ``pause`` s apart."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(STREAM_HEAD + chunked(delta("a")))
        await writer.drain()
        for _ in range(repeat):
            await asyncio.sleep(pause)
            writer.write(chunked(*events))
            await writer.drain()
        if hold:
            await asyncio.sleep(GUARD * 2)
        writer.write(b"0\r\n\r\n")

    async with raw_server(serve) as base_url:
        return await asyncio.wait_for(helpers.ask("llama", MESSAGES, base_url=base_url, **kwargs), GUARD)


@pytest.mark.parametrize("keepalive", [b": ping\n\n", b"data: {}\n\n", b"data: not json\n\n"])
async def test_events_without_a_part_of_an_answer_do_not_hold_the_gap_open(keepalive):
    with pytest.raises(G4FTimeoutError) as caught:  # keep-alives for 30 s, so the call must end on its own
        await asyncio.wait_for(stream_then(0.03, keepalive, repeat=1000, timeout=0.15), 3)
    assert str(caught.value).endswith(": stream stalled for 0.15 s after 1 deltas")


@pytest.mark.parametrize("part", [
    delta("b"), b'data: {"choices": [{"delta": {"role": "assistant"}}]}\n\n',
    b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n',
    b'data: {"usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}\n\n',
])
async def test_each_part_of_an_answer_starts_the_gap_again(part):
    items = await stream_then(0.05, part, repeat=3, hold=False, timeout=0.12, join_deltas=False)
    assert helpers.texts(items)[0] == "a"


async def test_max_tokens_does_not_wait_for_the_rest_of_the_body():
    items = await stream_then(0, delta("b"), delta("c"), max_tokens=2)
    assert helpers.texts(items) == ["a", "b"]


async def test_read_up_to_names_the_url_without_its_credentials_when_it_cannot_decode():
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head_for(b"(\xb5/\xfd", "zstd") + b"(\xb5/\xfd")
        await writer.drain()

    async with raw_server(serve) as base_url, aiohttp.ClientSession(auto_decompress=False) as session:
        url = base_url.replace("http://", "http://user:hunter2@")
        async with session.get(url) as response:
            with pytest.raises(BodyError) as caught:
                await asyncio.wait_for(answer.read_up_to(response, 10), GUARD)
    assert str(caught.value).startswith(base_url)
    assert "hunter2" not in str(caught.value)


async def test_the_answer_ends_soon_after_done_when_the_body_stays_open():
    first_at: list[float] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(STREAM_HEAD + chunked(delta("a"), DONE))
        await writer.drain()
        await asyncio.sleep(GUARD * 2)

    loop = asyncio.get_running_loop()
    async with raw_server(serve) as base_url:
        async for item in answer_items(base_url):
            first_at.append(loop.time())
            assert item == "a"
        ended = loop.time()
    # END_GRACE (0.05 s) is all it waits for the end of the body; ten times that is a hang.
    assert ended - first_at[0] < answer.END_GRACE * 10


async def answer_items(base_url: str) -> AsyncIterator[Any]:
    agen = AutonomousAI.create_async_generator("llama", MESSAGES, base_url=base_url)
    while True:
        try:
            yield await asyncio.wait_for(agen.__anext__(), GUARD)
        except StopAsyncIteration:
            return


@pytest.mark.alone
async def test_the_events_of_one_read_are_not_all_alive_at_once():
    # 16 KiB of the smallest events in one read are decoded FEED_SIZE bytes at a time: about 400 events alive
    # at once, not 1,600 (objects the garbage collector tracks: 1,600 alive at once brought a full collection
    # every few hundred ms). An event and its strings take 150 bytes or more.
    empty = b"data: {}\n\n"
    block = empty * (answer.READ_SIZE // len(empty))
    async with response_of(STREAM_HEAD, chunked(block, delta("a"), DONE) + b"0\r\n\r\n") as response:
        await asyncio.sleep(0.05)  # all of it has arrived
        deadline = Deadline(GUARD, None, GUARD)
        items: list = []

        async def read() -> None:
            items.extend([item async for item in answer.read_answer(response, ORIGIN, deadline, True, True, None)])

        raised, peak = await helpers.traced_peak(read())
        deadline.close()
    assert raised is None and items == ["a"]
    assert peak < 1000 * 150 + 3 * answer.READ_SIZE  # fewer than 1,000 events beside the read's own bytes
