"""Incremental decoder for ``text/event-stream`` bodies.

Pure: bytes go in, :class:`ServerSentEvent` objects come out; no sockets, no
``await``. The transport feeds whatever chunks the network delivers, so the
decoder gives the same events for any way the same bytes are split.

It follows the WHATWG event-stream rules: LF, CRLF or CR end a line; one
leading UTF-8 byte order mark is ignored; a line starting with ``:`` is a
comment; ``field: value`` loses one leading space of the value; a line
without a colon is a field with an empty value; several ``data`` lines join
with ``\\n``; a blank line ends an event, which is dispatched only if it had
``data``; unknown fields are ignored; ``id`` and ``retry`` persist until
changed. Unlike a browser it also keeps a last event that has no blank line
after it (see :meth:`SSEDecoder.close`), because servers do end streams that
way. Invalid UTF-8 becomes U+FFFD instead of an error.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerSentEvent", "SSEDecoder", "SSEError", "DEFAULT_MAX_EVENT_SIZE"]

# Large enough for any real event (a chat delta is a few tokens; a 1 MiB event
# is routine for an image in text), small enough that a server sending an
# endless line cannot eat memory, and that parsing the largest event as JSON
# holds the event loop for milliseconds, not seconds.
DEFAULT_MAX_EVENT_SIZE = 4 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
# Byte values: `int in bytes` is a plain memchr, `bytes in bytes` costs more.
_LF, _CR, _COLON = 10, 13, 58
_DROPPED_LINE = b"-"  # stands for a line being dropped: not blank, its bytes not kept


class SSEError(ValueError):
    """The only error the decoder raises: an event over ``max_event_size``.

    The decoder has already dropped that event and decoded the rest of the
    chunk; ``events`` holds the good events the failing call completed, so a
    caller that wants to go on loses nothing but the oversized event.
    """

    def __init__(self, message: str, events: list[ServerSentEvent]) -> None:
        super().__init__(message)
        self.events = events


@dataclass(slots=True)
class ServerSentEvent:
    """One dispatched event. ``data`` is the joined ``data`` lines."""

    data: str
    event: str = "message"
    id: str = ""
    retry: int | None = None


class SSEDecoder:
    """Feed bytes with :meth:`feed`, finish with :meth:`close`.

    Work is linear in the input: an unfinished line waits in one
    ``bytearray`` that a chunk without a line end only appends to, so a huge
    event arriving one byte at a time costs no more than arriving whole.

    An event's size is the number of bytes of its lines (field names, values
    and comments, not the line ends). One over ``max_event_size`` is dropped
    without being buffered, up to the blank line that ends it, and the call
    that found it raises :class:`SSEError` once it has decoded the rest of its
    input; the decoder stays usable and goes on with the next event.
    """

    def __init__(self, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        self.max_event_size = max_event_size
        self._partial = bytearray()  # the unfinished last line (_DROPPED_LINE while one is dropped)
        self._at_start = True  # a byte order mark may still come
        self._bom_head = b""  # the start of the input while it is shorter than a byte order mark
        self._cr_pending = False  # last chunk ended in CR: a leading LF next is part of it
        self._size = 0  # bytes of the current event's finished lines: 0 between events
        self._dropping = False  # the current event is over max_event_size: skipped up to its blank line
        self._data: list[str] = []
        self._event = ""
        self._last_id = ""
        self._retry: int | None = None
        self._dropped = 0  # oversized events found by the current call

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode one chunk; return the events it completed (often none).

        Raises :class:`SSEError` if the chunk took an event over
        ``max_event_size``; the chunk is consumed all the same.
        """
        if self._at_start or self._cr_pending or _CR in chunk:
            chunk = self._normalize(chunk)
        events: list[ServerSentEvent] = []
        self._decode(chunk, events)
        if self._dropped:
            self._raise_dropped(events)
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of input: finish a last line and event that had no terminator.

        It never raises: the unfinished line was held only while its event
        fitted ``max_event_size`` (input shorter than a byte order mark, still
        held in _bom_head, cannot hold an event).
        """
        events: list[ServerSentEvent] = []
        if self._partial:
            line = bytes(self._partial)
            self._partial.clear()
            self._line(line, events)
        self._dispatch(events)
        return events

    def _normalize(self, chunk: bytes) -> bytes:
        """Strip a byte order mark at the start and turn CRLF and CR into LF."""
        if self._at_start and chunk:
            head = self._bom_head + chunk
            if len(head) < len(_BOM):
                # Too short to tell whether it is a split byte order mark; too short to complete an event too.
                self._bom_head = head
                return b""
            self._at_start = False
            chunk = head[len(_BOM) :] if head.startswith(_BOM) else head
        if self._cr_pending and chunk:
            self._cr_pending = False
            if chunk[0] == _LF:
                chunk = chunk[1:]
        if _CR in chunk:
            # The CR may be the first half of a CRLF split across chunks.
            self._cr_pending = chunk[-1] == _CR
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return chunk

    def _decode(self, chunk: bytes, events: list[ServerSentEvent]) -> None:
        start = 0
        if self._partial:
            end = chunk.find(b"\n")
            if end < 0:
                self._hold(chunk)
                return
            self._partial += chunk[:end]
            line = bytes(self._partial)
            self._partial.clear()
            self._line(line, events)
            start = end + 1
        # Line by line until the event in progress, if any, is finished.
        while self._size or self._dropping:
            end = chunk.find(b"\n", start)
            if end < 0:
                self._hold(chunk[start:])
                return
            self._line(chunk[start:end], events)
            start = end + 1
        # At the start of an event: whole events up to the last "\n\n", then a tail.
        last = chunk.rfind(b"\n\n", start)
        if last >= 0:
            self._events(chunk[start:last], events)
            start = last + 2
        if start < len(chunk):
            lines = chunk[start:].split(b"\n")
            for line in lines[:-1]:
                self._line(line, events)
            self._hold(lines[-1])

    def _events(self, block: bytes, events: list[ServerSentEvent]) -> None:
        """Decode ``block``: whole events joined by "\\n\\n" (the one after the last is cut off)."""
        if block[:6] == b"data: " and len(block) <= self.max_event_size:
            # Fast path for a chat stream, where every event is one "data: ..."
            # line: then no "\n" is left once the separators are cut out.
            # 20,000 chat events in 16 KiB blocks: 13 ms with it, 63 ms line by
            # line (json.loads of them alone: 171 ms).
            # Decoding before splitting is safe: U+FFFD replacement never
            # swallows an ASCII "\n".
            texts = block[6:].decode("utf-8", "replace").split("\n\ndata: ")
            if "\n" not in "".join(texts):
                last_id, retry = self._last_id, self._retry
                for text in texts:
                    events.append(ServerSentEvent(text, "message", last_id, retry))
                return
        for line in block.split(b"\n"):
            self._line(line, events)  # a blank line, between two events, dispatches the first
        self._dispatch(events)

    def _hold(self, piece: bytes) -> None:
        """Keep the start of an unfinished line, unless its event grows too big."""
        if not piece:
            return
        if not self._dropping and self._size + len(self._partial) + len(piece) <= self.max_event_size:
            self._partial += piece
            return
        self._drop_event()
        # A dropped line's bytes are not needed, only that a line (not a blank one) is open.
        self._partial[:] = _DROPPED_LINE

    def _line(self, line: bytes, events: list[ServerSentEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if self._dropping:
            return
        size = self._size + len(line)
        if size > self.max_event_size:
            self._drop_event()
            return
        self._size = size
        if line[:6] == b"data: ":
            self._data.append(line[6:].decode("utf-8", "replace"))
            return
        if line[0] == _COLON:
            return
        field, _, value = line.decode("utf-8", "replace").partition(":")
        if value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._last_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        # Any other field is ignored, as the standard says.

    def _drop_event(self) -> None:
        if not self._dropping:
            self._dropped += 1
            self._dropping = True
        self._data.clear()  # the event field needs no reset: an event without data is never dispatched

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        self._size = 0
        self._dropping = False
        if self._data:
            events.append(ServerSentEvent("\n".join(self._data), self._event or "message", self._last_id, self._retry))
            self._data = []
        self._event = ""

    def _raise_dropped(self, events: list[ServerSentEvent]) -> None:
        dropped, self._dropped = self._dropped, 0
        what = "an event" if dropped == 1 else f"{dropped} events"
        raise SSEError(f"event-stream: dropped {what} larger than max_event_size={self.max_event_size} bytes", events)
