"""A hostile upstream: every read bounded in bytes and time, only g4f errors
escape, and the request goes where the provider says, framed as it says."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import helpers
import pytest
from g4f.errors import G4FError, RateLimitError, ResponseError, ResponseStatusError
from g4f.errors import TimeoutError as G4FTimeoutError
from g4f.providers.response import FinishReason, Usage
from polling import until

from g4f_autonomous import AutonomousAI, answer
from g4f_autonomous.emulator import Emulator, Fault

REPO = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "tell me a story"}]
TEXT_EVENT = '{"choices": [{"delta": {"content": "hi"}}]}'
# A guard for the tests below that a regression would make hang: they fail instead.
GUARD = 20.0

pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")


async def ask(emulator: Emulator, fault: Fault, model: str = "llama", **kwargs: Any) -> list:
    """helpers.ask with this fault set first, and failing after GUARD seconds instead of hanging."""
    emulator.fault = fault
    kwargs.setdefault("base_url", emulator.base_url)
    return await asyncio.wait_for(helpers.ask(model, kwargs.pop("messages", MESSAGES), **kwargs), GUARD)


def chat_url(emulator: Emulator) -> str:
    return emulator.base_url + "/chat"


# --- bounded memory ---------------------------------------------------------


@pytest.mark.alone
async def test_endless_error_body_is_read_up_to_the_cap_then_closed(emulator):
    error, peak = await helpers.traced_peak(ask(emulator, Fault(status=500, endless_body=True, content_type="text/plain")), G4FError)
    assert type(error) is ResponseStatusError
    assert str(error).startswith(f"HTTP 500 from {chat_url(emulator)}: xxxxxxxx")
    assert peak < 4 * answer.ERROR_BODY_LIMIT + 2**20
    assert await until(lambda: emulator.open_streams == 0)


@pytest.mark.alone
async def test_gzip_bomb_is_bounded_by_decoded_bytes(emulator):
    # 256 MiB of zeros in about 256 KiB of gzip: the cap counts what it inflates to.
    fault = Fault(status=429, gzip_bomb_mib=256, content_type="text/plain")
    error, peak = await helpers.traced_peak(ask(emulator, fault), G4FError)
    assert type(error) is RateLimitError
    assert str(error).startswith(f"HTTP 429 from {chat_url(emulator)}: \ufffd\ufffd")  # zeros, shown harmless
    assert peak < 8 * 2**20


async def test_whole_json_answer_over_the_cap_is_an_error_naming_it(emulator, monkeypatch):
    monkeypatch.setattr(answer, "MAX_ANSWER_SIZE", 2**16)
    body = json.dumps({"choices": [{"message": {"content": "y" * 2**17}}]})
    with pytest.raises(ResponseError) as caught:
        await ask(emulator, Fault(body=body))
    assert str(caught.value) == f"{chat_url(emulator)}: JSON answer is larger than 65536 bytes"


async def test_held_text_for_stream_false_over_the_cap_is_an_error_naming_it(emulator, monkeypatch):
    monkeypatch.setattr(answer, "MAX_ANSWER_SIZE", 2**16)
    with pytest.raises(ResponseError) as caught:
        # An upstream that streams although asked for one JSON answer: 80,000 characters.
        await ask(emulator, Fault(events=['{"choices": [{"delta": {"content": "tok "}}]}'] * 20_000), stream=False)
    assert str(caught.value).startswith(f"{chat_url(emulator)}: answer is longer than 65536 characters")
    assert await until(lambda: emulator.open_streams == 0)


async def test_streamed_answer_is_not_capped(emulator, monkeypatch):
    monkeypatch.setattr(answer, "MAX_ANSWER_SIZE", 2**16)
    items = await ask(emulator, Fault(deltas=20_000))
    assert "".join(item for item in items if isinstance(item, str)) == "tok " * 20_000


# --- bounded time -----------------------------------------------------------

async def test_drip_of_single_bytes_is_bounded_by_the_gap_between_events(emulator):
    # aiohttp's read timeout restarts on every byte: 0.1 s apart never trips 0.5 s.
    with pytest.raises(G4FTimeoutError) as caught:
        await ask(emulator, Fault(drip_seconds=0.1), timeout=0.5)
    assert str(caught.value) == f"{chat_url(emulator)}: stream stalled for 0.5 s after 0 deltas"
    assert await until(lambda: emulator.open_streams == 0)


async def test_total_timeout_bounds_a_slow_but_live_stream(emulator):
    with pytest.raises(G4FTimeoutError) as caught:
        await ask(emulator, Fault(drip_seconds=0.005), timeout=30, total_timeout=0.5)
    assert str(caught.value) == f"{chat_url(emulator)}: total_timeout of 0.5 s reached"


async def test_total_timeout_leaves_a_quick_answer_alone(emulator):
    items = await ask(emulator, Fault(), total_timeout=30)
    assert items[0] == "llama heard: tell me a story"


async def test_the_callers_own_timeout_stays_the_callers(emulator):
    """The provider's deadline cancels the waiting read itself; a cancel from outside must stay a cancel."""
    emulator.fault = Fault(stall_after=1, stall_seconds=30)
    agen = AutonomousAI.create_async_generator("llama", MESSAGES, base_url=emulator.base_url, timeout=30)
    with pytest.raises(asyncio.TimeoutError) as caught:
        await asyncio.wait_for(_collect(agen), 0.3)
    assert not isinstance(caught.value, G4FError)
    assert await until(lambda: emulator.open_streams == 0)


