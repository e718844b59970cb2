"""A local emulator of the Autonomous AI upstream, for tests, the demo and benchmarks.

A real ``aiohttp.web`` server on loopback that speaks the protocol the
provider speaks (see ``wire.py``), strict about requests like a real server,
with deterministic answers and fault injection.

Answers are derived from the request, so a test can know the exact text:
``answer_text(agent, messages)`` is ``"<agent> heard: <last user text>"``,
plus ``" [N image(s)]"`` when the last user message carries images. It is
streamed one word (with its trailing space) per delta.

Faults are a :class:`Fault`, chosen per server (``emulator.fault``), for the
next requests (``emulator.next_faults``) or per request with the header
``x-emulator-fault`` holding the Fault's fields as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .wire import ENDPOINTS, read_body

BASE_PATH = "/api/v1/ai"
ENDLESS_BODY_LIMIT = 2**34  # an "endless" body still ends somewhere: 16 GiB
HOLD_LIMIT = 60.0  # seconds a held connection waits for its client to hang up
FAULT_HEADER = "x-emulator-fault"

CLOUDFLARE_PAGE = (
    "<!DOCTYPE html><html lang=\"en-US\"><head><title>Just a moment...</title></head>"
    "<body><div id=\"cf-please-wait\">Checking your browser before accessing the site.</div>"
    "<script src=\"https://challenges.cloudflare.com/turnstile/v0/api.js\"></script></body></html>"
)
PLAIN_HTML_PAGE = "<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Bad gateway</h1></body></html>"


@dataclass
class Fault:
    """What to do wrong (or how to answer) for one request. The default answers well."""

    status: int = 200  # a non-200 status answers with ``body`` (or a JSON error)
    body: str | None = None  # body answered with ``status`` (200 too); "{text}" and "{messages}" are echoed
    content_type: str = "application/json"  # of ``body``
    cloudflare: bool = False  # answer a Cloudflare challenge page with ``status`` (403 or 200)
    garbage: bool = False  # 200 with a body that is neither an event stream nor JSON
    first_byte_delay: float = 0.0  # seconds before the response headers
    stall_after: int | None = None  # deltas sent before stalling ...
    stall_seconds: float = 0.0  # ... for this long
    drop_after: int | None = None  # deltas sent before the connection is cut
    malformed_every: int = 0  # a non-JSON data line after every N-th delta
    huge_event_bytes: int = 0  # one extra delta of this many characters first
    chunk_size: int = 0  # write the body in pieces of this many bytes (0: whole events)
    per_event: bool = False  # with ``deltas``: one write (one HTTP chunk) per event, as real servers send
    deltas: int | None = None  # answer with this many "tok " deltas instead of the echo
    stream_error: str | None = None  # after the first delta, send data: {"error": {...}}
    no_done: bool = False  # end cleanly without finish reason, usage and [DONE]
    legacy_finish: bool = False  # finish_reason at the top level, as older servers did
    # Hostile upstreams:
    events: list[str] | None = None  # answer with exactly these ``data:`` payloads (and nothing else)
    location: str | None = None  # answer ``status`` (a 3xx) with this Location header
    endless_body: bool = False  # answer ``status`` with a body that never ends
    gzip_bomb_mib: int = 0  # answer ``status`` with a gzip body that inflates to this many MiB of zeros
    drip_seconds: float = 0.0  # send the answer one byte at a time, this many seconds apart
    broken_chunk: bool = False  # after the first event, a chunk whose size line is not hexadecimal
    set_cookie: str | None = None  # a Set-Cookie header on the answer, as a tracking upstream sends
    raw: str | bytes | None = None  # written on the socket instead of an HTTP answer; a str echoes as ``body`` does
    # Crafted answers (any of these set): a stream (or ``body``) built from the parts below.
    encoding: str = ""  # "gzip", "deflate" or "br": the answer sent with this content-encoding
    filler_events: int = 0  # this many events of ``filler`` first (text-less ones by default)
    filler: str = "{}"  # the data of each filler event ("" sends an empty data line)
    keepalive_seconds: float = 0.0  # with filler_events: the pause before each filler event
    error_event: str | None = None  # after the first delta, "event: error" with {"message": this}, echoed as ``body``
    choice_error: str | None = None  # after the first delta, choices[0].error {"message": this}, echoed too
    wide_json_bytes: int = 0  # answer {"x":[{},{},...]} of about this size: a whole JSON body ...
    wide_json_event: bool = False  # ... or one event of it


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    messages: list[dict[str, Any]]


@dataclass
class Emulator:
    """The upstream. ``await start()`` binds 127.0.0.1 on a free port unless told otherwise."""

    fault: Fault = field(default_factory=Fault)
    next_faults: deque = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    disconnects: int = 0  # streams whose client went away before the end
    open_streams: int = 0
    base_url: str = ""
    # Seconds an idle kept-alive connection stays open; a small value lets a
    # test hit the race where the server closes it as the next request starts.
    keepalive_timeout: float = 75.0
    _runner: web.AppRunner | None = None
    _event_cache: dict[int, bytes] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for path in sorted(set(ENDPOINTS.values())):
            app.router.add_post(BASE_PATH + path, self._chat)
        app.router.add_get(BASE_PATH, self._health)
        app.router.add_get(BASE_PATH + "/", self._health)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, keepalive_timeout=self.keepalive_timeout
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_port = self._runner.addresses[0][1]
        shown_host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown_host}:{bound_port}{BASE_PATH}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- handlers -------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"service": "autonomous-ai-emulator", "models": list(ENDPOINTS)})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        fault = self._fault_for(request)
        if isinstance(fault, web.Response):
            return fault
        try:
            body, messages = parse_request(request.path[len(BASE_PATH):], await request.read())
        except BadRequest as error:
            return _json_error(400, str(error))
        self.requests.append(RecordedRequest(request.path, dict(request.headers), body, messages))

        if fault.first_byte_delay:
            try:
                await _sleep_unless_gone(request, fault.first_byte_delay)
            except ConnectionResetError:
                self.disconnects += 1
                return web.Response(status=499)  # nobody reads it: the client has gone
        deltas = self._deltas(body["aiAgent"], messages, fault)
        hostile = await self._hostile(request, fault, body, messages, deltas)
        if hostile is not None:
            return hostile
        if fault.cloudflare:
            return web.Response(status=fault.status, text=CLOUDFLARE_PAGE, content_type="text/html")
        if fault.body is not None:  # any status, 200 too: lets a test script a whole answer
            text = _fill(fault.body, body, messages)
            return web.Response(status=fault.status, text=text, content_type=fault.content_type)
        if fault.status != 200:
            return _json_error(fault.status, f"emulated failure {fault.status}")
        if fault.garbage:
            return web.Response(text="this is not an event stream\nnor JSON\n", content_type="text/plain")

        if not body["stream"]:
            return web.json_response(_whole_answer("".join(deltas), messages, len(deltas)))
        return await self._stream(request, fault, deltas, messages)

    async def _stream(
        self, request: web.Request, fault: Fault, deltas: list[str], messages: list
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        if fault.set_cookie:
            response.headers["set-cookie"] = fault.set_cookie
        await response.prepare(request)
        async with self._streaming():
            if fault.deltas is not None and not _needs_per_delta_control(fault):
                size = len(_event("tok ")) if fault.per_event else fault.chunk_size
                await self._write(response, self._bulk_events(fault.deltas), size)
                await self._write(response, _closing_events(fault, messages, fault.deltas), fault.chunk_size)
            else:
                for index, delta in enumerate(deltas):
                    if fault.drop_after is not None and index == fault.drop_after:
                        _socket(request).close()  # sent data is flushed, then the socket closes
                        return response
                    if fault.stall_after is not None and index == fault.stall_after:
                        await _sleep_unless_gone(request, fault.stall_seconds)
                    await self._write(response, _event(delta), fault.chunk_size)
                    if fault.stream_error and index == 0:
                        error = {"error": {"message": fault.stream_error, "type": "server_error"}}
                        await self._write(response, b"data: " + json.dumps(error).encode() + b"\n\n", 0)
                        return response
                    if fault.malformed_every and (index + 1) % fault.malformed_every == 0:
                        await self._write(response, b"data: {not json at all\n\n", fault.chunk_size)
                if not fault.no_done:
                    await self._write(response, _closing_events(fault, messages, len(deltas)), fault.chunk_size)
            await response.write_eof()
        return response

    async def _hostile(
        self, request: web.Request, fault: Fault, body: dict[str, Any], messages: list, deltas: list[str]
    ) -> web.StreamResponse | None:
        """The answers of a hostile upstream, or None for an ordinary one."""
        if fault.location is not None:
            return web.Response(status=fault.status, headers={"location": fault.location}, text="moved")
        if fault.raw is not None:
            raw = fault.raw if isinstance(fault.raw, bytes) else _fill(fault.raw, body, messages).encode("utf-8")
            _socket(request).write(raw)
            await _hold_until_gone(request)
            return web.Response(status=499)  # never sent: the socket is gone
        if _is_crafted(fault):
            return await self._crafted(request, fault, body, messages, deltas)
        if not (fault.events is not None or fault.endless_body or fault.gzip_bomb_mib or fault.drip_seconds
                or fault.broken_chunk):
            return None
        headers = {"content-type": "text/event-stream" if fault.status == 200 else fault.content_type}
        if fault.gzip_bomb_mib:
            headers["content-encoding"] = "gzip"
        response = web.StreamResponse(status=fault.status, headers=headers)
        await response.prepare(request)
        async with self._streaming():
            if fault.events is not None:
                for payload in fault.events:
                    await response.write(b"data: " + payload.encode("utf-8") + b"\n\n")
            elif fault.endless_body:
                block = b"x" * 65536
                for _ in range(ENDLESS_BODY_LIMIT // len(block)):
                    await response.write(block)
            elif fault.gzip_bomb_mib:
                bomb = gzip_bomb(fault.gzip_bomb_mib)
                for start in range(0, len(bomb), 65536):
                    await response.write(bomb[start:start + 65536])
            elif fault.drip_seconds:
                events = b"".join(_event(delta) for delta in deltas)
                for index in range(len(events)):
                    await response.write(events[index:index + 1])
                    await _sleep_unless_gone(request, fault.drip_seconds)
            else:  # broken_chunk
                await response.write(_event("first "))
                await asyncio.sleep(0.05)  # so that the stream has surely started
                _socket(request).write(b"zz\r\nnot a chunk\r\n")
                await _hold_until_gone(request)
                return response
            await response.write_eof()
        return response

    async def _crafted(
        self, request: web.Request, fault: Fault, body: dict[str, Any], messages: list, deltas: list[str]
    ) -> web.StreamResponse:
        """An answer put together from the crafted-answer fields of ``fault``, compressed if asked."""
        is_events = fault.body is None and not (fault.wide_json_bytes and not fault.wide_json_event)
        headers = {"content-type": "text/event-stream" if is_events else fault.content_type}
        if fault.encoding:
            headers["content-encoding"] = fault.encoding
        response = web.StreamResponse(status=fault.status, headers=headers)
        await response.prepare(request)
        packer = _Packer(fault.encoding)
        async with self._streaming():
            parts = _crafted_parts(fault, body, messages, deltas)
            cached = bool(fault.filler_events and not fault.keepalive_seconds and fault.encoding)
            if cached:
                # One compressed stream, cached: a benchmark measures the client, not this compressor.
                tail, parts = b"".join(parts), []
                await _write_pieces(response, _packed(fault.filler_events, fault.filler, fault.encoding, tail))
            elif fault.filler_events and not fault.keepalive_seconds:
                for block in _filler_blocks(fault.filler_events, fault.filler):
                    await response.write(block)
            for _ in range(fault.filler_events if fault.keepalive_seconds else 0):
                await _sleep_unless_gone(request, fault.keepalive_seconds)
                await response.write(packer.pack(_data_line(fault.filler), flush=True))
            for part in parts:
                await response.write(packer.pack(part, flush=True))
            if not cached:
                await response.write(packer.finish())
            await response.write_eof()
        return response

    @contextlib.asynccontextmanager
    async def _streaming(self) -> AsyncIterator[None]:
        """Count an answer being streamed, and a client that went away before its end."""
        self.open_streams += 1
        try:
            yield
        except ConnectionError:  # reset, or lost while a write waited to drain: aiohttp drops the rest
            self.disconnects += 1
        except asyncio.CancelledError:
            self.disconnects += 1
            raise
        finally:
            self.open_streams -= 1

    async def _write(self, response: web.StreamResponse, data: bytes, chunk_size: int) -> None:
        if chunk_size <= 0:
            await response.write(data)
            return
        for start in range(0, len(data), chunk_size):
            await response.write(data[start:start + chunk_size])

    def _fault_for(self, request: web.Request) -> Fault | web.Response:
        header = request.headers.get(FAULT_HEADER)
        if header:
            try:
                return Fault(**json.loads(header))
            except (ValueError, TypeError) as error:
                return _json_error(400, f"bad {FAULT_HEADER} header: {error}")
        if self.next_faults:
            return self.next_faults.popleft()
        return self.fault

    def _deltas(self, agent: str, messages: list, fault: Fault) -> list[str]:
        deltas = ["tok "] * fault.deltas if fault.deltas is not None else split_deltas(answer_text(agent, messages))
        if fault.huge_event_bytes:
            deltas = ["x" * fault.huge_event_bytes] + deltas
        return deltas

    def _bulk_events(self, count: int) -> bytes:
        """Pre-encoded events, so a benchmark measures the client, not this server."""
        if count not in self._event_cache:
            self._event_cache[count] = _event("tok ") * count
        return self._event_cache[count]


def _is_crafted(fault: Fault) -> bool:
    return bool(fault.encoding or fault.filler_events or fault.error_event or fault.choice_error
                or fault.wide_json_bytes)


def _crafted_parts(fault: Fault, body: dict[str, Any], messages: list, deltas: list[str]) -> list[bytes]:
    """The bytes of a crafted answer after any filler, one write each."""
    if fault.wide_json_bytes:
        wide = b'{"x":[' + b"{}," * (fault.wide_json_bytes // 3) + b"{}]}"
        return [b"data: " + wide + b"\n\n"] if fault.wide_json_event else [wide]
    if fault.body is not None:
        return [_fill(fault.body, body, messages).encode("utf-8")]
    parts = []
    for index, delta in enumerate(deltas):
        parts.append(_event(delta))
        if index == 0 and fault.error_event is not None:
            message = _fill(fault.error_event, body, messages)
            return parts + [b"event: error\n" + _data_line(json.dumps({"message": message}))]
        if index == 0 and fault.choice_error is not None:
            message = _fill(fault.choice_error, body, messages)
            error = {"choices": [{"index": 0, "delta": {}, "error": {"message": message}}]}
            return parts + [_data_line(json.dumps(error))]
    return parts if fault.no_done else parts + [_closing_events(fault, messages, len(deltas))]


def _data_line(data: str) -> bytes:
    return b"data: " + data.encode("utf-8") + b"\n\n" if data else b"data:\n\n"


def _filler_blocks(count: int, filler: str) -> Any:
    """``count`` filler events, in blocks of about 64 KiB: never the whole of them in memory."""
    event = _data_line(filler)
    per_block = max(1, 2**16 // len(event))
    block = event * per_block
    for _ in range(count // per_block):
        yield block
    if count % per_block:
        yield event * (count % per_block)


class _Packer:
    """Compresses an answer piece by piece, each piece flushed so that it can be decoded on arrival."""

    def __init__(self, encoding: str) -> None:
        # Another name (zstd, say) is only sent as a header: the bytes go as they are.
        self.encoding = encoding if encoding in ("gzip", "deflate", "br") else ""
        if self.encoding == "br":
            import brotli

            self._br = brotli.Compressor(quality=5)
        elif self.encoding:
            self._zlib = zlib.compressobj(6, zlib.DEFLATED, 31 if encoding == "gzip" else 15)

    def pack(self, data: bytes, flush: bool = False) -> bytes:
        if not self.encoding:
            return data
        if self.encoding == "br":
            return self._br.process(data) + (self._br.flush() if flush else b"")
        return self._zlib.compress(data) + (self._zlib.flush(zlib.Z_SYNC_FLUSH) if flush else b"")

    def finish(self) -> bytes:
        if not self.encoding:
            return b""
        return self._br.finish() if self.encoding == "br" else self._zlib.flush()


@functools.lru_cache(maxsize=4)
def _packed(count: int, filler: str, encoding: str, tail: bytes) -> bytes:
    """``count`` filler events then ``tail``, compressed (64 MB of filler is about 120 KiB of gzip)."""
    packer = _Packer(encoding)
    packed = [packer.pack(block) for block in _filler_blocks(count, filler)]
    packed += [packer.pack(tail), packer.finish()]
    return b"".join(packed)


async def _write_pieces(response: web.StreamResponse, data: bytes) -> None:
    for start in range(0, len(data), 2**16):
        await response.write(data[start:start + 2**16])


def _needs_per_delta_control(fault: Fault) -> bool:
    return any((fault.drop_after is not None, fault.stall_after is not None, fault.stream_error,
                fault.malformed_every, fault.huge_event_bytes))


async def _sleep_unless_gone(request: web.Request, seconds: float) -> None:
    """Stall, but notice a client that hangs up meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("client went away during the stall")
        await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))


