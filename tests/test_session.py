"""The pooled sessions: loops closed by hand, forked children, and the retry of
a request that met a server closing its idle kept-alive connection."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import os
import signal
import threading
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from helpers import ClockAheadLoop, ask, text_of
from polling import until
from raw_server import BODY, HEADERS, OK_ANSWER, content_length, post_and_read, read_request

from g4f_autonomous import session as pool
from g4f_autonomous import wire
from g4f_autonomous.emulator import Emulator
from g4f_autonomous.inflate import ACCEPT_ENCODING

MESSAGES = [{"role": "user", "content": "hi"}]

linux_only = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts sockets through /proc")


def port_of(base_url: str) -> int:
    return urlsplit(base_url).port


def local_ports_to(port: int) -> list[int]:
    """The local ports of this process's open TCP sockets whose peer is ``port``: client ends only."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def sockets_to(port: int) -> int:
    return len(local_ports_to(port))


# --- loops closed by hand ---------------------------------------------------

@linux_only
def test_loops_closed_by_hand_leave_no_socket_open(threaded_emulator):
    port = port_of(threaded_emulator.base_url)
    before = sockets_to(port)  # the emulator is shared with other tests
    for _ in range(20):
        loop = asyncio.new_event_loop()
        items = loop.run_until_complete(ask("llama", MESSAGES, base_url=threaded_emulator.base_url))
        assert text_of(items) == "llama heard: hi"
        loop.close()  # no shutdown_asyncgens(): the loop's close must close the session
    gc.collect()
    assert sockets_to(port) == before
    assert [loop for loop in list(pool._pool) if loop.is_closed()] == []


@linux_only
async def test_loop_closed_by_hand_inside_another_running_loop_closes_its_session_without_holding_this_one(emulator):
    url = wire.endpoint_url(emulator.base_url, "llama")
    other = asyncio.new_event_loop()
    assert b"[DONE]" in await asyncio.to_thread(other.run_until_complete, post_and_read(url))
    session = pool._pool[other].session
    assert sockets_to(port_of(emulator.base_url)) == 1
    # The other loop's close lasts until the gate opens: the first callback it runs waits for it.
    gate = threading.Event()
    other.call_soon(gate.wait, 10)
    other.close()  # called while this test's loop runs in this thread
    other.close()  # again, while it is being closed: nothing more to do
    assert not other.is_closed()  # close() returned without waiting for the other loop
    gate.set()
    assert await until(other.is_closed)
    assert session.closed
    assert other not in pool._pool
    assert sockets_to(port_of(emulator.base_url)) == 0
    gc.collect()  # nothing left to warn about (ResourceWarning is an error here)


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
async def test_a_loop_with_signal_handlers_closed_inside_another_loop_gives_its_signals_back(emulator):
    url = wire.endpoint_url(emulator.base_url, "llama")
    other = asyncio.new_event_loop()
    other.add_signal_handler(signal.SIGUSR1, lambda: None)  # this thread is the main thread
    assert b"[DONE]" in await asyncio.to_thread(other.run_until_complete, post_and_read(url))
    other.close()
    assert await until(other.is_closed)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_closing_a_loop_that_runs_in_another_thread_fails_and_keeps_its_session(threaded_emulator):
    url = wire.endpoint_url(threaded_emulator.base_url, "llama")
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever)
    runner.start()
    try:
        assert b"[DONE]" in asyncio.run_coroutine_threadsafe(post_and_read(url), loop).result(10)
        session = asyncio.run_coroutine_threadsafe(pool.pooled_session(), loop).result(10)
        with pytest.raises(RuntimeError, match="running"):
            loop.close()
        assert asyncio.run_coroutine_threadsafe(pool.pooled_session(), loop).result(10) is session
        assert not session.closed
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()
    assert session.closed


@linux_only
def test_asyncio_run_still_closes_the_session_at_shutdown(threaded_emulator):
    async def call() -> aiohttp.ClientSession:
        assert text_of(await ask("llama", MESSAGES, base_url=threaded_emulator.base_url)) == "llama heard: hi"
        return await pool.pooled_session()

    before = sockets_to(port_of(threaded_emulator.base_url))
    sessions = [asyncio.run(call()) for _ in range(3)]
    assert all(session.closed for session in sessions)
    assert sockets_to(port_of(threaded_emulator.base_url)) == before


# --- fork -------------------------------------------------------------------

