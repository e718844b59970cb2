"""Security: no message text or proxy password in errors or logs, TLS
verification on, no CR/LF into headers, the emulator on loopback only."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import socket
import ssl
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import pytest
from aiohttp import web
from g4f.errors import ResponseError, ResponseStatusError
from helpers import ask, closed_port
from offline import offline_env
from ticker import LoopTicker

from g4f_autonomous import wire
from g4f_autonomous.emulator import BASE_PATH, Emulator, Fault

REPO = Path(__file__).resolve().parent.parent
SECRET = "my-bank-pin-is-8472-and-the-vault-code-is-kumquat"
PASSWORD = "Pr0xy-Passw0rd-q7"


@pytest.fixture
def g4f_log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Everything g4f's debug log receives during the test (restored afterwards)."""
    lines: list[str] = []
    monkeypatch.setattr("g4f.debug.logging", True)
    monkeypatch.setattr("g4f.debug.log_handler", lambda *text, file=None: lines.append(" ".join(map(str, text))))
    return lines


def with_secret() -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"},
            {"role": "user", "content": f"please remember this: {SECRET}. Thanks!"}]


def everything_shown(error: BaseException, log: list[str]) -> str:
    """The error as a user sees it (message, repr, whole traceback chain) plus the log."""
    return "\n".join([str(error), repr(error), "".join(traceback.format_exception(error)), *log])


def assert_not_quoted(secret: str, shown: str) -> None:
    assert secret not in shown
    # Not even a piece of it: no 10 characters in a row.
    assert not [secret[start:start + 10] for start in range(len(secret) - 9) if secret[start:start + 10] in shown]


# --- message text -----------------------------------------------------------

ECHOING_ERRORS = {
    "json 400": Fault(status=400, body=json.dumps({"error": {"message": f"cannot process input '{SECRET}'"}})),
    "text 500": Fault(status=500, body=f"Internal error while handling: {SECRET}", content_type="text/plain"),
    "json 429": Fault(status=429, body=json.dumps({"error": f"slow down, {SECRET}"})),
}


@pytest.mark.parametrize("case", list(ECHOING_ERRORS))
async def test_error_response_echoing_the_message_does_not_reveal_it(emulator, g4f_log, case):
    emulator.fault = ECHOING_ERRORS[case]
    with pytest.raises(ResponseStatusError) as caught:
        await ask("llama", with_secret(), base_url=emulator.base_url)
    status = ECHOING_ERRORS[case].status
    assert str(caught.value).startswith(f"HTTP {status} from {emulator.base_url}/chat: ")
    assert "[redacted]" in str(caught.value)
    assert_not_quoted(SECRET, everything_shown(caught.value, g4f_log))


async def test_error_event_in_stream_echoing_the_message_does_not_reveal_it(emulator, g4f_log):
    emulator.fault = Fault(stream_error=f"content filter hit on: {SECRET}")
    with pytest.raises(ResponseError) as caught:
        await ask("llama", with_secret(), base_url=emulator.base_url)
    assert str(caught.value).startswith(f"{emulator.base_url}/chat reported an error: content filter hit on")
    assert str(caught.value).endswith("[redacted]")
    assert_not_quoted(SECRET, everything_shown(caught.value, g4f_log))


async def test_malformed_event_quoting_the_message_is_skipped_without_logging_it(emulator, g4f_log):
    body = ('data: {"choices": [{"delta": {"content": "noted"}}]}\n\n'
            f"data: {{broken echo of {SECRET}\n\n"
            "data: [DONE]\n\n")
    emulator.fault = Fault(body=body, content_type="text/event-stream")
    assert await ask("llama", with_secret(), base_url=emulator.base_url) == ["noted"]
    assert any("skipped a malformed event" in line for line in g4f_log)
    assert_not_quoted(SECRET, "\n".join(g4f_log))


async def test_garbage_answer_quoting_the_message_does_not_reveal_it(emulator, g4f_log):
    emulator.fault = Fault(body=f"you said {SECRET}", content_type="text/plain")
    with pytest.raises(ResponseError) as caught:
        await ask("llama", with_secret(), base_url=emulator.base_url)
    assert str(caught.value).startswith(f"{emulator.base_url}/chat: answer is neither an event stream nor JSON: ")
    assert_not_quoted(SECRET, everything_shown(caught.value, g4f_log))


