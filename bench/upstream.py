"""The benchmarks' upstream: a light HTTP/1.1 server in a process of its own.

``python -m bench.upstream`` prints its base URL, then answers every POST on
127.0.0.1 with pre-built bytes: an event stream of ``"tok "`` deltas, chunked,
keep-alive. Raw asyncio, no framework: per request it only finds the end of
the head and body, so its cost hides nobody's (the emulator's own
per-request and per-write costs made short answers and per-event streams
measure the server).

The answer is read from the emulator's fault header, with the fields (and
meanings) it shares with ``g4f_autonomous.emulator.Fault``:

- ``deltas``: how many events of ``"tok "``;
- ``per_event``: one HTTP chunk per event, as event-stream servers send them;
  otherwise the whole body is one chunk (a burst);
- ``stall_after``/``stall_seconds``: the first events go out at once, the
  rest after the pause (for the time to the first delta).

The bytes of an answer are written at once, so the client reads them as
fast as it can: the framing is in the bytes, and the server is never the
bottleneck (``run.py`` prints the time of a raw read as the floor).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import selectors
import subprocess
import sys
from pathlib import Path

from processes import stop_process  # tests/processes.py, on the path via bench/__init__

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0
BASE_PATH = "/api/v1/ai"
FAULT_HEADER = b"x-emulator-fault"  # the emulator's (g4f_autonomous.emulator.FAULT_HEADER)

_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
         b"transfer-encoding: chunked\r\n\r\n")
_END = b"0\r\n\r\n"


def _event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _chunk(payload: dict) -> dict:
    return {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "choices": [payload]}


DELTA = _event(_chunk({"index": 0, "delta": {"content": "tok "}, "finish_reason": None}))


def _closing(deltas: int) -> bytes:
    finish = _event(_chunk({"index": 0, "delta": {}, "finish_reason": "stop"}))
    usage = _event({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "choices": [],
                    "usage": {"prompt_tokens": 1, "completion_tokens": deltas, "total_tokens": deltas + 1}})
    return finish + usage + b"data: [DONE]\n\n"


def _framed(events: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events if event)


@functools.lru_cache(maxsize=64)
def answer(spec: bytes) -> tuple[bytes, bytes, float]:
    """(bytes sent at once, bytes sent after the pause, the pause) for one fault header."""
    fault = json.loads(spec) if spec else {}
    deltas = int(fault.get("deltas") or 1)
    early = min(deltas, int(fault.get("stall_after") or deltas))
    pause = float(fault.get("stall_seconds") or 0.0)
    parts = [[DELTA] * early, [DELTA] * (deltas - early) + [_closing(deltas)]]
    if fault.get("per_event"):
        first, rest = (_framed(part) for part in parts)
    else:
        first, rest = (_framed([b"".join(part)]) for part in parts)
    return _HEAD + first, rest + _END, pause


class _Connection(asyncio.Protocol):
    """Reads requests one after the other (aiohttp does not pipeline) and answers each."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            headers = {}
            for line in bytes(self.buffer[:end]).split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            size = end + 4 + int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < size:
                return
            del self.buffer[:size]
            first, rest, pause = answer(headers.get(FAULT_HEADER, b""))
            self.transport.write(first)
            if pause:
                asyncio.get_running_loop().call_later(pause, self._write, rest)
            else:
                self.transport.write(rest)

    def _write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)


async def serve() -> None:
    server = await asyncio.get_running_loop().create_server(_Connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}{BASE_PATH}", flush=True)
    async with server:
        await server.serve_forever()


class UpstreamProcess:
    """``python -m bench.upstream`` started and stopped; ``base_url`` once started."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env
        self.base_url = ""
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> UpstreamProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.upstream"], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        # The first line is the base URL; bound the wait so a broken start cannot hang the run.
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            ready = selector.select(START_TIMEOUT)
        line = self.process.stdout.readline().strip() if ready else ""
        if not line.startswith("http://127.0.0.1:"):
            self.__exit__()
            raise RuntimeError(f"the bench upstream did not start (first line: {line!r})")
        self.base_url = line
        return self

    def __exit__(self, *exc: object) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process, 10)
            process.stdout.close()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


def kill_quietly(pid: int | None) -> None:
    """For the watchdog: end one process we started, by its id."""
    if pid is not None:
        with contextlib.suppress(OSError):
            os.kill(pid, 9)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
