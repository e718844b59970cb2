"""At most once: a request the upstream may have taken is never sent again,
while a request that met the server's idle close of a pooled connection is.

The upstream is HTTP/1.1 written by hand on asyncio.start_server, so that what
it receives, what it sends and how it closes (FIN, or a reset through
SO_LINGER 0) are exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import subprocess
import sys
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from raw_server import BODY, HEADERS, OK_ANSWER, content_length, post_and_read

from g4f_autonomous import session as pool

# How long an upstream keeps a request it took before it dies: past the resend window (0.25 s), and
# exactly so, since the client's clock starts before the request is written and the server's after.
HOLD = 0.35


def reset_on_close(writer: asyncio.StreamWriter) -> None:
    """Make the socket's close a reset (RST) instead of a FIN."""
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class Upstream:
    """One action per request, from ``script`` (then "answer"):

    "answer": answer "ok", keep the connection; "fin" / "rst": take the request,
    hold it ``HOLD`` seconds, then close with a FIN / a reset; "partial-fin" /
    "partial-rst": take the request, send ``HTTP/1.1 2``, then FIN / reset.
    ``close_idle`` and ``close_on_arrival`` close an idle kept-alive connection
    as a server's keep-alive timer does.
    """

    def __init__(self) -> None:
        self.script: deque[str] = deque()
        self.taken: list[int] = []  # connection number of each request read as one to serve
        self.after_close: list[int] = []  # connections on which a request (or part) came as or after the server closed
        self.url = ""
        self._server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._closing: set[int] = set()
        self._close_on_arrival: dict[int, bool] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/chat"

    async def stop(self) -> None:
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    @property
    def connections(self) -> int:
        return len(self._writers)

    def close_idle(self, number: int, *, reset: bool) -> None:
        """Close idle connection ``number`` now, without yielding to the loop.

        FIN: the write side is shut at once (the FIN is on the wire when this
        returns). Reset: the socket is aborted; the loop closes it in its next
        step, after anything the caller sends before awaiting has arrived.
        """
        writer = self._writers[number - 1]
        self._closing.add(number)
        if reset:
            reset_on_close(writer)
            writer.transport.abort()
        else:
            writer.get_extra_info("socket").shutdown(socket.SHUT_WR)

    def close_on_arrival(self, number: int, *, reset: bool) -> None:
        """Close idle connection ``number`` as the next request arrives: the close crosses it on the wire."""
        self._close_on_arrival[number] = reset

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        number = len(self._writers)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                    if number in self._close_on_arrival:
                        self.close_idle(number, reset=self._close_on_arrival.pop(number))
                        self.after_close.append(number)
                        return  # a FIN, then (the rest of the request unread) a reset
                    await reader.readexactly(content_length(head))
                except asyncio.IncompleteReadError as error:
                    if error.partial and number in self._closing:
                        self.after_close.append(number)
                    return  # the client closed
                if number in self._closing:
                    self.after_close.append(number)
                    return
                self.taken.append(number)
                action = self.script.popleft() if self.script else "answer"
                if action == "answer":
                    writer.write(OK_ANSWER)
                    await writer.drain()
                    continue
                if action.startswith("partial"):
                    writer.write(b"HTTP/1.1 2")
                    await writer.drain()
                    await asyncio.sleep(0.05)  # the bytes reach the client before the close does
                else:
                    await asyncio.sleep(HOLD)  # the upstream works on it, or seems to
                if action.endswith("rst"):
                    reset_on_close(writer)
                    writer.transport.abort()
                return
        except ConnectionError:
            return
        finally:
            writer.close()


@pytest.fixture
async def upstream():
    async with upstreams(1) as [server]:
        yield server


@contextlib.asynccontextmanager
async def upstreams(count: int) -> AsyncIterator[list[Upstream]]:
    servers = [Upstream() for _ in range(count)]
    try:
        for server in servers:
            await server.start()
        yield servers
    finally:
        await pool.close_pooled_session()
        for server in servers:
            await server.stop()


# --- the rule alone ---------------------------------------------------------------

@pytest.mark.parametrize(
    ("reused", "answered", "closed_after", "expected"),
    [
        (True, False, 0.001, True),  # the idle-close race
        (True, False, -0.001, True),  # the close was there before the request went out
        (True, False, pool.RESEND_WINDOW, True),
        (True, False, pool.RESEND_WINDOW + 0.001, False),  # held: it may be working on it
        (True, True, 0.001, False),  # a byte of an answer: it took the request
        (True, False, None, False),  # the server never closed (a timeout, our own close)
        (False, False, 0.001, False),  # a new connection: nothing idle to close
    ],
)
def test_the_resend_rule(reused, answered, closed_after, expected):
    assert pool.may_resend(reused=reused, answered=answered, closed_after=closed_after) is expected