async def _collect(agen: Any) -> list:
    return [item async for item in agen]


@pytest.mark.parametrize("value", [-1, "5", float("nan"), float("inf"), True])
async def test_bad_total_timeout_is_a_value_error_naming_it(emulator, value):
    with pytest.raises(ValueError, match="total_timeout must be a positive number of seconds"):
        await ask(emulator, Fault(), total_timeout=value)
    assert emulator.requests == []


async def test_broken_chunk_framing_is_a_g4f_error_within_timeout(emulator):
    # aiohttp's C parser waits for ever on a chunk size "zz"; the deadline does not.
    delivered: list = []
    emulator.fault = Fault(broken_chunk=True)
    agen = AutonomousAI.create_async_generator("llama", MESSAGES, base_url=emulator.base_url, timeout=0.5)

    async def read() -> None:
        async for item in agen:
            delivered.append(item)

    with pytest.raises(G4FError):
        await asyncio.wait_for(read(), GUARD)  # (asyncio.timeout needs Python 3.11)
    assert delivered == ["first "]


def test_broken_chunk_framing_with_the_pure_python_parser_is_a_g4f_error():
    """aiohttp's Python parser raises TransferEncodingError, which is no ClientError."""
    script = textwrap.dedent("""
        import asyncio
        from g4f.errors import G4FError
        from g4f_autonomous import AutonomousAI
        from g4f_autonomous.emulator import Emulator, Fault

        async def main():
            async with Emulator(fault=Fault(broken_chunk=True)) as emulator:
                try:
                    async for _ in AutonomousAI.create_async_generator(
                            "llama", [{"role": "user", "content": "hi"}], base_url=emulator.base_url, timeout=1):
                        pass
                except G4FError as error:
                    print("g4f error:", type(error).__name__)

        asyncio.run(main())
    """)
    env = {**__import__("os").environ, "AIOHTTP_NO_EXTENSIONS": "1"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60,
                            cwd=REPO)
    assert result.stdout.strip() == "g4f error: ResponseError", result.stderr


# --- only typed errors ------------------------------------------------------

async def test_deeply_nested_event_is_a_response_error(emulator):
    with pytest.raises(ResponseError, match=r"an event could not be read \(nested too deeply\)"):
        await ask(emulator, Fault(events=[TEXT_EVENT, "[" * 10_000 + "]" * 10_000, "[DONE]"]))


async def test_integer_of_thousands_of_digits_is_an_error_not_a_short_answer(emulator):
    with pytest.raises(ResponseError, match=r"an event could not be read \(a number too long to read\)"):
        await ask(emulator, Fault(events=[TEXT_EVENT, '{"n": ' + "1" * 5000 + "}", "[DONE]"]))


@pytest.mark.parametrize("usage", [
    {"self": 1}, {"output_tokens_details": 5}, {"prompt_tokens": "5"}, {"prompt_tokens": True},
    {"prompt_tokens": 1.5}, {"prompt_tokens": -1}, {"prompt_tokens": 10**30}, [1, 2], "usage",
])
async def test_odd_usage_is_left_out(emulator, usage):
    events = [TEXT_EVENT, json.dumps({"choices": [], "usage": usage}), "[DONE]"]
    assert await ask(emulator, Fault(events=events)) == ["hi"]


async def test_known_usage_counts_are_kept_and_others_dropped(emulator):
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "self": 1, "output_tokens_details": 5}
    items = await ask(emulator, Fault(events=[TEXT_EVENT, json.dumps({"choices": [], "usage": usage}), "[DONE]"]))
    assert items[0] == "hi"
    assert isinstance(items[1], Usage)
    assert items[1].get_dict() == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


@pytest.mark.parametrize("reason", [7, {"a": 1}, ["stop"], "", "x" * 65, "stop\nnow", None])
async def test_finish_reason_that_is_not_a_short_string_is_left_out(emulator, reason):
    event = json.dumps({"choices": [{"delta": {"content": "hi"}, "finish_reason": reason}]})
    assert await ask(emulator, Fault(events=[event, "[DONE]"])) == ["hi"]


