"""A server on 127.0.0.1 writing exact bytes, for tests where framing and pauses matter, and a POST to one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from g4f_autonomous import session as pool
from g4f_autonomous import wire

OK_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
# A request as the provider sends it (the emulator answers it; a raw server reads it by its length).
BODY = wire.build_body("llama", wire.encode_messages([{"role": "user", "content": "hi"}]), "thread-1", True)
HEADERS = wire.build_headers()

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[str]:
    """Serve each connection with ``answer`` (given the request not yet read); yields the base URL."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/api/v1/ai"
    finally:
        server.close()
        await server.wait_closed()


def content_length(head: bytes) -> int:
    """The Content-Length of a request head (0 without one)."""
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head and body (by its Content-Length): the head is returned."""
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(content_length(head))
    return head


async def post_and_read(url: str, body: bytes = BODY) -> bytes:
    """One POST through ``pool.post``, its answer read whole, within 10 s (a hang fails the test)."""
    async def exchange() -> bytes:
        response = await pool.post(url, body=body, headers=HEADERS)
        try:
            return await response.read()
        finally:
            response.release()

    return await asyncio.wait_for(exchange(), 10)