# --- an upstream that took the request, then died ----------------------------------

async def took_it_then_died(upstream: Upstream, death: str, body: bytes = BODY) -> None:
    upstream.script.extend(["answer", death])
    assert await post_and_read(upstream.url, body) == b"ok"  # now the connection is pooled
    # A reset is reported as one (an OSError), a FIN as the server's disconnect.
    expected = aiohttp.ClientOSError if death.endswith("rst") else aiohttp.ServerDisconnectedError
    with pytest.raises(expected):
        await post_and_read(upstream.url, body)
    assert upstream.taken == [1, 1]  # the second request reached the upstream once
    assert upstream.connections == 1
    assert await post_and_read(upstream.url) == b"ok"  # and the pool still works


async def test_a_request_the_upstream_took_is_not_sent_again():
    # Three upstreams at once, each on its own pooled connection, so the holds overlap:
    # a FIN, a reset, and a FIN after a large request, sent in pieces (over LARGE_BODY),
    # for which the window counts from before the first piece.
    large = b"x" * (pool.LARGE_BODY + 12345)
    async with upstreams(3) as [fin, rst, after_large]:
        await asyncio.gather(took_it_then_died(fin, "fin"), took_it_then_died(rst, "rst"),
                             took_it_then_died(after_large, "fin", large))


@pytest.mark.parametrize("death", ["partial-fin", "partial-rst"])
async def test_a_request_the_upstream_began_to_answer_is_not_sent_again(upstream, death):
    await took_it_then_died(upstream, death)


# --- the idle-close race ---------------------------------------------------------------

RACES = pytest.mark.parametrize(
    ("when", "reset"),
    [("before", False), ("before", True), ("crossing", False), ("crossing", True)],
    ids=["fin-before", "rst-before", "fin-crossing", "rst-crossing"],
)


def close_idle_connection(upstream: Upstream, when: str, reset: bool) -> None:
    """The server's keep-alive timer fires on connection 1: just before the
    next request goes out (the client has not yet seen the close when it
    sends), or as that request arrives (the close crosses it on the wire)."""
    if when == "before":
        upstream.close_idle(1, reset=reset)
    else:
        upstream.close_on_arrival(1, reset=reset)


@RACES
async def test_a_request_that_met_the_idle_close_is_answered_through_one_resend(upstream, when, reset):
    assert await post_and_read(upstream.url) == b"ok"
    close_idle_connection(upstream, when, reset)
    assert await post_and_read(upstream.url) == b"ok"  # no await in between: the race
    assert upstream.taken == [1, 2]  # served once, on a new connection
    assert upstream.connections == 2
    if when == "crossing":
        assert upstream.after_close == [1]  # it went out on the pooled connection


@RACES
async def test_the_race_is_real_a_client_that_never_resends_fails_it(upstream, when, reset):
    # The same steps with a plain aiohttp session: the request does go out on
    # the closed connection, so the answer above came from the resend.
    async with aiohttp.ClientSession() as session:
        async with session.post(upstream.url, data=BODY, headers=HEADERS) as response:
            assert await response.read() == b"ok"
        close_idle_connection(upstream, when, reset)
        with pytest.raises(aiohttp.ClientError):
            async with session.post(upstream.url, data=BODY, headers=HEADERS) as response:
                await response.read()
    assert upstream.taken == [1]


# --- with aiohttp's pure-Python parser ------------------------------------------------

@pytest.mark.skipif(bool(os.environ.get("AIOHTTP_NO_EXTENSIONS")), reason="this is the inner run")
def test_the_same_holds_with_aiohttps_pure_python_parser():
    # The parser is chosen when aiohttp is imported: a run of its own.
    tests = Path(__file__).parent
    result = subprocess.run(
        # Neither conftest (g4f) nor hypothesis: this module needs neither, and their imports were most of the run.
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "--noconftest",
         str(Path(__file__)), "-k", "not the_resend_rule"],
        cwd=tests.parent, env={**os.environ, "AIOHTTP_NO_EXTENSIONS": "1"},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "passed" in result.stdout


def test_each_run_uses_the_parser_it_means_to():
    # The outer run tests aiohttp's C parser, the inner run its pure-Python one.
    from aiohttp import http_parser

    pure = http_parser.HttpResponseParser is http_parser.HttpResponseParserPy
    assert pure == bool(os.environ.get("AIOHTTP_NO_EXTENSIONS"))
