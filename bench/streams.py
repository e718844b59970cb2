"""The measured operations: one answer read by the provider, g4f's client, or a baseline loop.

Each returns a :class:`Timing` and checks it read the whole text, so a fast
but wrong client cannot win. The baselines send a request built once, ahead
of time, over one shared session:

- ``limit``: the minimal correct loop, the reference: 64 KiB blocks, split on
  blank lines, ``json.loads`` of each ``data:`` payload,
  ``choices[0].delta.content``;
- ``line``: the common aiohttp loop, one ``readline`` per line
  (``async for line in response.content``);
- ``raw``: reads the body and decodes nothing, the floor the upstream allows.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from bench.upstream import FAULT_HEADER
from g4f_autonomous import AutonomousAI, wire

MODEL = "llama"
MESSAGES = [{"role": "user", "content": "benchmark"}]
DELTA_TEXT = "tok "
READ_SIZE = 2**16


@dataclass(frozen=True)
class Answer:
    """What the upstream sends: ``deltas`` events, one HTTP chunk each (``per_event``) or one
    chunk in all (a burst); with ``pause``, the first event at once and the rest after it."""

    deltas: int
    per_event: bool = True
    pause: float = 0.0


@dataclass
class Timing:
    first: float  # seconds from the call to the first text delta
    total: float  # seconds from the call to the end of the answer


@functools.cache
def fault_headers(answer: Answer) -> dict[str, str]:
    """The request header that asks for ``answer`` (the emulator's fault header and fields).

    Cached: its cost is the benchmark's, not the client's.
    """
    fault: dict[str, Any] = {"deltas": answer.deltas, "per_event": answer.per_event}
    if answer.pause:
        fault.update(stall_after=1, stall_seconds=answer.pause)
    return {FAULT_HEADER.decode(): json.dumps(fault)}


class Target:
    """The upstream's chat endpoint, and the request the baselines send as is."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.chat_url = wire.endpoint_url(base_url, MODEL)
        self.body = wire.build_body(MODEL, wire.encode_messages(wire.check_messages(MESSAGES)), "bench-thread", True)

    def headers(self, answer: Answer) -> dict[str, str]:
        return _request_headers(answer)


@functools.cache
def _request_headers(answer: Answer) -> dict[str, str]:
    return wire.build_headers(fault_headers(answer))


class _Clock:
    """Start, first text, end; and the check that the whole text arrived."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.chars = 0

    def text(self, text: str | None) -> None:
        if text:
            if self.first is None:
                self.first = time.perf_counter()
            self.chars += len(text)

    def done(self, answer: Answer) -> Timing:
        end = time.perf_counter()
        if self.chars != answer.deltas * len(DELTA_TEXT) or self.first is None:
            raise RuntimeError(f"read {self.chars} characters, expected {answer.deltas * len(DELTA_TEXT)}")
        return Timing(self.first - self.start, end - self.start)


async def limit_stream(session: aiohttp.ClientSession, target: Target, answer: Answer) -> Timing:
    clock = _Clock()
    async with session.post(target.chat_url, data=target.body, headers=target.headers(answer)) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        rest = b""
        async for block in response.content.iter_chunked(READ_SIZE):
            events = (rest + block).split(b"\n\n")
            rest = events.pop()
            for event in events:
                if event.startswith(b"data:") and event[5:].strip() != b"[DONE]":
                    choices = json.loads(event[5:])["choices"]
                    if choices:
                        clock.text(choices[0]["delta"].get("content"))
    return clock.done(answer)


async def line_stream(session: aiohttp.ClientSession, target: Target, answer: Answer) -> Timing:
    clock = _Clock()
    async with session.post(target.chat_url, data=target.body, headers=target.headers(answer)) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        async for line in response.content:
            if line.startswith(b"data:") and line[5:].strip() != b"[DONE]":
                choices = json.loads(line[5:])["choices"]
                if choices:
                    clock.text(choices[0]["delta"].get("content"))
    return clock.done(answer)


async def raw_stream(session: aiohttp.ClientSession, target: Target, answer: Answer) -> Timing:
    start = time.perf_counter()
    async with session.post(target.chat_url, data=target.body, headers=target.headers(answer)) as response:
        first = None
        async for _ in response.content.iter_chunked(READ_SIZE):
            first = first or time.perf_counter()
    return Timing(first - start, time.perf_counter() - start)


async def provider_stream(target: Target, answer: Answer) -> Timing:
    clock = _Clock()
    async for item in AutonomousAI.create_async_generator(
        MODEL, MESSAGES, base_url=target.base_url, headers=fault_headers(answer)
    ):
        if isinstance(item, str):
            clock.text(item)
    return clock.done(answer)


def g4f_client(target: Target) -> Any:
    from g4f.client import AsyncClient

    return AsyncClient(provider=AutonomousAI, base_url=target.base_url)


async def g4f_stream(client: Any, answer: Answer) -> Timing:
    """g4f's AsyncClient streaming through the plugin, as a g4f user writes it."""
    clock = _Clock()
    stream = client.chat.completions.create(MESSAGES, MODEL, stream=True, headers=fault_headers(answer))
    async for chunk in stream:
        if chunk.choices:
            clock.text(chunk.choices[0].delta.content)
    return clock.done(answer)


def plain_session() -> aiohttp.ClientSession:
    """The baselines' one shared session: keep-alive, and no cap on concurrent connections
    (aiohttp's default of 100 would queue the 200-stream case behind itself)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


BASELINES = {"limit": limit_stream, "line": line_stream, "raw": raw_stream}
