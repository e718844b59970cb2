"""The event-stream decoder: exact events for the standard's cases, any split of
the input, huge events, the size limit, and property-based checks (hypothesis)."""

from __future__ import annotations

import contextlib
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from g4f.errors import ResponseError
from helpers import ask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polling import until

from g4f_autonomous.emulator import Fault
from g4f_autonomous.sse import DEFAULT_MAX_EVENT_SIZE, ServerSentEvent, SSEDecoder, SSEError

BOM = b"\xef\xbb\xbf"


def decode(*chunks: bytes, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> list[ServerSentEvent]:
    """All events of a stream fed in these chunks, ``close()`` included."""
    decoder = SSEDecoder(max_event_size)
    events = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def decode_collecting_errors(chunks: list[bytes], max_event_size: int) -> tuple[list[ServerSentEvent], int]:
    """Events (those carried by SSEError included) and how many calls raised SSEError."""
    decoder = SSEDecoder(max_event_size)
    events: list[ServerSentEvent] = []
    errors = 0
    for call in [lambda chunk=chunk: decoder.feed(chunk) for chunk in chunks] + [decoder.close]:
        try:
            events += call()
        except SSEError as error:
            assert f"larger than max_event_size={max_event_size} bytes" in str(error)
            events += error.events
            errors += 1
    return events, errors


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cut for cut in cuts if 0 < cut < len(data))), len(data)]
    return [data[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def reference(stream: bytes) -> list[ServerSentEvent]:
    """The standard's algorithm over the whole stream at once, written plainly
    as an oracle (plus the decoder's one extension: a last unterminated event
    is kept)."""
    if stream.startswith(BOM):
        stream = stream[len(BOM) :]
    lines = [line.decode("utf-8", "replace") for line in re.split(rb"\r\n|\r|\n", stream)]
    if lines[-1] == "":
        lines.pop()  # the stream ended with a line end: no unfinished line
    lines.append("")  # close() ends the last event
    events, data, kind, last_id, retry = [], [], "", "", None
    for line in lines:
        if line == "":
            if data:
                events.append(ServerSentEvent("\n".join(data), kind or "message", last_id, retry))
            data, kind = [], ""
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            kind = value
        elif field == "id" and "\0" not in value:
            last_id = value
        elif field == "retry" and re.fullmatch("[0-9]+", value):
            retry = int(value)
    return events


def chat_event(text: str) -> bytes:
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [{"delta": {"content": text}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


SAMPLE = (
    b": keep-alive\n"
    b"event: delta\nid: 7\nretry: 1500\ndata: first\ndata:  second\n\n"
    b"data:{\"a\": 1}\r\n\r\n"
    b"unknown: field\rdata\r\r"
    + "data: caf\u00e9 \u20ac \U0001f600\n\n".encode()
    + b"data: [DONE]"
)
SAMPLE_EVENTS = [
    ServerSentEvent("first\n second", "delta", "7", 1500),
    ServerSentEvent('{"a": 1}', "message", "7", 1500),
    ServerSentEvent("", "message", "7", 1500),
    ServerSentEvent("caf\u00e9 \u20ac \U0001f600", "message", "7", 1500),
    ServerSentEvent("[DONE]", "message", "7", 1500),
]


# --- the standard's cases, exact events -------------------------------------


def test_data_line_with_space_after_colon_loses_that_space():
    assert decode(b"data: hello\n\n") == [ServerSentEvent("hello")]


def test_data_line_without_space_after_colon():
    assert decode(b"data:hello\n\n") == [ServerSentEvent("hello")]


def test_only_one_leading_space_is_removed():
    assert decode(b"data:   two left\n\n") == [ServerSentEvent("  two left")]


def test_several_data_lines_join_with_newline():
    assert decode(b"data: a\ndata:\ndata: c\n\n") == [ServerSentEvent("a\n\nc")]


def test_field_name_without_colon_has_empty_value():
    assert decode(b"data\n\ndata\ndata\n\n") == [ServerSentEvent(""), ServerSentEvent("\n")]


def test_comment_lines_are_ignored():
    assert decode(b": ping\n:\ndata: x\n: inside\n\n") == [ServerSentEvent("x")]


def test_event_id_and_retry_fields_are_read():
    events = decode(b"event: delta\nid: abc\nretry: 250\ndata: x\n\n")
    assert events == [ServerSentEvent("x", event="delta", id="abc", retry=250)]


def test_event_field_with_empty_value_is_a_message():
    assert decode(b"event: delta\nevent:\ndata: x\n\n") == [ServerSentEvent("x", "message")]


def test_event_type_resets_after_each_event():
    assert decode(b"event: delta\ndata: a\n\ndata: b\n\n") == [
        ServerSentEvent("a", "delta"),
        ServerSentEvent("b", "message"),
    ]


def test_id_and_retry_persist_until_changed():
    assert decode(b"id: 1\nretry: 10\ndata: a\n\ndata: b\n\nid:\ndata: c\n\n") == [
        ServerSentEvent("a", id="1", retry=10),
        ServerSentEvent("b", id="1", retry=10),
        ServerSentEvent("c", id="", retry=10),
    ]


def test_id_containing_nul_is_ignored():
    assert decode(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n")[1] == ServerSentEvent("b", id="1")


def test_retry_that_is_not_all_digits_is_ignored():
    events = decode(b"retry: 5\ndata: a\n\nretry: 7s\nretry: -1\nretry:\nretry: \xd9\xa3\ndata: b\n\n")
    assert [event.retry for event in events] == [5, 5]


def test_unknown_fields_are_ignored():
    assert decode(b"foo: bar\nDATA: no\nData: no\ndata : no\ndata: yes\n\n") == [ServerSentEvent("yes")]


def test_event_without_data_is_not_dispatched():
    assert decode(b"event: ping\nid: 3\n\n: only a comment\n\n\n\n") == []


def test_crlf_line_ends():
    assert decode(b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n") == [ServerSentEvent("a\nb"), ServerSentEvent("c")]


def test_cr_line_ends():
    assert decode(b"data: a\rdata: b\r\rdata: c\r\r") == [ServerSentEvent("a\nb"), ServerSentEvent("c")]


def test_mixed_line_ends():
    assert decode(b"data: a\r\ndata: b\rdata: c\n\r\n") == [ServerSentEvent("a\nb\nc")]


def test_crlf_split_between_chunks_is_one_line_end():
    # Were the LF read as a blank line, "a" and "b" would be two events.
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [ServerSentEvent("a\nb")]


def test_lf_after_a_split_crlf_ends_the_event():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == [ServerSentEvent("a")]


def test_cr_cr_dispatches_without_waiting_for_the_next_chunk():
    assert SSEDecoder().feed(b"data: a\r\r") == [ServerSentEvent("a")]


def test_events_come_out_of_the_feed_that_completes_them():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b\n") == [ServerSentEvent("a")]
    assert decoder.feed(b"\ndata: c\n\nda") == [ServerSentEvent("b"), ServerSentEvent("c")]
    assert decoder.feed(b"ta: d\n\n") == [ServerSentEvent("d")]
    assert decoder.close() == []


def test_last_event_without_trailing_newline_comes_from_close():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: last") == [ServerSentEvent("a")]
    assert decoder.close() == [ServerSentEvent("last")]


def test_last_event_without_blank_line_comes_from_close():
    decoder = SSEDecoder()
    assert decoder.feed(b"event: end\ndata: last\n") == []
    assert decoder.close() == [ServerSentEvent("last", "end")]


def test_a_line_begun_in_one_chunk_ends_in_the_next():
    # "xdata: y" is an unknown field, not the data line its second part looks like.
    assert decode(b"x", b"data: y\n\ndata: z\n\n") == [ServerSentEvent("z")]
    assert decode(b"data: a\n\nda", b"ta: b\n\n") == [ServerSentEvent("a"), ServerSentEvent("b")]


def test_empty_chunks_change_nothing():
    assert decode(b"", b"data: a", b"", b"\n", b"", b"\n", b"") == [ServerSentEvent("a")]


def test_byte_order_mark_at_start_is_ignored_even_split():
    stream = BOM + b"data: a\n\n"
    assert decode(stream) == [ServerSentEvent("a")]
    assert decode(*bytewise(stream)) == [ServerSentEvent("a")]


def test_byte_order_mark_is_only_stripped_once():
    # The second one makes the field name "\ufeffdata", an unknown field.
    assert decode(BOM + BOM + b"data: a\n\ndata: b\n\n") == [ServerSentEvent("b")]


def test_byte_order_mark_after_the_start_is_text_even_at_a_chunk_start():
    # Each time "\ufeffdata" is an unknown field, so "b" is not data.
    assert decode(b"data: a\n", BOM + b"data: b\n\n") == [ServerSentEvent("a")]
    assert decode(b"data: a\r", b"\xef", b"\xbb\xbfdata: b\n\n") == [ServerSentEvent("a")]


def test_input_shorter_than_a_byte_order_mark_gives_nothing():
    for stream in (b"\xef", b"\xef\xbb", b"\n", b"d\n"):
        assert decode(stream) == []
        assert decode(*bytewise(stream)) == []


def test_byte_order_mark_prefix_that_is_not_one_is_kept():
    assert decode(b"\xef", b"\xbbdata: a\n\ndata: b\n\n") == [ServerSentEvent("b")]


def test_utf8_split_inside_characters_is_decoded_whole():
    text = "h\u00e9 \u20ac \U0001f600 \u4e2d\u6587"
    assert decode(*bytewise(f"data: {text}\n\n".encode())) == [ServerSentEvent(text)]


def test_invalid_utf8_becomes_replacement_characters():
    assert decode(b"data: a\xffb\xc3\n\n") == [ServerSentEvent("a\ufffdb\ufffd")]


@pytest.mark.parametrize("chunks, expected", [
    # A data line completed by a later chunk, and one of several lines of an event.
    ([b"data: a\xff", b"b\xc3\n\n"], ServerSentEvent("a\ufffdb\ufffd")),
    ([b"data: a\xff\ndata: \xc3\n\n"], ServerSentEvent("a\ufffd\n\ufffd")),
    # Any other field: its name and value are decoded the same way.
    ([b"event: \xff\ndata:\xc3\n\n"], ServerSentEvent("\ufffd", "\ufffd")),
    ([b"id: \xc3", b"\ndata: x\n\n"], ServerSentEvent("x", id="\ufffd")),
])
def test_invalid_utf8_in_every_kind_of_line_and_split_becomes_replacement_characters(chunks, expected):
    assert decode(*chunks) == [expected]


def test_sample_stream_gives_exact_events():
    assert decode(SAMPLE) == SAMPLE_EVENTS


def test_sample_stream_fed_one_byte_at_a_time():
    assert decode(*bytewise(SAMPLE)) == SAMPLE_EVENTS


def test_sample_stream_split_anywhere_in_two_or_three():
    for cut in range(len(SAMPLE) + 1):
        assert decode(SAMPLE[:cut], SAMPLE[cut:]) == SAMPLE_EVENTS, cut
        second = (cut * 7) % (len(SAMPLE) + 1)
        assert decode(*split_at(SAMPLE, [cut, second])) == SAMPLE_EVENTS, (cut, second)


def test_chat_stream_in_provider_sized_blocks():
    stream = b"".join(chat_event(f"tok{i} ") for i in range(3000)) + b"data: [DONE]\n\n"
    events = decode(*[stream[i : i + 65536] for i in range(0, len(stream), 65536)])
    assert [json.loads(event.data)["choices"][0]["delta"]["content"] for event in events[:-1]] == [
        f"tok{i} " for i in range(3000)
    ]
    assert events[-1] == ServerSentEvent("[DONE]")


def test_the_end_of_an_event_is_not_read_again_as_a_line_of_the_next():
    # "paid" ends in "id": read again after its event, it would be an "id" line that clears the id.
    assert decode(b"id: 7\ndata: paid\n\ndata: b") == [ServerSentEvent("paid", id="7"), ServerSentEvent("b", id="7")]


def test_fast_path_keeps_id_and_retry_of_earlier_events():
    stream = b"id: 9\nretry: 3\ndata: a\n\n" + chat_event("x") * 3
    assert [(event.id, event.retry) for event in decode(stream)] == [("9", 3)] * 4


# --- size: huge events work, linear time, and the limit ----------------------


def test_one_mib_event_whole_and_in_random_chunks():
    payload = "\u00e9x" * (360 * 1024)  # 3 bytes a pair: 1080 KiB
    stream = f"data: {payload}\n\n".encode()
    assert len(stream) > 1024 * 1024
    assert decode(stream) == [ServerSentEvent(payload)]
    cuts = random.Random(1).sample(range(len(stream)), 300)
    assert decode(*split_at(stream, cuts)) == [ServerSentEvent(payload)]


def test_one_mib_multiline_event_in_small_chunks():
    lines = [f"{i:07d}" + "y" * 1016 for i in range(1024)]
    stream = "".join(f"data: {line}\r\n" for line in lines).encode() + b"\r\n"
    assert decode(*[stream[i : i + 1000] for i in range(0, len(stream), 1000)]) == [
        ServerSentEvent("\n".join(lines))
    ]


def test_256_kib_event_fed_one_byte_at_a_time():
    # Linear work: a quadratic decoder would copy ~34 GB here and never finish.
    payload = "z" * (256 * 1024)
    assert decode(*bytewise(f"data: {payload}\n\n".encode())) == [ServerSentEvent(payload)]


def test_256_kib_of_lines_fed_one_byte_at_a_time():
    lines = [f"{i:05d}" + "w" * 250 for i in range(1024)]
    stream = "".join(f"data: {line}\n" for line in lines).encode() + b"\n"
    assert decode(*bytewise(stream)) == [ServerSentEvent("\n".join(lines))]


def test_event_over_the_limit_raises_sse_error_naming_the_limit():
    decoder = SSEDecoder(max_event_size=16)
    with pytest.raises(SSEError, match=r"^event-stream: dropped an event larger than max_event_size=16 bytes$"):
        decoder.feed(b"data: " + b"x" * 11 + b"\n\n")


def test_event_at_the_limit_is_kept():
    assert decode(b"data: " + b"x" * 10 + b"\n\n", max_event_size=16) == [ServerSentEvent("x" * 10)]


def test_event_at_the_limit_is_kept_when_its_line_arrives_in_pieces():
    line = b"data: " + b"x" * 10  # 16 bytes, held unfinished before its line end comes
    assert decode(line[:3], line[3:], b"\n\n", max_event_size=16) == [ServerSentEvent("x" * 10)]
    assert decode(*bytewise(line + b"\n\n"), max_event_size=16) == [ServerSentEvent("x" * 10)]


def test_limit_holds_for_an_event_after_others():
    at_limit = b"data: " + b"x" * 10 + b"\n\n"
    assert decode(b"data: a\n\n" + at_limit + at_limit, max_event_size=16) == [
        ServerSentEvent("a"), ServerSentEvent("x" * 10), ServerSentEvent("x" * 10)
    ]


@pytest.mark.parametrize("chunks", [
    [b"data: " + b"x" * 10 + b"\ndata: y\n\n"],  # the next line, whole
    [b"data: " + b"x" * 10 + b"\n", b"data: y"],  # the next line, unfinished
])
def test_an_event_at_the_limit_that_grows_raises(chunks):
    with pytest.raises(SSEError, match="dropped an event larger"):
        decode(*chunks, max_event_size=16)


def test_limit_counts_all_lines_of_the_event():
    with pytest.raises(SSEError):
        decode(b"event: abcdefgh\ndata: 123456\n\n", max_event_size=16)


async def test_event_over_the_limit_reaches_a_provider_caller_as_a_g4f_error_naming_it(emulator):
    # What the decoder's error becomes for a user of the provider: a g4f error naming endpoint and limit.
    emulator.fault = Fault(huge_event_bytes=DEFAULT_MAX_EVENT_SIZE)  # its "data: " line is over the limit
    with pytest.raises(ResponseError) as caught:
        await ask("llama", [{"role": "user", "content": "hi"}], base_url=emulator.base_url)
    assert type(caught.value) is ResponseError
    assert str(caught.value) == (f"{emulator.base_url}/chat: event-stream: dropped an event larger than "
                                 f"max_event_size={DEFAULT_MAX_EVENT_SIZE} bytes")
    assert await until(lambda: emulator.open_streams == 0)


def test_sse_error_carries_the_good_events_of_its_chunk_and_drops_only_the_big_one():
    decoder = SSEDecoder(max_event_size=16)
    with pytest.raises(SSEError) as caught:
        decoder.feed(b"data: a\n\ndata: " + b"x" * 40 + b"\ndata: b\n\nid: 5\ndata: c\n\ndata: d")
    assert caught.value.events == [ServerSentEvent("a"), ServerSentEvent("c", id="5")]
    assert decoder.close() == [ServerSentEvent("d", id="5")]


def test_sse_error_counts_several_dropped_events():
    big = b"data: " + b"x" * 20 + b"\n\n"
    with pytest.raises(SSEError, match="dropped 2 events larger"):
        SSEDecoder(max_event_size=16).feed(big + b"data: ok\n\n" + big)


def test_decoder_goes_on_with_the_next_event_after_sse_error():
    decoder = SSEDecoder(max_event_size=16)
    with pytest.raises(SSEError):
        decoder.feed(b"data: " + b"x" * 100)
    # The rest of the oversized event is skipped without another error.
    assert decoder.feed(b"y" * 1000) == []
    assert decoder.feed(b"\ndata: more of the big event\n") == []
    assert decoder.feed(b"\ndata: ok\n\n") == [ServerSentEvent("ok")]


def test_endless_line_raises_once_while_it_is_still_arriving():
    decoder = SSEDecoder(max_event_size=1024)
    with pytest.raises(SSEError):
        for _ in range(100):
            decoder.feed(b"data: " + b"x" * 512)
    for _ in range(10_000):  # 5 MiB more: dropped, never buffered, no new error
        assert decoder.feed(b"x" * 512) == []
    assert decoder.feed(b"\n\ndata: next\n\n") == [ServerSentEvent("next")]


def test_decoder_module_loads_without_any_io_library():
    # Loaded from its file alone: the package __init__ would pull in g4f and aiohttp.
    source = Path(__file__).resolve().parent.parent / "g4f_autonomous" / "sse.py"
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('sse', {str(source)!r})\n"
        "module = sys.modules['sse'] = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "print(sorted({'aiohttp', 'asyncio', 'socket', 'g4f'} & set(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr


# --- properties (hypothesis) ------------------------------------------------

line_end = st.sampled_from([b"\n", b"\r\n", b"\r"])
field_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=12)
line = st.one_of(
    field_text.map(lambda text: b"data: " + text.encode()),
    field_text.map(lambda text: b"data:" + text.encode()),
    st.just(b"data"),
    st.sampled_from([b"event: delta", b"event:", b"id: 42", b"id: x\x00y", b"retry: 3000", b"retry: nope"]),
    field_text.map(lambda text: b":" + text.encode()),
    field_text.map(lambda text: b"other: " + text.encode()),
    st.just(b""),
)
stream = st.builds(
    lambda bom, lines, ends, last: (BOM if bom else b"") + b"".join(map(bytes.__add__, lines, ends)) + last,
    st.booleans(),
    st.lists(line, max_size=25),
    st.lists(line_end, min_size=25, max_size=25),
    st.sampled_from([b"", b"data: tail", b"\r"]),
)
cut_points = st.lists(st.integers(min_value=0, max_value=4096), max_size=30)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream, cut_points)
def test_any_split_gives_the_same_events_as_the_whole_stream(data, cuts):
    whole = decode(data)
    assert whole == reference(data)
    assert decode(*split_at(data, [cut % (len(data) + 1) for cut in cuts])) == whole


@settings(max_examples=80, deadline=None)
@given(stream)
def test_one_byte_chunks_give_the_same_events_as_the_whole_stream(data):
    assert decode(*bytewise(data)) == reference(data)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"])), cut_points)
def test_any_unicode_text_survives_as_data(text, cuts):
    # A data value cannot hold a line end: the text goes as one data line per
    # line, and comes back with its line ends as "\n".
    lines = re.split("\r\n|\r|\n", text)
    data = "".join(f"data: {part}\n" for part in lines).encode() + b"\n"
    assert decode(*split_at(data, cuts)) == [ServerSentEvent("\n".join(lines))]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), cut_points, st.sampled_from([0, 1, 8, 16, 64, DEFAULT_MAX_EVENT_SIZE]))
def test_arbitrary_bytes_raise_nothing_but_sse_error_and_split_changes_nothing(data, cuts, limit):
    split_events, split_errors = decode_collecting_errors(split_at(data, [cut % (len(data) + 1) for cut in cuts]), limit)
    whole_events, whole_errors = decode_collecting_errors([data], limit)
    assert split_events == whole_events
    assert (split_errors > 0) == (whole_errors > 0)
    if limit == DEFAULT_MAX_EVENT_SIZE:
        assert whole_errors == 0 and whole_events == reference(data)
    # Bounded output: never more data out than bytes in.
    assert sum(len(event.data.encode()) for event in whole_events) <= len(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.sampled_from([8, 16, 64, DEFAULT_MAX_EVENT_SIZE]))
def test_decoder_recovers_at_the_next_event_after_any_bytes(junk, limit):
    decoder = SSEDecoder(limit)
    with contextlib.suppress(SSEError):
        decoder.feed(junk)
    last = decoder.feed(b"\n\ndata: ok\n\n")[-1]
    assert (last.data, last.event) == ("ok", "message")
