"""The measured operations: one answer read by the provider, by g4f's client, or by plain aiohttp.

Each returns a :class:`Timing` and checks it read every delta, so a fast but
wrong client cannot win. The plain aiohttp loop is the baseline the issue
names: ``async for line in response.content`` and ``json.loads`` of each
``data:`` line, with the request body and headers built once, ahead of time.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from g4f_autonomous import AutonomousAI, wire
from g4f_autonomous.emulator import FAULT_HEADER

MODEL = "llama"
MESSAGES = [{"role": "user", "content": "benchmark"}]


@dataclass
class Timing:
    first: float  # seconds from the call to the first text delta
    total: float  # seconds from the call to the end of the answer
    deltas: int


@functools.lru_cache(maxsize=None)
def _fault_header(deltas: int) -> str:
    return json.dumps({"deltas": deltas})


def fault_headers(deltas: int) -> dict[str, str]:
    """The per-request fault that makes the emulator send ``deltas`` pre-encoded events.

    Cached: its cost is the benchmark's, not the provider's.
    """
    return {FAULT_HEADER: _fault_header(deltas)}


class Target:
    """The emulator's chat endpoint and a request the plain loop can send as is."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.chat_url = wire.endpoint_url(base_url, MODEL)
        self.body = wire.build_body(MODEL, wire.check_messages(MESSAGES), "bench-thread", True)
        self._headers: dict[int, dict[str, str]] = {}

    def headers(self, deltas: int) -> dict[str, str]:
        if deltas not in self._headers:
            self._headers[deltas] = wire.build_headers(fault_headers(deltas))
        return self._headers[deltas]


def _checked(start: float, first: float | None, deltas: int, expected: int) -> Timing:
    end = time.perf_counter()
    if deltas != expected or first is None:
        raise RuntimeError(f"read {deltas} deltas, expected {expected}")
    return Timing(first - start, end - start, deltas)


async def plain_stream(session: aiohttp.ClientSession, target: Target, expected: int) -> Timing:
    start = time.perf_counter()
    first = None
    deltas = 0
    async with session.post(target.chat_url, data=target.body, headers=target.headers(expected)) as response:
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            choices = json.loads(data).get("choices")
            if choices and choices[0].get("delta", {}).get("content"):
                deltas += 1
                if first is None:
                    first = time.perf_counter()
    return _checked(start, first, deltas, expected)


async def provider_stream(target: Target, expected: int) -> Timing:
    start = time.perf_counter()
    first = None
    deltas = 0
    async for item in AutonomousAI.create_async_generator(
        MODEL, MESSAGES, base_url=target.base_url, headers=fault_headers(expected)
    ):
        if isinstance(item, str):
            deltas += 1
            if first is None:
                first = time.perf_counter()
    return _checked(start, first, deltas, expected)


def g4f_client(target: Target) -> Any:
    from g4f.client import AsyncClient

    return AsyncClient(provider=AutonomousAI, base_url=target.base_url)


async def g4f_stream(client: Any, expected: int) -> Timing:
    """g4f's AsyncClient streaming through the plugin, as a g4f user writes it."""
    start = time.perf_counter()
    first = None
    deltas = 0
    stream = client.chat.completions.stream(MESSAGES, MODEL, headers=fault_headers(expected))
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            deltas += 1
            if first is None:
                first = time.perf_counter()
    return _checked(start, first, deltas, expected)


def plain_session() -> aiohttp.ClientSession:
    """The baseline's one shared session: keep-alive, and no cap on concurrent connections
    (aiohttp's default of 100 would queue the 200-stream case behind itself)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
