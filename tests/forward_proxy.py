"""A minimal real HTTP forward proxy on 127.0.0.1, for tests that check ``proxy`` is honoured."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class ForwardProxy:
    """A minimal HTTP forward proxy: absolute-URI requests to http:// targets, one per connection."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.url = ""
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *header_lines = [line for line in head.split("\r\n") if line]
            method, target, version = request_line.split(" ")
            self.targets.append(target)
            target_url = urlsplit(target)
            if target_url.scheme != "http" or target_url.hostname != "127.0.0.1":
                # Tests never leave loopback, even by mistake.
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            length, forwarded = 0, []
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
                # Hop-by-hop headers stay here; one exchange per connection keeps it simple.
                if name.strip().lower() not in ("connection", "proxy-connection", "keep-alive"):
                    forwarded.append(line)
            body = await reader.readexactly(length)
            up_reader, up_writer = await asyncio.open_connection(target_url.hostname, target_url.port)
            path = target_url.path + (f"?{target_url.query}" if target_url.query else "")
            up_writer.write("\r\n".join([f"{method} {path} {version}", *forwarded, "Connection: close", "", ""]).encode("latin-1") + body)
            await up_writer.drain()
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
            up_writer.close()
            await up_writer.wait_closed()
        finally:
            writer.close()
            await writer.wait_closed()