@pytest.mark.parametrize("raw", [
    "HTTP/1.1 abc {text}\r\n\r\n",  # a status line that is no status line
    "HTTP/1.1 200 OK\r\nx-echo {text}\r\n\r\n",  # a header line without a colon
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{text}\r\n",
])
async def test_broken_framing_echoing_the_message_does_not_reveal_it(emulator, g4f_log, raw):
    emulator.fault = Fault(raw=raw)
    with pytest.raises(ResponseError) as caught:
        await ask("llama", with_secret(), base_url=emulator.base_url, timeout=2)
    assert f"{emulator.base_url}/chat" in str(caught.value)
    assert caught.value.__cause__ is None  # aiohttp's error quotes the line: it is not chained
    assert_not_quoted(SECRET, everything_shown(caught.value, g4f_log))


async def test_error_quoting_the_base64_messages_field_does_not_reveal_it(emulator, g4f_log):
    body = json.dumps({"error": {"message": "invalid field messages: {messages}"}})
    emulator.fault = Fault(status=400, body=body)
    with pytest.raises(ResponseStatusError) as caught:
        await ask("llama", with_secret(), base_url=emulator.base_url)
    shown = everything_shown(caught.value, g4f_log)
    field = wire.encode_messages(wire.check_messages(with_secret()))
    assert_not_quoted(field, shown)
    assert str(caught.value).startswith(f"HTTP 400 from {emulator.base_url}/chat: invalid field messages: [redacted]")


async def test_redaction_leaves_the_providers_own_wording_alone(emulator):
    """A prompt that mentions the endpoint must not turn the error into '[redacted]: ...'."""
    url = f"{emulator.base_url}/chat"
    emulator.fault = Fault(status=429, body="Too many requests", content_type="text/plain")
    with pytest.raises(ResponseError) as caught:
        await ask("llama", [{"role": "user", "content": f"what is at {url} today?"}], base_url=emulator.base_url)
    assert str(caught.value) == f"HTTP 429 from {url}: Too many requests"


async def test_successful_answer_with_the_message_logs_none_of_it(emulator, g4f_log):
    items = await ask("llama", with_secret(), base_url=emulator.base_url)
    assert "".join(item for item in items if isinstance(item, str)) == f"llama heard: please remember this: {SECRET}. Thanks!"
    assert_not_quoted(SECRET, "\n".join(g4f_log))


async def test_a_413_for_100000_messages_does_not_freeze_the_loop(emulator):
    reason = "Request Entity Too Large: the request body is larger than the server is willing to process"
    emulator.fault = Fault(status=413, body=reason, content_type="text/plain")
    messages = [{"role": "user", "content": f"short message number {index}"} for index in range(100_000)]
    async with LoopTicker() as ticker:
        with pytest.raises(ResponseStatusError) as caught:
            await ask("llama", messages, base_url=emulator.base_url, timeout=30)
        await asyncio.sleep(0.05)  # the ticker must wake once after a stall to measure it
    # The reason's first words at least (a slow machine may run out of redaction time before its end).
    assert str(caught.value).startswith(f"HTTP 413 from {emulator.base_url}/chat: Request Entity")
    assert ticker.longest_work < 0.5  # seconds: redacting this error held the loop 4.5-8 s


async def test_an_upper_cased_or_url_encoded_echo_does_not_reveal_the_message(emulator, g4f_log):
    echo = f"{SECRET.upper()} / {quote_plus(SECRET)}"
    emulator.fault = Fault(status=400, body=f"rejected: {echo}", content_type="text/plain")
    with pytest.raises(ResponseStatusError) as caught:
        await ask("llama", with_secret(), base_url=emulator.base_url)
    shown = everything_shown(caught.value, g4f_log)
    for form in (SECRET, SECRET.upper(), quote_plus(SECRET)):
        assert_not_quoted(form, shown)