@linux_only
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")  # 3.12+: fork with threads running
def test_forked_child_opens_its_own_connection_and_leaves_the_parents_alone(threaded_emulator):
    url = wire.endpoint_url(threaded_emulator.base_url, "llama")
    server_port = port_of(threaded_emulator.base_url)
    others = set(local_ports_to(server_port))  # the emulator is shared with other tests
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(post_and_read(url))
        parent_ports = set(local_ports_to(server_port)) - others
        assert len(parent_ports) == 1  # one kept-alive connection
        parent_session = loop.run_until_complete(pool.pooled_session())
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never return into pytest
            status = 1
            try:
                os.close(read_end)
                result = {"still_pooled": loop in pool._pool}
                result["same_session"] = loop.run_until_complete(pool.pooled_session()) is parent_session
                result["answered"] = b"[DONE]" in loop.run_until_complete(post_and_read(url))
                result["ports"] = local_ports_to(server_port)  # the inherited socket, and its own if it made one
                os.write(write_end, json.dumps(result).encode())
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reader:
            report = reader.read()
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        child = json.loads(report)
        assert child["still_pooled"] is False
        assert child["same_session"] is False
        assert child["answered"] is True
        child_ports = set(child["ports"]) - others
        assert len(child_ports) == 2 and parent_ports < child_ports
        # The parent's kept-alive connection is untouched and still in use.
        assert b"[DONE]" in loop.run_until_complete(post_and_read(url))
        assert set(local_ports_to(server_port)) - others == parent_ports
    finally:
        loop.close()


# --- the keep-alive race, against the emulator --------------------------------

async def test_sequential_posts_racing_the_servers_idle_close_all_succeed():
    # The race comes every other request at 0.005 s as at 0.05 s: it is the loop's order, not time
    # (10 resends in 20 requests, counted once by hand).
    keepalive = 0.01
    server = Emulator(keepalive_timeout=keepalive)
    url = wire.endpoint_url(await server.start(), "llama")
    try:
        answers = []
        for _ in range(20):
            # Waiting the server's keep-alive timeout sends about every other
            # request just as the server closes the idle connection.
            await asyncio.sleep(keepalive)
            answers.append(await post_and_read(url))
        assert all(answer.endswith(b"data: [DONE]\n\n") for answer in answers)
        assert len(server.requests) == 20
    finally:
        await pool.close_pooled_session()
        await server.stop()


# --- the retry rules, against a server written by hand ------------------------

GZIPPED_OK = gzip.compress(b"ok")
# Answers that keep the connection, by action name.
ANSWERS = {
    "answer": OK_ANSWER,
    "redirect": b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
    "gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (
        len(GZIPPED_OK), GZIPPED_OK),
    "cookie": b"HTTP/1.1 200 OK\r\nSet-Cookie: user=alice; Path=/\r\nContent-Length: 2\r\n\r\nok",
}


