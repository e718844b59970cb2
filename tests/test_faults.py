"""Every upstream fault gives its own type of g4f error, a message naming
status, endpoint and cause, and leaves no stream open behind it."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from g4f.errors import CloudflareError, RateLimitError, ResponseError, ResponseStatusError
from g4f.errors import TimeoutError as G4FTimeoutError
from helpers import ask, closed_port_url, text_of, texts
from polling import until

from g4f_autonomous import AutonomousAI
from g4f_autonomous.emulator import PLAIN_HTML_PAGE, Emulator, Fault

MESSAGES = [{"role": "user", "content": "tell me a story"}]
ANSWER = "llama heard: tell me a story"

pytestmark = pytest.mark.filterwarnings("error::ResourceWarning")


async def expect_failure(emulator: Emulator, fault: Fault, error_type: type, **kwargs: Any) -> str:
    """Ask with this fault; the error must be exactly ``error_type``, and no stream stay open."""
    emulator.fault = fault
    with pytest.raises(error_type) as caught:
        await ask("llama", MESSAGES, base_url=emulator.base_url, **kwargs)
    assert type(caught.value) is error_type
    assert await until(lambda: emulator.open_streams == 0)
    return str(caught.value)


def chat_url(emulator: Emulator) -> str:
    return emulator.base_url + "/chat"


STATUSES = [400, 401, 403, 404, 429, 500, 502, 503, 504]
BODIES = {
    # name: (Fault fields, the cause the message must quote)
    "json": (lambda status: {}, lambda status: f"emulated failure {status}"),
    "text": (lambda status: {"body": f"upstream says no ({status})", "content_type": "text/plain"},
             lambda status: f"upstream says no ({status})"),
    "html": (lambda status: {"body": PLAIN_HTML_PAGE, "content_type": "text/html"}, lambda status: "an HTML page"),
}


@pytest.mark.parametrize("body", list(BODIES))
@pytest.mark.parametrize("status", STATUSES)
async def test_http_error_status_raises_typed_error_naming_status_endpoint_and_cause(emulator, status, body):
    fields, cause = BODIES[body]
    expected = RateLimitError if status == 429 else ResponseStatusError
    message = await expect_failure(emulator, Fault(status=status, **fields(status)), expected)
    assert message == f"HTTP {status} from {chat_url(emulator)}: {cause(status)}"


@pytest.mark.parametrize("status", [403, 503, 200])
async def test_cloudflare_challenge_raises_cloudflare_error(emulator, status):
    message = await expect_failure(emulator, Fault(status=status, cloudflare=True), CloudflareError)
    assert message.startswith(f"HTTP {status} from {chat_url(emulator)}: Cloudflare challenge page")


async def test_connection_refused_raises_response_error_naming_endpoint():
    base_url = closed_port_url()
    with pytest.raises(ResponseError) as caught:
        await ask("llama", MESSAGES, base_url=base_url, timeout=10)
    assert type(caught.value) is ResponseError
    assert str(caught.value) == f"cannot reach {base_url}/chat: ClientConnectorError: Connection refused"


async def test_unresolvable_host_fails_fast_with_dns_error(monkeypatch):
    # The system resolver answers "no such name" for this host, without asking a DNS server
    # (which may take its whole timeout where there is no network).
    host = "upstream.g4f-autonomous.invalid"
    base_url = f"http://{host}/api/v1/ai"
    system_resolver = socket.getaddrinfo

    def resolver(name, *args, **kwargs):
        if name == host:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return system_resolver(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with pytest.raises(ResponseError) as caught:
        await ask("llama", MESSAGES, base_url=base_url, timeout=10)
    assert type(caught.value) is ResponseError
    assert str(caught.value).startswith(f"cannot reach {base_url}/chat: ClientConnectorDNSError: Name or service not known")


async def test_slow_first_byte_past_timeout_raises_g4f_timeout_error_and_disconnects(emulator):
    message = await expect_failure(emulator, Fault(first_byte_delay=30), G4FTimeoutError, timeout=0.5)
    assert message == f"{chat_url(emulator)}: no answer within 0.5 s"
    assert await until(lambda: emulator.disconnects == 1)


async def test_stall_mid_stream_past_timeout_raises_timeout_and_disconnects(emulator):
    emulator.fault = Fault(stall_after=2, stall_seconds=30)
    received = []
    with pytest.raises(G4FTimeoutError) as caught:
        async for item in AutonomousAI.create_async_generator(
                "llama", MESSAGES, base_url=emulator.base_url, timeout=0.5, join_deltas=False):
            received.append(item)
    assert received == ["llama ", "heard: "]  # what came before the stall, then the error
    assert str(caught.value) == f"{chat_url(emulator)}: stream stalled for 0.5 s after 2 deltas"
    assert await until(lambda: emulator.disconnects == 1 and emulator.open_streams == 0)


async def test_connection_dropped_mid_stream_raises_instead_of_short_answer(emulator):
    message = await expect_failure(emulator, Fault(drop_after=2), ResponseError)
    assert message.startswith(f"{chat_url(emulator)}: stream broke after 2 deltas: ClientPayloadError: ")


async def test_malformed_event_lines_between_good_ones_are_skipped_and_logged(emulator, monkeypatch):
    logged: list[str] = []
    monkeypatch.setattr("g4f.debug.logging", True)
    monkeypatch.setattr("g4f.debug.log_handler", lambda *text, file=None: logged.append(" ".join(map(str, text))))
    emulator.fault = Fault(malformed_every=1)
    assert text_of(await ask("llama", MESSAGES, base_url=emulator.base_url)) == ANSWER
    skipped = [line for line in logged if "skipped a malformed event" in line]
    assert len(skipped) == len(ANSWER.split())  # one after every delta
    assert emulator.open_streams == 0


async def test_one_mebibyte_event_arrives_whole(emulator):
    emulator.fault = Fault(huge_event_bytes=2**20)
    items = await ask("llama", MESSAGES, base_url=emulator.base_url, join_deltas=False)
    assert items[0] == "x" * 2**20
    assert text_of(items) == "x" * 2**20 + ANSWER
    assert emulator.open_streams == 0


async def test_body_neither_event_stream_nor_json_raises_response_error(emulator):
    message = await expect_failure(emulator, Fault(garbage=True), ResponseError)
    assert message == (f"{chat_url(emulator)}: answer is neither an event stream nor JSON: "
                       "this is not an event stream nor JSON")


async def test_event_stream_without_any_event_raises_instead_of_empty_answer(emulator):
    fault = Fault(body="hello\nworld\n", content_type="text/event-stream")
    message = await expect_failure(emulator, fault, ResponseError)
    assert message == f"{chat_url(emulator)}: answer reached its end without any text"


async def test_truncated_json_answer_raises_response_error(emulator):
    fault = Fault(body='{"choices": [{"message": {"content": "cut', content_type="application/json")
    message = await expect_failure(emulator, fault, ResponseError)
    assert message.startswith(f"{chat_url(emulator)}: answer is not valid JSON: ")


async def test_error_object_inside_stream_raises_with_its_message(emulator):
    message = await expect_failure(emulator, Fault(stream_error="model overloaded, retry later"), ResponseError)
    assert message == f"{chat_url(emulator)} reported an error: model overloaded, retry later"


async def test_error_object_as_whole_200_json_answer_raises_with_its_message(emulator):
    body = json.dumps({"error": {"message": "quota exhausted", "code": "quota"}})
    message = await expect_failure(emulator, Fault(body=body), ResponseError)
    assert message == f"{chat_url(emulator)} reported an error: quota exhausted"


async def test_recovers_after_fault_on_same_pooled_session(emulator):
    emulator.next_faults.extend([Fault(drop_after=1), Fault(status=502)])
    for error_type in (ResponseError, ResponseStatusError):
        with pytest.raises(error_type):
            await ask("llama", MESSAGES, base_url=emulator.base_url)
    assert text_of(await ask("llama", MESSAGES, base_url=emulator.base_url)) == ANSWER
    assert emulator.open_streams == 0


@pytest.mark.parametrize("content_type", ["text/plain", "text/html", "application/octet-stream"])
async def test_json_answer_without_a_json_content_type_is_read_as_json(emulator, content_type):
    emulator.fault = Fault(body='  {"choices": [{"message": {"content": "plain hi"}}]}', content_type=content_type)
    items = await ask("llama", MESSAGES, base_url=emulator.base_url, stream=False)
    assert texts(items) == ["plain hi"]