async def test_short_string_finish_reason_is_passed_on(emulator):
    event = json.dumps({"choices": [{"delta": {"content": "hi"}, "finish_reason": "length"}]})
    items = await ask(emulator, Fault(events=[event, "[DONE]"]))
    assert items[0] == "hi" and isinstance(items[1], FinishReason) and items[1].reason == "length"


async def test_stream_of_only_done_is_an_error_not_an_empty_success(emulator):
    with pytest.raises(ResponseError) as caught:
        await ask(emulator, Fault(events=["[DONE]"]))
    assert str(caught.value) == f"{chat_url(emulator)}: answer reached [DONE] without any text"


async def test_answer_without_text_names_the_finish_reason(emulator):
    event = json.dumps({"choices": [{"delta": {}, "finish_reason": "content_filter"}]})
    with pytest.raises(ResponseError) as caught:
        await ask(emulator, Fault(events=[event, "[DONE]"]))
    assert str(caught.value) == (
        f"{chat_url(emulator)}: answer reached [DONE] without any text (finish reason 'content_filter')"
    )


async def test_whole_json_answer_without_text_is_an_error(emulator):
    body = json.dumps({"choices": [{"message": {"content": ""}, "finish_reason": "stop"}]})
    with pytest.raises(ResponseError, match=r"without any text \(finish reason 'stop'\)"):
        await ask(emulator, Fault(body=body), stream=False)


async def test_error_member_that_is_a_deep_structure_is_quoted_safely(emulator):
    nested: Any = "deep"
    for _ in range(500):
        nested = [nested]
    with pytest.raises(ResponseError) as caught:
        await ask(emulator, Fault(events=[json.dumps({"error": nested})]))
    assert str(caught.value) == f"{chat_url(emulator)} reported an error: an error list"


# --- the request is ours ----------------------------------------------------

@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_is_not_followed_and_names_status_and_location(emulator, status):
    async with Emulator() as elsewhere:
        location = elsewhere.base_url.replace("http://", "http://user:secret@") + "/chat"
        with pytest.raises(ResponseStatusError) as caught:
            await ask(emulator, Fault(status=status, location=location))
        assert elsewhere.requests == []
    shown = location.replace("user:secret@", "***@")
    assert str(caught.value) == (
        f"HTTP {status} from {chat_url(emulator)}: redirect to {shown} not followed; set base_url to the service itself"
    )


@pytest.mark.parametrize("name", [
    "host", "Host", "content-length", "Transfer-Encoding", "connection", "keep-alive", "te", "trailer", "upgrade",
    "expect", "proxy-authorization", "Proxy-Connection",
])
async def test_framing_routing_and_hop_by_hop_headers_are_refused_before_any_io(emulator, name):
    with pytest.raises(ValueError) as caught:
        await ask(emulator, Fault(), headers={name: "internal.example"})
    assert f"headers: {name.lower()!r} cannot be set" in str(caught.value)
    assert emulator.requests == []


async def test_ordinary_headers_still_reach_the_upstream(emulator):
    await ask(emulator, Fault(), headers={"X-Trace": "abc", "accept-language": "de"})
    sent = {name.lower(): value for name, value in emulator.requests[0].headers.items()}
    assert (sent["x-trace"], sent["accept-language"]) == ("abc", "de")


@pytest.mark.parametrize("media, where", [
    ("abc", "media must be a list"),
    (b"\x89PNG", "media must be a list"),
    ([123], "media[0] is not an image"),
    ([None], "media[0] is not an image"),
    ([b"not an image"], "media[0] is not an image"),
    ([("data:image/png;base64,AAAA", "a.png"), ("abc", None)], "media[1] is a string but not"),
    ([("x", "y", "z")], "media[0] must be image data or a (data, filename) pair"),
    ([(b"x", 5)], "media[0] must be image data or a (data, filename) pair"),
])
async def test_bad_media_is_a_value_error_naming_the_item_before_any_io(emulator, media, where):
    with pytest.raises(ValueError) as caught:
        await ask(emulator, Fault(), media=media)
    assert where in str(caught.value)
    assert emulator.requests == []


@pytest.mark.parametrize("messages, where", [
    ([{"role": "user", "content": "bad \ud800 text"}], "messages[0]"),
    ([{"role": "system", "content": "fine"}, {"role": "user", "content": [{"type": "text", "text": "\udfff"}]}],
     "messages[1]"),
])
async def test_text_utf8_cannot_encode_is_a_value_error_naming_the_message(emulator, messages, where):
    with pytest.raises(ValueError) as caught:
        await ask(emulator, Fault(), messages=messages)
    assert str(caught.value) == f"{where} contains a lone surrogate that UTF-8 cannot encode"
    assert emulator.requests == []