def _socket(request: web.Request) -> asyncio.Transport:
    """The request's connection, to write around aiohttp's framing; gone if the client hung up."""
    if request.transport is None:
        raise ConnectionResetError("the client has gone")
    return request.transport


def _fill(template: str, body: dict[str, Any], messages: list) -> str:
    """Echo the request, as servers do in errors: "{text}" the last user text, "{messages}" the field as sent."""
    return template.replace("{text}", last_user_text(messages)[0]).replace("{messages}", body["messages"])


async def _hold_until_gone(request: web.Request) -> None:
    """Keep a connection open (at most HOLD_LIMIT seconds) until the client hangs up."""
    with contextlib.suppress(ConnectionResetError):
        await _sleep_unless_gone(request, HOLD_LIMIT)
    if request.transport is not None:
        request.transport.close()


@functools.lru_cache(maxsize=4)
def gzip_bomb(mebibytes: int) -> bytes:
    """A gzip body of ``mebibytes`` MiB of zeros: about 1 KiB per MiB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(2**20)
    return b"".join([packer.compress(zeros) for _ in range(mebibytes)] + [packer.flush()])


# --- the protocol, pure -----------------------------------------------------

class BadRequest(ValueError):
    """A request a strict upstream answers with 400."""


def parse_request(path: str, raw: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Check a request body against the endpoint, by the provider's own rules; return it and its messages."""
    try:
        return read_body(path, raw)
    except ValueError as error:
        raise BadRequest(str(error)) from None