async def echo_authorization(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An upstream that answers 401 quoting the Authorization header it received, and its decoded value."""
    try:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        lines = [line for line in head.split("\r\n") if line.lower().startswith("authorization:")]
        token = lines[0].split()[-1] if lines else "none"
        body = f"bad {lines} ({base64.b64decode(token).decode('latin-1') if lines else ''})".encode("latin-1")
        writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
    finally:
        writer.close()


async def test_base_url_credentials_echoed_by_the_upstream_are_not_revealed(g4f_log):
    server = await asyncio.start_server(echo_authorization, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ResponseError) as caught:
            await ask("llama", with_secret(), base_url=f"http://alice:{PASSWORD}@127.0.0.1:{port}{BASE_PATH}", timeout=10)
    finally:
        server.close()
        await server.wait_closed()
    shown = everything_shown(caught.value, g4f_log)
    assert str(caught.value).startswith(f"HTTP 401 from http://***@127.0.0.1:{port}{BASE_PATH}/chat: bad ")
    token = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, token):
        assert_not_quoted(secret, shown)
    assert PASSWORD[:6] not in shown and token[:8] not in shown


# --- proxy credentials ------------------------------------------------------

@pytest.mark.parametrize("proxy", [
    f"socks5://alice:{PASSWORD}@127.0.0.1:1080",
    f"http://alice:{PASSWORD}@127.0.0.1:port",
    f"http://alice:{PASSWORD}@127.0.0.1 :3128",
    f"http://alice:{PASSWORD}@127.0.0.1:3128/\r\nx-injected: 1",
])
async def test_malformed_proxy_with_password_is_refused_without_showing_it(emulator, g4f_log, proxy):
    with pytest.raises(ValueError) as caught:
        await ask("llama", with_secret(), base_url=emulator.base_url, proxy=proxy)
    assert str(caught.value).startswith("proxy must be an http:// or https:// URL")
    assert_not_quoted(PASSWORD, everything_shown(caught.value, g4f_log))
    assert emulator.requests == []


async def test_proxy_refusing_connections_gives_error_without_password(emulator, g4f_log):
    proxy = f"http://alice:{PASSWORD}@127.0.0.1:{closed_port()}"
    with pytest.raises(ResponseError) as caught:
        await ask("llama", with_secret(), base_url=emulator.base_url, proxy=proxy, timeout=10)
    assert str(caught.value) == f"cannot reach {emulator.base_url}/chat: ClientProxyConnectionError: Connection refused"
    assert_not_quoted(PASSWORD, everything_shown(caught.value, g4f_log))


class RefusingProxy:
    """A proxy that answers every request, CONNECT too, with 407."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head.decode("latin-1"))
            body = b'{"error": "proxy authentication failed"}'
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\n"
                         b"Content-Type: application/json\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()


def proxy_credentials(head: str) -> str:
    for line in head.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "proxy-authorization":
            scheme, _, token = value.strip().partition(" ")
            assert scheme == "Basic"
            return base64.b64decode(token).decode("latin-1")
    raise AssertionError(f"no Proxy-Authorization header in {head!r}")


@pytest.fixture
async def refusing_proxy() -> Iterator[tuple[RefusingProxy, int]]:
    proxy = RefusingProxy()
    port = await proxy.start()
    try:
        yield proxy, port
    finally:
        await proxy.stop()


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_proxy_answering_407_gives_error_without_password(refusing_proxy, g4f_log, scheme):
    proxy, port = refusing_proxy
    base_url = f"{scheme}://127.0.0.1:{closed_port()}{BASE_PATH}"
    with pytest.raises(ResponseError) as caught:
        await ask("llama", with_secret(), base_url=base_url, proxy=f"http://alice:{PASSWORD}@127.0.0.1:{port}", timeout=10)
    assert "407" in str(caught.value) and f"{base_url}/chat" in str(caught.value)
    assert proxy_credentials(proxy.requests[0]) == f"alice:{PASSWORD}"  # still sent, to the proxy only
    assert_not_quoted(PASSWORD, everything_shown(caught.value, g4f_log))


# --- TLS ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server TLS context with a self-signed certificate for 127.0.0.1."""
    folder = tmp_path_factory.mktemp("tls")
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the test certificate"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(folder / "key.pem"), "-out", str(folder / "cert.pem"), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


async def test_https_upstream_with_self_signed_certificate_is_refused(self_signed):
    emulator = Emulator()
    runner = web.AppRunner(emulator.app(), handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self_signed)
        await site.start()
        base_url = f"https://127.0.0.1:{runner.addresses[0][1]}{BASE_PATH}"
        with pytest.raises(ResponseError) as caught:
            await ask("llama", with_secret(), base_url=base_url, timeout=10)
    finally:
        await runner.cleanup()
    message = str(caught.value)
    assert message.startswith(f"cannot reach {base_url}/chat: ClientConnectorCertificateError: ")
    assert "certificate verify failed" in message
    assert emulator.requests == []  # nothing was sent over the unverified connection


# --- CR/LF never reaches a header ----------------------------------------------

@pytest.mark.parametrize("headers, name", [
    ({"x-trace": "1\r\nx-injected: yes"}, "x-trace"),
    ({"x-trace\r\nx-injected": "yes"}, "x-trace\r\nx-injected"),
    ({"x-trace": "1\nx-injected: yes"}, "x-trace"),
])
async def test_crlf_in_headers_argument_is_refused(emulator, headers, name):
    with pytest.raises(ValueError) as caught:
        await ask("llama", with_secret(), base_url=emulator.base_url, headers=headers)
    assert str(caught.value) == f"headers: {name.strip()!r} contains CR, LF or another control character"
    assert emulator.requests == []


async def test_crlf_in_base_url_argument_is_refused(emulator):
    with pytest.raises(ValueError) as caught:
        await ask("llama", with_secret(), base_url=emulator.base_url + "\r\nx-injected: yes")
    assert str(caught.value).startswith("base_url must be an http:// or https:// URL without spaces or control characters")
    assert emulator.requests == []


async def test_crlf_in_base_url_env_is_refused(emulator, monkeypatch):
    monkeypatch.setenv("G4F_AUTONOMOUS_BASE_URL", emulator.base_url + "\nx-injected:yes")
    with pytest.raises(ValueError) as caught:
        await ask("llama", with_secret())
    assert str(caught.value).startswith(
        "G4F_AUTONOMOUS_BASE_URL must be an http:// or https:// URL without spaces or control characters")
    assert emulator.requests == []


async def test_crlf_in_proxy_is_refused(emulator):
    with pytest.raises(ValueError) as caught:
        await ask("llama", with_secret(), base_url=emulator.base_url, proxy="http://127.0.0.1:3128\r\nx-injected: yes")
    assert str(caught.value) == "proxy must be an http:// or https:// URL without spaces or control characters"
    assert emulator.requests == []


# --- the emulator listens on loopback only -------------------------------------

def listening_addresses(port: int) -> list[str]:
    """Local addresses of sockets listening on ``port``, from /proc/net/tcp and tcp6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.append(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    words = [bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, 32, 8)]
                    found.append(socket.inet_ntop(socket.AF_INET6, b"".join(words)))
    return found


async def test_emulator_listens_on_127_0_0_1_only_by_default(emulator):
    port = int(emulator.base_url.split(":")[2].split("/")[0])
    assert emulator.base_url == f"http://127.0.0.1:{port}{BASE_PATH}"
    assert listening_addresses(port) == ["127.0.0.1"]


def test_serve_command_listens_on_127_0_0_1_only_by_default(tmp_path):
    env = offline_env(tmp_path, PYTHONPATH=str(REPO))
    server = subprocess.Popen([sys.executable, "-m", "g4f_autonomous", "serve"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base_url = server.stdout.readline().strip()
        port = int(base_url.split(":")[2].split("/")[0])
        assert base_url == f"http://127.0.0.1:{port}{BASE_PATH}"
        assert listening_addresses(port) == ["127.0.0.1"]
    finally:
        server.terminate()
        server.communicate(timeout=30)


@pytest.mark.parametrize("proxy", ["alice:s3cret@proxy.example:8080", "alice@proxy.example:8080"])
def test_proxy_without_scheme_is_refused_without_echoing_its_user(proxy):
    # Python 3.10's urlsplit reads "alice" as the scheme here; the message must not.
    with pytest.raises(ValueError) as raised:
        wire.check_proxy(proxy)
    assert str(raised.value) == "proxy must be an http:// or https:// URL; it has no scheme"
