"""Reading one upstream answer, every read bounded in bytes and in time.

The provider runs inside long-lived, shared processes (``g4f api``, ``g4f gui``),
so nothing an upstream sends may take unbounded memory or time, and nothing but
g4f's own errors may come out of here:

- an error body (or a 200 that is neither events nor JSON) is read up to
  ERROR_BODY_LIMIT decoded bytes; a whole JSON answer, and the text held for a
  ``stream=False`` caller, up to MAX_ANSWER_SIZE;
- :class:`Deadline` bounds each wait by the provider's own clock: ``timeout``
  seconds without an event (not without a byte: a server dripping one byte at a
  time gets no more time than a silent one), and ``total_timeout`` for the call;
- aiohttp's and the parser's exceptions become the g4f errors of ``errors``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError

from . import errors, wire
from .compat import FinishReason, Usage, debug
from .compat import TimeoutError as G4FTimeoutError
from .errors import Origin
from .sse import ServerSentEvent, SSEDecoder, SSEError

__all__ = [
    "Deadline", "Expired", "read_answer", "read_up_to", "MAX_ANSWER_SIZE", "ERROR_BODY_LIMIT", "TRANSPORT_ERRORS",
]

# A whole JSON answer (bytes) and the text held for stream=False (characters).
MAX_ANSWER_SIZE = 32 * 2**20
# Enough to quote 200 characters and to recognise a Cloudflare page.
ERROR_BODY_LIMIT = 64 * 2**10
READ_SIZE = 2**16
END_GRACE = 0.05  # seconds to wait after [DONE] for the end of the body

# What reading from aiohttp can raise besides timeouts: its client errors, the
# HTTP parser's own errors (the pure-Python parser lets TransferEncodingError
# out unwrapped) and socket errors.
TRANSPORT_ERRORS = (aiohttp.ClientError, HttpProcessingError, OSError)

T = TypeVar("T")


class Expired(Exception):
    """A :class:`Deadline` ran out; the caller turns it into g4f's TimeoutError."""