def last_user_text(messages: list[dict[str, Any]]) -> tuple[str, int]:
    """The text and the number of images of the last user message."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            return content, 0
        texts = [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        images = sum(1 for part in content if isinstance(part, dict) and part.get("type") == "image_url")
        return " ".join(texts), images
    return "", 0


def answer_text(agent: str, messages: list[dict[str, Any]]) -> str:
    """The emulator's deterministic answer."""
    text, images = last_user_text(messages)
    answer = f"{agent} heard: {text}"
    if images:
        answer += f" [{images} image{'s' if images > 1 else ''}]"
    return answer


def split_deltas(text: str) -> list[str]:
    """One word with its following space per delta; joining them gives the text back."""
    deltas, start = [], 0
    while start < len(text):
        end = text.find(" ", start)
        end = len(text) if end == -1 else end + 1
        deltas.append(text[start:end])
        start = end
    return deltas


def usage_for(messages: list[dict[str, Any]], completion_tokens: int) -> dict[str, int]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": prompt + completion_tokens}


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-emulator",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def _event(text: str) -> bytes:
    return b"data: " + json.dumps(_chunk({"content": text}), ensure_ascii=False).encode("utf-8") + b"\n\n"


def _closing_events(fault: Fault, messages: list, completion_tokens: int) -> bytes:
    if fault.legacy_finish:
        finish = {"id": "chatcmpl-emulator", "object": "chat.completion.chunk",
                  "choices": [{"index": 0, "delta": {}}], "finish_reason": "stop"}
    else:
        finish = _chunk({}, "stop")
    usage = {"id": "chatcmpl-emulator", "object": "chat.completion.chunk", "choices": [],
             "usage": usage_for(messages, completion_tokens)}
    return b"".join(b"data: " + json.dumps(item).encode() + b"\n\n" for item in (finish, usage)) + b"data: [DONE]\n\n"


def _whole_answer(text: str, messages: list, completion_tokens: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-emulator",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage_for(messages, completion_tokens),
    }


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "code": status}}, status=status)


class EmulatorThread:
    """The emulator on an event loop in a thread of its own, for synchronous callers
    (g4f's sync client, Flask, the ``demo`` command). A context manager, or start()/stop()."""

    def __init__(self, fault: Fault | None = None) -> None:
        self.emulator = Emulator(fault=fault or Fault())
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> str:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.emulator.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.emulator.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> EmulatorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    def reset(self) -> None:
        """No fault, no recorded requests: as new."""
        self.emulator.fault = Fault()
        self.emulator.next_faults.clear()
        self.emulator.requests.clear()


async def serve_forever(host: str = "127.0.0.1", port: int = 0, fault: Fault | None = None) -> None:
    """Run until cancelled, printing the base URL first (the ``serve`` command)."""
    emulator = Emulator(fault=fault or Fault())
    base_url = await emulator.start(host, port)
    print(base_url, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


__all__ = ["Emulator", "EmulatorThread", "Fault", "RecordedRequest", "answer_text", "split_deltas", "parse_request",
           "BadRequest", "serve_forever", "BASE_PATH", "FAULT_HEADER"]
