"""Reading one upstream answer, every read bounded in bytes and in time.

The provider runs inside long-lived, shared processes (``g4f api``, ``g4f gui``)
where one event loop serves every user, so nothing an upstream sends may take
unbounded memory or time, or hold the loop, and nothing but g4f's own errors
may come out of here:

- the body is decoded (gzip, deflate, br) here, by :class:`Body`, a slice of at
  most SLICE bytes at a time with the loop free in between, up to
  MAX_DECODED_SIZE bytes per answer however well it compresses;
- an error body (or a 200 that is neither events nor JSON) is read up to
  ERROR_BODY_LIMIT decoded bytes; a whole JSON answer, and the text held for a
  ``stream=False`` caller, up to MAX_ANSWER_SIZE; a JSON text with more than
  MAX_JSON_VALUES values (``[{},{},...]`` costs 30 times its size once built)
  is refused before it is built;
- :class:`Deadline` bounds each wait by the provider's own clock: ``timeout``
  seconds without a part of an answer (not without a byte, nor an event: a
  server dripping bytes or sending empty events gets no more time than a
  silent one), and ``total_timeout`` (DEFAULT_TOTAL_TIMEOUT if none) for the call;
- aiohttp's and the parser's exceptions become the g4f errors of ``errors``.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from aiohttp import hdrs
from aiohttp.http_exceptions import HttpProcessingError

from . import errors, inflate, wire
from .compat import FinishReason, Usage, debug
from .compat import TimeoutError as G4FTimeoutError
from .errors import Origin
from .sse import ServerSentEvent, SSEDecoder, SSEError

__all__ = [
    "Body", "Deadline", "Expired", "read_answer", "read_up_to", "MAX_ANSWER_SIZE", "ERROR_BODY_LIMIT",
    "MAX_DECODED_SIZE", "MAX_JSON_VALUES", "DEFAULT_TOTAL_TIMEOUT", "TRANSPORT_ERRORS",
]

# A whole JSON answer (bytes) and the text held for stream=False (characters).
MAX_ANSWER_SIZE = 32 * 2**20
# Enough to quote 200 characters and to recognise a Cloudflare page.
ERROR_BODY_LIMIT = 64 * 2**10
# Decoded bytes of one answer body, whatever it was compressed to. A real answer
# of 32 Mi characters streamed as events is about 100 MiB of events.
MAX_DECODED_SIZE = 256 * 2**20
# Values (objects, arrays, members, elements) one JSON text may hold: a real
# event has a handful, a whole answer a few dozen. Each built value costs 50-100
# bytes, so this keeps a JSON text's objects to a few MiB whatever its shape.
MAX_JSON_VALUES = 20_000
# JSON texts shorter than this cannot hold MAX_JSON_VALUES values worth counting.
SHAPE_CHECK_SIZE = 2**16
# A whole JSON answer longer than this is parsed in a worker thread.
OFF_LOOP_SIZE = 2**20
# The whole call, when the caller gives no total_timeout: five times the default
# gap (120 s), long enough for the longest answer the upstream streams (about
# 16k tokens at 50 tokens a second is 330 s), short enough that a stream of
# keep-alives, or a caller who is never told, does not hold a slot for ever.
DEFAULT_TOTAL_TIMEOUT = 600.0
# Bytes per read, and decoded bytes per step: 16 KiB of the smallest events
# ("data: {}", 1,600 of them) takes 10-20 ms to parse on a busy machine; 64 KiB
# held the loop for 80-140 ms.
READ_SIZE = 2**14
SLICE = 2**14
# Bytes given to the event decoder at once. Its events are objects the garbage
# collector tracks: 1,600 alive at once were promoted by every young collection
# and brought a full one (60-70 ms with g4f loaded) every few hundred ms; 400 are not.
FEED_SIZE = 2**12
TURN = 0.01  # seconds of work after which the loop gets a turn, even if every read was ready
END_GRACE = 0.05  # seconds to wait after [DONE] for the end of the body

# What reading from aiohttp can raise besides timeouts: its client errors, the
# HTTP parser's own errors (the pure-Python parser lets TransferEncodingError
# out unwrapped) and socket errors.
TRANSPORT_ERRORS = (aiohttp.ClientError, HttpProcessingError, OSError)

T = TypeVar("T")

# Task.uncancel (3.11+) lets the deadline cancel the waiting task and take the cancel back.
CAN_UNCANCEL = hasattr(asyncio.Task, "uncancel")


class Expired(Exception):
    """A :class:`Deadline` ran out; the caller turns it into g4f's TimeoutError."""


