"""Incremental decoder for ``text/event-stream`` bodies.

Pure: bytes go in, :class:`ServerSentEvent` objects come out; no sockets, no
``await``. The transport feeds whatever chunks the network delivers, so the
decoder must give the same events for any way the same bytes are split.

It follows the WHATWG event-stream rules: LF, CRLF or CR end a line; a line
starting with ``:`` is a comment; ``field: value`` loses one leading space of
the value; several ``data`` lines join with ``\\n``; a blank line ends an event.
Unlike a browser it also keeps a last event that has no blank line after it
(see :meth:`SSEDecoder.close`), because servers do end streams that way.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["ServerSentEvent", "SSEDecoder", "SSEError", "DEFAULT_MAX_EVENT_SIZE"]

# Large enough for any real answer (a 1 MiB event is routine for images in
# text), small enough that a server sending an endless line cannot eat memory.
DEFAULT_MAX_EVENT_SIZE = 32 * 1024 * 1024


class SSEError(ValueError):
    """The only error the decoder raises: an event or line over the size limit."""


class ServerSentEvent:
    """One dispatched event. ``data`` is the joined ``data`` lines."""

    __slots__ = ("data", "event", "id", "retry")

    def __init__(self, data: str, event: str = "message", id: str = "", retry: int | None = None) -> None:
        self.data = data
        self.event = event
        self.id = id
        self.retry = retry

    def json(self) -> Any:
        return json.loads(self.data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return (self.data, self.event, self.id, self.retry) == (other.data, other.event, other.id, other.retry)

    def __repr__(self) -> str:
        return f"ServerSentEvent(data={self.data!r}, event={self.event!r}, id={self.id!r}, retry={self.retry!r})"


class SSEDecoder:
    """Feed bytes with :meth:`feed`, finish with :meth:`close`.

    Work is linear in the input: a partial line waits in one ``bytearray`` and
    a chunk without a line end is only appended, never rescanned, so a huge
    event arriving one byte at a time costs no more than arriving whole.
    """

    def __init__(self, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        self.max_event_size = max_event_size
        self._partial = bytearray()  # bytes of the current, unfinished line
        self._cr_pending = False  # last chunk ended in CR: a leading LF next is part of it
        self._data: list[str] = []
        self._data_size = 0
        self._event = ""
        self._last_id = ""
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode one chunk; return the events it completed (often none)."""
        if not chunk:
            return []
        if self._cr_pending:
            self._cr_pending = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
                if not chunk:
                    return []
        has_cr = b"\r" in chunk
        if not has_cr and b"\n" not in chunk:
            self._partial += chunk
            self._check_size(len(self._partial))
            return []
        if self._partial:
            self._partial += chunk
            buffer = bytes(self._partial)
            self._partial.clear()
        else:
            buffer = chunk
        if has_cr:
            # The CR may be the first half of a CRLF split across chunks.
            self._cr_pending = buffer.endswith(b"\r")
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        tail = lines.pop()
        if tail:
            self._partial += tail
            self._check_size(len(tail))
        events: list[ServerSentEvent] = []
        for line in lines:
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[ServerSentEvent]:
        """End of input: finish a last line and event that had no terminator."""
        events: list[ServerSentEvent] = []
        if self._partial:
            line = bytes(self._partial)
            self._partial.clear()
            self._process_line(line)
        event = self._dispatch()
        if event is not None:
            events.append(event)
        self._cr_pending = False
        return events

    def _check_size(self, size: int) -> None:
        if self._data_size + size > self.max_event_size:
            limit = self.max_event_size
            self._partial.clear()
            self._data.clear()
            self._data_size = 0
            raise SSEError(f"event-stream event larger than {limit} bytes")

    def _process_line(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        # Fast path: nearly every line of a chat stream is "data: {...}".
        if line.startswith(b"data: "):
            self._append_data(line[6:].decode("utf-8", "replace"))
            return None
        if line[:1] == b":":
            return None
        text = line.decode("utf-8", "replace")
        field, colon, value = text.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._append_data(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._last_id = value
        elif field == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
        # Any other field is ignored, as the standard says.
        return None

    def _append_data(self, value: str) -> None:
        self._check_size(len(value) + 1)
        self._data.append(value)
        self._data_size += len(value) + 1

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = ServerSentEvent("\n".join(self._data), self._event or "message", self._last_id, self._retry)
        self._data = []
        self._data_size = 0
        self._event = ""
        return event