# --- whatever the upstream sends --------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["choices", "delta", "message", "content", "finish_reason", "usage", "error",
                         "prompt_tokens", "completion_tokens", "total_tokens", "output_tokens_details", "code"])
        | st.text(max_size=6),
        inner, max_size=4),
    max_leaves=12,
)
# Values shaped like answer chunks, so that the checks past the first level are reached too.
CHUNKS = st.fixed_dictionaries({}, optional={
    "choices": st.lists(st.fixed_dictionaries({}, optional={
        "delta": st.fixed_dictionaries({}, optional={"content": JSON_VALUES}) | JSON_VALUES,
        "finish_reason": JSON_VALUES,
    }), max_size=2) | JSON_VALUES,
    "usage": st.dictionaries(st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens", "self"]),
                             JSON_VALUES, max_size=3) | JSON_VALUES,
    "finish_reason": JSON_VALUES,
})
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def outcome(base_url: str, **kwargs: Any) -> list:
    """The items of one call, or the error it raised, which must be a g4f error."""
    async def call() -> list:
        return await asyncio.wait_for(helpers.ask("llama", MESSAGES, base_url=base_url, timeout=5, **kwargs), GUARD)
    try:
        items = asyncio.run(call())
    except G4FError as error:
        return [error]
    assert all(isinstance(item, (str, FinishReason, Usage)) for item in items)
    assert any(isinstance(item, str) and item for item in items)  # never an empty success
    return items


@SETTINGS
@given(values=st.lists(st.one_of(CHUNKS, JSON_VALUES), max_size=5), text_first=st.booleans(),
       done=st.booleans(), stream=st.booleans())
def test_any_json_events_give_text_or_a_g4f_error(_emulator_thread, values, text_first, done, stream):
    _emulator_thread.reset()
    events = [TEXT_EVENT] * text_first + [json.dumps(value) for value in values] + ["[DONE]"] * done
    _emulator_thread.emulator.fault = Fault(events=events)
    items = outcome(_emulator_thread.base_url, stream=stream)
    for item in items:
        if isinstance(item, Usage):
            assert all(type(count) is int for count in item.get_dict().values())
        if isinstance(item, FinishReason):
            assert isinstance(item.reason, str) and 0 < len(item.reason) <= 64


@SETTINGS
@given(body=st.binary(max_size=300), status=st.sampled_from([200, 200, 200, 302, 400, 429, 500, 503]),
       content_type=st.sampled_from(["text/event-stream", "application/json", "text/plain", "text/html", ""]))
def test_any_body_bytes_give_text_or_a_g4f_error(_emulator_thread, body, status, content_type):
    _emulator_thread.reset()
    head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n"
    if content_type:
        head += f"content-type: {content_type}\r\n"
    _emulator_thread.emulator.fault = Fault(raw=head.encode() + b"\r\n" + body)
    outcome(_emulator_thread.base_url)


def _nested(depth: int) -> dict:
    value: dict = {"x": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


def _looped() -> dict:
    part: dict = {"type": "x"}
    part["self"] = part
    return part


@pytest.mark.parametrize("part, reason", [
    ({"type": "image_url", "image_url": {"url": object()}}, "holds what JSON cannot (Object of type object"),
    ({"type": "x", "deep": _nested(5000)}, "is nested too deeply"),
    (_looped(), "holds what JSON cannot (Circular reference detected)"),
])
async def test_content_json_cannot_carry_is_a_value_error_naming_the_message(emulator, part, reason):
    messages = [{"role": "system", "content": "fine"}, {"role": "user", "content": [part]}]
    with pytest.raises(ValueError) as caught:
        await ask(emulator, Fault(), messages=messages)
    assert str(caught.value).startswith(f"messages[1] {reason}")
    assert emulator.requests == []


@pytest.mark.parametrize("name", ["host:internal.example", "x a", "", "x-ü", "x(y)"])
async def test_a_header_name_that_is_no_http_token_is_refused_before_any_io(emulator, name):
    """"host:internal.example" would otherwise go out as a Host header line."""
    with pytest.raises(ValueError) as caught:
        await ask(emulator, Fault(), headers={name: "value"})
    assert str(caught.value).startswith(f"headers: {name!r} is not a header name")
    assert emulator.requests == []


async def test_a_cookie_one_answer_sets_is_not_sent_with_the_next_request(emulator):
    """One pooled session serves every user of a g4f server: it must keep no cookies."""
    by_name = emulator.base_url.replace("127.0.0.1", "localhost")  # aiohttp keeps no cookies of IP hosts
    await ask(emulator, Fault(set_cookie="session=user-a-secret; Path=/"), base_url=by_name)
    await ask(emulator, Fault(), base_url=by_name)
    assert len(emulator.requests) == 2
    assert [name for name in emulator.requests[1].headers if name.lower() == "cookie"] == []