class BodyError(Exception):
    """The body cannot be read as sent: its encoding is unknown or corrupt, or it decodes past its cap.

    Its one argument is the g4f error to raise (so its text is that error's).
    """

    @property
    def error(self) -> Exception:
        return self.args[0]


class Deadline:
    """The provider's own clock for one call: ``gap`` seconds between parts of an answer, ``total`` for all.

    aiohttp's read timeout restarts on every byte, and a malformed chunk can
    stall its C parser for ever; this one restarts only on :meth:`progress`
    (a part of an answer arrived) and cancels the waiting read itself. One
    timer per call, re-armed lazily, so an event costs a clock read, not a
    timer. A timer cannot fire while the loop is busy, so readers also ask
    :meth:`check` between the steps of their work.
    """

    __slots__ = ("gap", "total", "default_total", "_loop", "_end", "_last", "_handle", "_task", "_outcome", "expired")
    _task: asyncio.Task | None  # the task waiting, while one is (set by the first wait, which arms the timer)

    def __init__(self, gap: float, total: float | None, default_total: float) -> None:
        """``default_total`` applies when ``total`` is None: the error then names it as the default."""
        self._loop = asyncio.get_running_loop()
        self.gap = gap
        self.total = total
        self.default_total = default_total
        self._last = self._loop.time()
        self._end = self._last + (total or default_total)
        self._handle: asyncio.TimerHandle | None = None
        self._outcome: asyncio.Future | None = None  # Python 3.10 only: see _race
        self.expired = ""  # "gap" or "total" once it has run out

    def progress(self) -> None:
        """A part of an answer arrived (or the consumer had the last ones): the gap starts again."""
        self._last = self._loop.time()

    def check(self) -> float:
        """Raise :class:`Expired` if the deadline has passed; the loop's time otherwise."""
        now = self._loop.time()
        due = self._due()
        if now >= due:
            self.expired = "total" if due == self._end else "gap"
            raise Expired(self.expired)
        return now

    async def wait(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable``; raise :class:`Expired` if the deadline passes first."""
        if self._handle is None:
            self._handle = self._loop.call_at(self._due(), self._fire)
        self._task = task = asyncio.current_task()
        try:
            if not CAN_UNCANCEL:
                return await self._race(awaitable)
            return await awaitable
        except asyncio.CancelledError:
            # Our own cancel: undo it, unless somebody else cancelled too (then theirs wins).
            if self.expired and CAN_UNCANCEL and task.uncancel() == 0:  # type: ignore[union-attr]
                raise Expired(self.expired) from None
            raise
        finally:
            self._task = None

    async def _race(self, awaitable: Awaitable[T]) -> T:
        """Python 3.10: the timer ends the wait without cancelling the caller's task.

        Without Task.uncancel, a cancel from outside that lands next to the
        timer's own would be merged into it and lost; here only an outside
        cancel cancels the caller's task. One task per wait, on 3.10 only; it
        settles the outcome itself, so the caller resumes one turn after the
        awaitable ends, as on 3.11 (a turn more and aiohttp may have seen the
        connection's end, and its reads raise before the bytes that came first).
        """
        self._outcome = outcome = self._loop.create_future()
        inner = asyncio.ensure_future(_settle(awaitable, outcome))
        try:
            return await outcome
        finally:
            inner.cancel()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    def _due(self) -> float:
        return min(self._last + self.gap, self._end)

    def _fire(self) -> None:
        self._handle = None
        task = self._task
        if task is None:
            return  # the next wait re-arms
        due = self._due()
        if self._loop.time() < due:  # progress moved the deadline: sleep again
            self._handle = self._loop.call_at(due, self._fire)
            return
        self.expired = "total" if due == self._end else "gap"
        if self._outcome is None:
            task.cancel()
        elif not self._outcome.done():
            self._outcome.set_exception(Expired(self.expired))

    def error(self, origin: Origin, deltas: int | None = None) -> G4FTimeoutError:
        """g4f's TimeoutError once expired; ``deltas`` once the event stream had begun."""
        if self.expired == "gap":
            return errors.no_answer(origin, self.gap) if deltas is None else errors.stalled(origin, self.gap, deltas)
        if self.total:
            return errors.total_timeout(origin, self.total)
        return errors.default_total_timeout(origin, self.default_total)


async def _settle(awaitable: Awaitable[T], outcome: asyncio.Future) -> None:
    """Await ``awaitable`` and give its result (or error) to ``outcome``, unless the deadline settled it first."""
    try:
        result = await awaitable
    except asyncio.CancelledError:
        # Ours (the caller went away) or the awaitable's own: either way the caller must not wait on.
        outcome.cancel()
        raise
    except Exception as error:
        if not outcome.done():
            outcome.set_exception(error)
    else:
        if not outcome.done():
            outcome.set_result(result)


class Body:
    """One response body, decoded a bounded slice at a time.

    The session leaves Content-Encoding alone (``auto_decompress=False``):
    aiohttp would inflate a whole read in one step, megabytes from a few KiB,
    with the loop held. Here each step gives at most about SLICE bytes, the
    loop gets a turn between steps that needed no waiting, the deadline's
    clock is read at every step (its timer cannot fire while the loop is busy),
    and the decoded total is capped at MAX_DECODED_SIZE.
    """

    __slots__ = ("origin", "size", "_content", "_decoder", "_refused", "_deadline", "_loop", "_turn")

    def __init__(self, response: aiohttp.ClientResponse, origin: Origin, deadline: Deadline | None = None) -> None:
        self.origin = origin
        self.size = 0  # decoded bytes so far
        self._content = response.content
        self._refused: BodyError | None = None  # raised by the first read: an error status still gets named
        try:
            self._decoder = inflate.decoder_for(response.headers.get(hdrs.CONTENT_ENCODING))
        except inflate.UnsupportedEncoding as error:  # no decoder then: next() raises before it would use one
            self._refused = BodyError(errors.undecodable(origin, str(error)))
        self._deadline = deadline
        self._loop = asyncio.get_running_loop()
        self._turn = self._loop.time()

    async def _wait(self, read: Awaitable[bytes]) -> bytes:
        return await (self._deadline.wait(read) if self._deadline is not None else read)

    async def next(self) -> bytes:
        """The next decoded slice; b"" at the end of the body."""
        if self._refused is not None:
            raise self._refused
        decoder = self._decoder
        while True:
            raw = b""  # a decoder still pending decodes bytes already here: no wait, so the turn below matters
            if decoder is None or not decoder.pending:
                # Bytes already here are taken without a wait (on 3.10 a wait is a task, a turn later).
                raw = self._content.read_nowait(READ_SIZE) or await self._wait(self._content.read(READ_SIZE))
                if not raw:
                    return b""
            try:
                block = raw if decoder is None else decoder.feed(raw, SLICE)
            except ValueError as error:  # a corrupt stream, worded by inflate
                raise BodyError(errors.corrupt_body(self.origin, str(error))) from None
            now = self._deadline.check() if self._deadline is not None else self._loop.time()
            if now - self._turn >= TURN:
                # Twice: timers that came due meanwhile (other users' wake-ups) are
                # queued behind this task, so one turn alone would run it first again.
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                self._turn = self._loop.time()
            if block:
                self.size += len(block)
                if self.size > MAX_DECODED_SIZE:
                    raise BodyError(errors.body_too_large(self.origin, MAX_DECODED_SIZE))
                return block


def load_json(text: str | bytes) -> Any:
    """``json.loads``, after refusing a text of more than MAX_JSON_VALUES values.

    Raises ValueError (json's own, or a UnicodeDecodeError), RecursionError, or
    :class:`TooManyValues` before anything is built.
    """
    if len(text) > SHAPE_CHECK_SIZE:
        if isinstance(text, bytes):
            text = text.decode()
        if wire.json_values_over(text, MAX_JSON_VALUES):
            raise TooManyValues()
    return json.loads(text)


class TooManyValues(Exception):
    """A JSON text holds more than MAX_JSON_VALUES values."""


@dataclass(slots=True)
class AnswerState:
    """What has been read of one answer so far: text seen, the end marker, finish reason, usage.

    ``max_deltas`` (the caller's ``max_tokens``) ends the answer after that many
    text deltas with finish reason "length", counted as g4f's client counts
    chunks; ``progressed`` says an event since the last look carried a part of
    an answer (text, finish reason, usage or a role), which is what restarts
    the deadline's gap: empty events and keep-alives do not.
    """

    origin: Origin
    max_deltas: int | None
    streaming: bool = False  # an event stream (else a whole answer, or none yet): errors count its deltas
    done: bool = False
    cut: bool = False  # max_deltas reached
    progressed: bool = False
    delta_count: int = 0
    finish_reason: str | None = None
    usage: dict[str, int] | None = None

    def texts(self, events: list[ServerSentEvent]) -> list[str]:
        """The text deltas of these events, up to ``[DONE]`` or ``max_deltas``."""
        texts = []
        room = math.inf if self.max_deltas is None else self.max_deltas - self.delta_count
        for event in events:
            if event.data == "[DONE]":
                self.done = True
                break
            if event.event == "error":
                raise errors.reported(self.origin, _error_event_text(event.data))
            text = self._event_text(event.data)
            if text:
                texts.append(text)
                if len(texts) >= room:
                    self.cut = True
                    self.finish_reason = "length"
                    break
        self.delta_count += len(texts)
        return texts

    async def whole_text(self, body: bytes) -> str:
        """A whole JSON answer (``stream: false`` upstream); a large one is parsed off the loop."""
        try:
            if len(body) > OFF_LOOP_SIZE:
                payload = await asyncio.to_thread(load_json, body)
            else:
                payload = load_json(body)
        except TooManyValues:
            raise errors.too_many_values(self.origin, "the JSON answer", MAX_JSON_VALUES) from None
        except (ValueError, RecursionError):
            raise errors.not_json(self.origin, body[:errors.BODY_EXCERPT * 8].decode(errors="replace")) from None
        text = self._read(payload)
        self.delta_count = int(bool(text))
        if text and self.max_deltas == 1:  # g4f's client would stop after this one chunk
            self.finish_reason = "length"
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
            payload = load_json(data)
        except json.JSONDecodeError:
            # Seen upstream: stray non-JSON lines between good events. Skip them,
            # and log only the size: the line may quote the user's message.
            debug.log(f"AutonomousAI: skipped a malformed event of {len(data)} characters from {self.origin.endpoint}")
            return ""
        except TooManyValues:
            raise errors.too_many_values(self.origin, "an event", MAX_JSON_VALUES) from None
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
        if chunk.finish_reason:
            self.finish_reason = chunk.finish_reason
        if chunk.usage:
            self.usage = chunk.usage
        if chunk.text or chunk.role or chunk.finish_reason or chunk.usage:
            self.progressed = True
        return chunk.text


def _error_event_text(data: str) -> Any:
    """What an ``event: error`` says: its JSON's error or message, else its text."""
    try:
        payload = load_json(data)
    except (ValueError, RecursionError, TooManyValues):
        return data
    if isinstance(payload, dict):
        return payload.get("error") or payload
    return payload


async def read_answer(
    response: aiohttp.ClientResponse, origin: Origin, deadline: Deadline, stream: bool, join: bool,
    max_tokens: int | None,
) -> AsyncIterator[Any]:
    """The answer as str deltas (one str when not ``stream``), then FinishReason and Usage.

    With ``join``, the deltas decoded from one slice come as one str: they
    arrived at the same instant, so nothing is held back, and a consumer that
    pays per chunk (g4f's client builds objects per chunk) pays once. With
    ``max_tokens``, the answer ends after that many deltas, with finish reason
    "length". Raises only g4f errors (TimeoutError for a deadline); the caller
    closes the response.
    """
    state = AnswerState(origin, max_tokens)
    try:
        body = Body(response, origin, deadline)
        streaming, block = await _open(response, body)
        if not streaming:
            yield await state.whole_text(block)
        else:
            state.streaming = True
            decoder = SSEDecoder()
            # stream=False: the texts, given as one at the end. One buffer, not a
            # list of deltas: a str per one-character delta costs 50 bytes or more.
            held = io.StringIO()
            held_size = 0
            while True:
                ended = not block
                texts = _texts(state, decoder, block)
                # Nothing of this read may stay alive while the next one waits: with
                # hundreds of open streams, a kept block and its events add up.
                del block
                if state.progressed:  # some event carried a part of an answer (all with text do)
                    if not stream:
                        held_size += sum(map(len, texts))
                        if held_size > MAX_ANSWER_SIZE:
                            raise errors.text_too_long(origin, MAX_ANSWER_SIZE)
                        held.writelines(texts)
                    elif join:
                        if texts:
                            yield "".join(texts)
                    else:
                        for text in texts:
                            yield text
                    state.progressed = False
                    deadline.progress()  # after the consumer had the texts: its time is not the upstream's
                del texts
                if state.cut:
                    response.close()  # the rest is not wanted: the connection cannot be reused
                    break
                if state.done:
                    await _finish_body(response)
                    break
                if ended:
                    break
                block = await body.next()
            if held_size:
                yield held.getvalue()
    except Expired:
        raise deadline.error(origin, state.delta_count if state.streaming else None) from None
    except TRANSPORT_ERRORS as error:
        raise errors.broke_off(origin, error, state.delta_count if state.streaming else None) from None
    except SSEError as error:
        raise errors.oversized_event(origin, error) from None
    except BodyError as error:
        raise error.error from None
    for item in state.closing_items():
        yield item


def _texts(state: AnswerState, decoder: SSEDecoder, block: bytes) -> list[str]:
    """The text deltas of one read (b"": the end of the body), fed to the decoder FEED_SIZE bytes at a time."""
    if not block:
        return state.texts(decoder.close())
    texts: list[str] = []
    start = 0
    while start < len(block):
        # Cut after a blank line where there is one: the decoder's fast path takes whole events.
        cut = block.rfind(b"\n\n", start, start + FEED_SIZE)
        end = cut + 2 if cut >= 0 else start + FEED_SIZE
        events = decoder.feed(block[start:end])
        start = end
        if events:
            texts += state.texts(events)
            if state.done or state.cut:
                break
    return texts


async def _open(response: aiohttp.ClientResponse, body: Body) -> tuple[bool, bytes]:
    """What the answer is: (True, the first bytes of an event stream) or (False, a whole JSON body).

    Anything else (an error status, a web page, garbage) raises its g4f error.
    A body declared an event stream, or starting like one, is read as events,
    whatever else its content type says.
    """
    if response.status >= 300:
        raise await _failure(response, body, b"")
    head = await body.next()
    if response.content_type == "text/event-stream" or wire.looks_like_events(head):
        return True, head
    if wire.looks_like_json(response.content_type, head):
        whole = await _read_body(body, MAX_ANSWER_SIZE + 1, head)  # one more: too large
        if len(whole) > MAX_ANSWER_SIZE:
            raise errors.json_too_large(body.origin, MAX_ANSWER_SIZE)
        return False, whole
    raise await _failure(response, body, head)


async def read_up_to(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body's first ``limit`` decoded bytes (all of it if shorter); the rest stays unread.

    Decoded as :class:`Body` decodes, with no deadline: the caller bounds the
    request's time. Raises :class:`BodyError` (with its g4f error) for a body
    it cannot decode.
    """
    return await _read_body(Body(response, Origin(wire.redact_url(str(response.url)))), limit, b"")


async def _read_body(body: Body, limit: int, head: bytes) -> bytes:
    """``head`` (what was read already) and the next decoded bytes of ``body``, up to ``limit`` in all."""
    buffer = bytearray(head)
    while len(buffer) < limit:
        block = await body.next()
        if not block:
            break
        buffer += block
    return bytes(buffer[:limit])


async def _failure(response: aiohttp.ClientResponse, body: Body, head: bytes) -> Exception:
    """The g4f error for a status or body that is no answer, from the first ERROR_BODY_LIMIT bytes."""
    try:
        raw = await _read_body(body, ERROR_BODY_LIMIT, head)
    except BodyError:
        if response.status < 300:
            raise
        raw = head  # an error status is named even when its body cannot be decoded
    text = raw.decode(errors="replace")
    location = response.headers.get(hdrs.LOCATION)
    return errors.http_status(body.origin, response.status, response.content_type, text, location)


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
        # One read: the end of the body (b"", or a last comment with it); anything longer is not waited for.
        await asyncio.wait_for(content.read(READ_SIZE), END_GRACE)
    except (asyncio.TimeoutError, *TRANSPORT_ERRORS):
        pass  # the answer is complete; only the connection is not reused