class Deadline:
    """The provider's own clock for one call: ``gap`` seconds between events, ``total`` for all.

    aiohttp's read timeout restarts on every byte, and a malformed chunk can
    stall its C parser for ever; this one restarts only on :meth:`progress`
    (an event arrived) and cancels the waiting read itself. One timer per
    call, re-armed lazily, so an event costs a clock read, not a timer.
    """

    __slots__ = ("gap", "total", "_loop", "_end", "_last", "_handle", "_task", "_waiting", "expired")

    def __init__(self, gap: float, total: float | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        now = self._loop.time()
        self.gap = gap
        self.total = total
        self._end = now + total if total else math.inf
        self._last = now
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None
        self._waiting = False
        self.expired = ""  # "gap" or "total" once it has run out

    def progress(self) -> None:
        """An event arrived (or the consumer had the last ones): the gap starts again."""
        self._last = self._loop.time()

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``; raise :class:`Expired` if the deadline passes first."""
        if self._handle is None:
            self._handle = self._loop.call_at(self._due(), self._fire)
        self._task = asyncio.current_task()
        self._waiting = True
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not self.expired:
                raise
            # Our own cancel. On 3.11+ undo it, unless somebody else cancelled too.
            uncancel = getattr(self._task, "uncancel", None)
            if uncancel is not None and uncancel() > 0:
                raise
            raise Expired(self.expired) from None
        finally:
            self._waiting = False

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _due(self) -> float:
        return min(self._last + self.gap, self._end)

    def _fire(self) -> None:
        self._handle = None
        if not self._waiting or self._task is None:
            return  # the next wait re-arms
        due = self._due()
        if self._loop.time() < due:  # progress moved the deadline: sleep again
            self._handle = self._loop.call_at(due, self._fire)
            return
        self.expired = "total" if due == self._end else "gap"
        self._task.cancel()

    def error(self, origin: Origin, deltas: int | None = None) -> G4FTimeoutError:
        """g4f's TimeoutError once expired; ``deltas`` once the event stream had begun."""
        if self.expired == "total" and self.total:
            return errors.total_timeout(origin, self.total)
        if deltas is None:
            return errors.no_answer(origin, self.gap)
        return errors.stalled(origin, self.gap, deltas)


class AnswerState:
    """What has been read of one answer so far: text seen, the end marker, finish reason, usage."""

    __slots__ = ("origin", "done", "delta_count", "finish_reason", "usage")

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.done = False
        self.delta_count = 0
        self.finish_reason: str | None = None
        self.usage: dict[str, int] | None = None

    def texts(self, events: list[ServerSentEvent]) -> list[str]:
        """The text deltas of these events, up to ``[DONE]``."""
        texts = []
        for event in events:
            if event.data == "[DONE]":
                self.done = True
                break
            text = self._event_text(event.data)
            if text:
                texts.append(text)
        self.delta_count += len(texts)
        return texts

    def whole_text(self, body: bytes) -> str:
        """A whole JSON answer (``stream: false`` upstream)."""
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            raise errors.not_json(self.origin, body.decode("utf-8", errors="replace")) from None
        text = self._read(payload)
        self.delta_count += bool(text)
        return text

    def closing_items(self) -> list[Any]:
        """FinishReason and Usage, after checking that there was an answer at all."""
        if not self.delta_count:
            raise errors.no_text(self.origin, self.done, self.finish_reason)
        items: list[Any] = []
        if self.finish_reason:
            items.append(FinishReason(self.finish_reason))
        if self.usage:
            items.append(Usage(**self.usage))
        return items

    def _event_text(self, data: str) -> str:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError:
            # Seen upstream: stray non-JSON lines between good events. Skip them,
            # and log only the size: the line may quote the user's message.
            debug.log(f"AutonomousAI: skipped a malformed event of {len(data)} characters from {self.origin.endpoint}")
            return ""
        except (ValueError, RecursionError) as error:
            # Valid JSON that Python will not hold (nested too deep, a number of
            # thousands of digits): a real event lost, so the answer would be wrong.
            raise errors.unreadable_event(self.origin, error) from None
        return self._read(payload)

    def _read(self, payload: Any) -> str:
        chunk = wire.read_chunk(payload)
        if chunk is None:
            raise errors.not_an_object(self.origin, payload)
        if chunk.error is not None:
            raise errors.reported(self.origin, chunk.error)
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.usage = chunk.usage or self.usage
        return chunk.text


async def read_answer(
    response: aiohttp.ClientResponse, origin: Origin, deadline: Deadline, stream: bool, join: bool = False
) -> AsyncIterator[Any]:
    """The answer as str deltas (one str when not ``stream``), then FinishReason and Usage.

    With ``join``, the deltas decoded from one network read come as one str:
    they arrived at the same instant, so nothing is held back, and a consumer
    that pays per chunk (g4f's client builds objects per chunk) pays once.
    Raises only g4f errors (TimeoutError for a deadline); the caller closes the response.
    """
    state = AnswerState(origin)
    in_stream = False
    try:
        whole, block = await _open(response, origin, deadline)
        if whole is not None:
            yield state.whole_text(whole)
        else:
            in_stream = True
            decoder = SSEDecoder()
            kept: list[str] = []  # stream=False: the texts, given as one at the end
            kept_size = 0
            read = response.content.read
            while True:
                ended = not block
                events = decoder.close() if ended else decoder.feed(block)
                # Nothing of this read may stay alive while the next one waits: with
                # hundreds of open streams, a kept block and its events add up.
                block = b""
                if events:
                    texts = state.texts(events)
                    events = []
                    if stream and join and len(texts) > 1:
                        yield "".join(texts)
                    elif stream:
                        for text in texts:
                            yield text
                    elif texts:
                        kept_size += sum(map(len, texts))
                        if kept_size > MAX_ANSWER_SIZE:
                            raise errors.text_too_long(origin, MAX_ANSWER_SIZE)
                        kept.extend(texts)
                    texts = []
                    deadline.progress()  # after the consumer had the texts: its time is not the upstream's
                if state.done:
                    await _finish_body(response)
                    break
                if ended:
                    break
                block = await deadline.wait(read(READ_SIZE))
            if kept:
                yield "".join(kept)
    except Expired:
        raise deadline.error(origin, state.delta_count if in_stream else None) from None
    except TRANSPORT_ERRORS as error:
        raise errors.broke_off(origin, error, state.delta_count if in_stream else None) from None
    except SSEError as error:
        raise errors.oversized_event(origin, error) from None
    for item in state.closing_items():
        yield item


async def _open(response: aiohttp.ClientResponse, origin: Origin, deadline: Deadline) -> tuple[bytes | None, bytes]:
    """What the answer is: (a whole JSON body, b"") or (None, the first bytes of an event stream).

    Anything else (an error status, a web page, garbage) raises its g4f error.
    A body declared an event stream, or starting like one, is read as events,
    whatever else its content type says.
    """
    content_type = response.headers.get("content-type", "").lower()
    if response.status >= 300:
        raise await _failure(response, origin, deadline, content_type, b"")
    head = await deadline.wait(response.content.read(READ_SIZE))
    if content_type.startswith("text/event-stream") or wire.looks_like_events(head):
        return None, head
    if wire.looks_like_json(content_type, head):
        body = await read_up_to(response, MAX_ANSWER_SIZE + 1, deadline, head)  # one more: too large
        if len(body) > MAX_ANSWER_SIZE:
            raise errors.json_too_large(origin, MAX_ANSWER_SIZE)
        return body, b""
    raise await _failure(response, origin, deadline, content_type, head)


async def read_up_to(
    response: aiohttp.ClientResponse, limit: int, deadline: Deadline | None = None, head: bytes = b""
) -> bytes:
    """The body's first ``limit`` decoded bytes (all of it if shorter), ``head`` being what was read
    already; the rest stays unread. Each read waits under ``deadline`` when one is given."""
    body = bytearray(head)
    while len(body) < limit:
        read = response.content.read(limit - len(body))
        block = await (deadline.wait(read) if deadline is not None else read)
        if not block:
            break
        body += block
    return bytes(body[:limit])


async def _failure(
    response: aiohttp.ClientResponse, origin: Origin, deadline: Deadline, content_type: str, head: bytes
) -> Exception:
    """The g4f error for a status or body that is no answer, from the first ERROR_BODY_LIMIT bytes."""
    text = (await read_up_to(response, ERROR_BODY_LIMIT, deadline, head)).decode("utf-8", errors="replace")
    return errors.http_status(origin, response.status, content_type, text, response.headers.get("location"))


async def _finish_body(response: aiohttp.ClientResponse) -> None:
    """After [DONE], read the end of the body if it comes at once, so the connection is reused.

    aiohttp only returns a connection to the pool when its body was read to the
    end, and a server often sends [DONE] and the end of the body in two writes.
    Without this, about one call in 30 paid for a new connection (measured in
    ``bench``). A server that keeps the body open, or sends more, is not waited
    for: the connection is closed instead.
    """
    content = response.content
    if content.is_eof():
        return
    await asyncio.sleep(0)  # one turn of the loop reads an end already on the socket: no task needed
    if content.is_eof():
        return
    try:
        await asyncio.wait_for(_discard(content, ERROR_BODY_LIMIT), END_GRACE)
    except (asyncio.TimeoutError, *TRANSPORT_ERRORS):
        pass  # the answer is complete; only the connection is not reused


async def _discard(content: aiohttp.StreamReader, limit: int) -> None:
    seen = 0
    while seen <= limit:
        block = await content.read(READ_SIZE)
        if not block:
            return
        seen += len(block)