class ScriptedServer:
    """HTTP/1.1 by hand, one action per request from ``script`` (then "answer"):

    an ``ANSWERS`` name: send it and keep the connection; "close": read the
    request and close without a byte; "partial": send a status line, then close;
    "body": send the headers and 2 of 10 body bytes, then close.
    """

    def __init__(self) -> None:
        self.script: deque[str] = deque()
        self.requests: list[tuple[int, bytes]] = []  # (connection number, body)
        self.heads: list[bytes] = []  # each request's line and headers, as received
        self.connections = 0
        self.url = ""
        self._server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/chat"

    async def stop(self) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self._writers.append(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return  # the client closed its idle connection
                self.heads.append(head)
                self.requests.append((number, await reader.readexactly(content_length(head))))
                action = self.script.popleft() if self.script else "answer"
                if action in ANSWERS:
                    writer.write(ANSWERS[action])
                    await writer.drain()
                    continue
                if action == "partial":
                    writer.write(b"HTTP/1.1 200 OK\r\n")
                elif action == "body":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nok")
                await writer.drain()
                return
        finally:
            writer.close()


@pytest.fixture
async def scripted():
    server = ScriptedServer()
    await server.start()
    try:
        yield server
    finally:
        await pool.close_pooled_session()
        await server.stop()


async def test_reused_connection_closed_before_an_answer_is_retried_on_a_new_one_with_the_whole_body(scripted):
    scripted.script.extend(["answer", "close"])
    large = b"x" * (pool.LARGE_BODY + 12345)  # sent as a stream: the retry must send it all again
    assert await post_and_read(scripted.url, large) == b"ok"
    assert await post_and_read(scripted.url, large) == b"ok"
    assert [number for number, _ in scripted.requests] == [1, 1, 2]
    assert all(body == large for _, body in scripted.requests)


async def test_a_new_connection_closed_before_an_answer_is_not_retried(scripted):
    scripted.script.append("close")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post_and_read(scripted.url)
    assert scripted.connections == 1
    assert len(scripted.requests) == 1


async def test_a_reused_connection_closed_after_part_of_the_status_line_is_not_retried(scripted):
    scripted.script.extend(["answer", "partial"])
    await post_and_read(scripted.url)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post_and_read(scripted.url)
    assert [number for number, _ in scripted.requests] == [1, 1]
    assert scripted.connections == 1


async def test_a_reused_connection_closed_during_the_body_is_not_retried(scripted):
    scripted.script.extend(["answer", "body"])
    await post_and_read(scripted.url)
    with pytest.raises(aiohttp.ClientPayloadError):
        await post_and_read(scripted.url)
    assert [number for number, _ in scripted.requests] == [1, 1]
    assert scripted.connections == 1


async def test_the_retry_happens_once_only(scripted):
    scripted.script.extend(["answer", "close", "close"])
    await post_and_read(scripted.url)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post_and_read(scripted.url)
    assert [number for number, _ in scripted.requests] == [1, 1, 2]
    assert scripted.connections == 2


async def test_a_retried_answer_leaves_the_pool_working_and_each_retry_has_a_new_connection(scripted):
    scripted.script.extend(["answer", "close", "answer", "answer", "close"])
    for _ in range(4):
        assert await post_and_read(scripted.url) == b"ok"
    # A retry's connection is not kept (it was opened for one request), so the
    # pool opened one more and kept using it, and the next retry a new one again.
    assert [number for number, _ in scripted.requests] == [1, 1, 2, 3, 3, 4]


# --- what the pooled session sends and hands back -----------------------------

async def test_requests_carry_the_callers_headers_and_ask_only_for_encodings_the_reader_bounds(scripted):
    await post_and_read(scripted.url)
    [head] = scripted.heads
    assert b"\r\nuser-agent: " + wire.BROWSER_HEADERS["user-agent"].encode() + b"\r\n" in head
    assert b"\r\naccept-encoding: " + ACCEPT_ENCODING.encode() + b"\r\n" in head  # spelled as wire's headers are


async def test_a_redirect_is_handed_back_not_followed(scripted):
    scripted.script.append("redirect")
    response = await pool.post(scripted.url, body=BODY, headers=HEADERS)
    response.release()
    assert (response.status, response.headers["Location"]) == (307, "/elsewhere")
    assert len(scripted.requests) == 1


async def test_a_compressed_answer_is_handed_over_as_sent(scripted):
    # answer.Body decodes in bounded slices: aiohttp must not inflate it first.
    scripted.script.append("gzip")
    assert await post_and_read(scripted.url) == GZIPPED_OK


async def test_a_cookie_one_answer_sets_is_not_sent_with_the_next_request(scripted):
    # One pooled session serves every user of a g4f server. By name: aiohttp never keeps a cookie of an IP address.
    url = scripted.url.replace("127.0.0.1", "localhost")
    scripted.script.append("cookie")
    await post_and_read(url)
    await post_and_read(url)
    assert [b"cookie" in head.lower() for head in scripted.heads] == [False, False]


async def test_close_pooled_session_closes_it_now_and_the_next_call_gets_a_new_one():
    session = await pool.pooled_session()
    await pool.close_pooled_session()
    assert session.closed
    assert await pool.pooled_session() is not session
    await pool.close_pooled_session()


async def test_concurrent_requests_are_not_capped():
    # aiohttp caps a session at 100 connections unless told otherwise: the 101st
    # request would wait for one of the first 100, which here wait for it.
    count = 101
    arrived = 0
    everyone = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal arrived
        await read_request(reader)
        arrived += 1
        if arrived == count:
            everyone.set()
        await everyone.wait()
        writer.write(OK_ANSWER)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/chat"
    try:
        assert await asyncio.gather(*(post_and_read(url) for _ in range(count))) == [b"ok"] * count
    finally:
        await pool.close_pooled_session()
        server.close()
        await server.wait_closed()


def test_the_pooled_session_puts_no_time_limit_of_its_own_on_a_request():
    # aiohttp's default ends a request after 5 minutes; a call is bounded by the provider's deadline instead.
    async def exchange() -> bytes:
        arrived, answer = asyncio.Event(), asyncio.Event()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            arrived.set()
            await answer.wait()
            writer.write(OK_ANSWER)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/chat"
        try:
            request = asyncio.ensure_future(pool.post(url, body=BODY, headers=HEADERS))
            await asyncio.wait_for(arrived.wait(), 10)
            loop.ahead += 3600  # an hour later
            for _ in range(3):
                await asyncio.sleep(0)
            answer.set()
            response = await asyncio.wait_for(request, 10)
            return await response.read()
        finally:
            await pool.close_pooled_session()
            server.close()
            await server.wait_closed()

    loop = ClockAheadLoop()
    try:
        assert loop.run_until_complete(exchange()) == b"ok"
    finally:
        loop.close()


class RecordingProxy:
    """Records the first request it gets on each connection, answers ``reply``, and closes."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.heads: list[bytes] = []
        self.url = ""
        self._server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> RecordingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await pool.close_pooled_session()
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(self.reply)
        await writer.drain()
        writer.close()


async def test_a_proxy_carries_the_request():
    async with RecordingProxy(OK_ANSWER.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")) as proxy:
        response = await pool.post("http://127.0.0.1:9/chat", body=BODY, headers=HEADERS, proxy=proxy.url)
        assert await response.read() == b"ok"
        response.release()
    assert [head.split(b"\r\n")[0] for head in proxy.heads] == [b"POST http://127.0.0.1:9/chat HTTP/1.1"]


async def test_proxy_headers_go_on_the_connect_of_an_https_request():
    refusal = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
    async with RecordingProxy(refusal) as proxy:
        with pytest.raises(aiohttp.ClientHttpProxyError):
            await pool.post("https://127.0.0.1:9/chat", body=BODY, headers=HEADERS, proxy=proxy.url,
                            proxy_headers={"Proxy-Authorization": "Basic dTpw"})
    [head] = proxy.heads
    assert head.startswith(b"CONNECT 127.0.0.1:9 HTTP/1.1\r\n")
    assert b"\r\nProxy-Authorization: Basic dTpw\r\n" in head
