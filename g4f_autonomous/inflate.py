"""Content-Encoding decoders that never give more than a set number of bytes per step.

Pure: compressed bytes go in, decoded bytes come out; no sockets, no ``await``.
aiohttp would inflate a whole network read in one call, whatever it inflates
to (64 KiB of gzip can be 64 MiB of text), and hold the event loop meanwhile,
so the provider turns its decompression off and decodes here, in slices, with
the event loop free between them.

gzip and deflate come from the standard library. br needs the ``brotli``
module with ``output_buffer_limit`` (brotli 1.2 on): an older one, or none,
cannot be bounded, so br is then neither advertised (:data:`ACCEPT_ENCODING`)
nor decoded (:func:`decoder_for` raises :class:`UnsupportedEncoding`).
"""

from __future__ import annotations

import zlib
from typing import Protocol

__all__ = ["ACCEPT_ENCODING", "Decoder", "UnsupportedEncoding", "decoder_for"]


class UnsupportedEncoding(ValueError):
    """A Content-Encoding this module cannot decode with a bound on its output."""


class Decoder(Protocol):
    def feed(self, data: bytes, limit: int) -> bytes:
        """Take ``data`` (only when :attr:`pending` is false) and give at most about ``limit`` bytes.

        About: brotli grows its output 32 KiB at a time, so br may give up to
        ``limit`` + 32 KiB; gzip and deflate never more than ``limit``.
        """

    @property
    def pending(self) -> bool:
        """Output is still owed for input already taken: call :meth:`feed` with b"" first."""


_GZIP = 31  # zlib's wbits for a gzip wrapper: 16 + the largest window, 15


class _Zlib:
    """gzip (several members too) or deflate (zlib-wrapped or raw, as servers send both)."""

    __slots__ = ("_name", "_inflater", "_head", "_tail", "_more")

    def __init__(self, name: str) -> None:
        self._name = name  # "gzip" or "deflate"
        self._inflater: zlib._Decompress | None = zlib.decompressobj(_GZIP) if name == "gzip" else None
        self._head = b""  # a first byte too little to go on: of deflate (wrapped or raw?), of a gzip member's magic
        self._tail = b""  # input zlib has not taken yet
        self._more = False  # the last call filled its limit before the end: output may be waiting inside zlib

    @property
    def pending(self) -> bool:
        return bool(self._tail) or self._more

    def feed(self, data: bytes, limit: int) -> bytes:
        data, self._head = self._head + self._tail + data, b""
        if self._inflater is None:
            if len(data) < 2:
                self._head = data
                return b""
            # RFC 9110's deflate is zlib-wrapped; some servers send raw deflate. The wrapper's
            # first two bytes name method 8 and are a multiple of 31 as a big-endian number.
            wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._inflater = zlib.decompressobj(15 if wrapped else -15)
        if self._inflater.eof:  # what followed the end in earlier input was settled then (see below)
            data = self._next_member(data)
            if not data:
                return b""
        inflater = self._inflater
        try:
            out = inflater.decompress(data, limit)
        except zlib.error as error:
            raise ValueError(f"the {self._name} body is corrupt ({error})") from None
        self._more = len(out) >= limit and not inflater.eof
        # After the end, what follows is in unused_data (unconsumed_tail may repeat it).
        self._tail = self._next_member(inflater.unused_data) if inflater.eof else inflater.unconsumed_tail
        return out

    def _next_member(self, rest: bytes) -> bytes:
        """After one gzip member: the next one, if what follows is one; anything else is ignored."""
        if self._name == "gzip" and rest.startswith(b"\x1f\x8b"):
            self._inflater = zlib.decompressobj(_GZIP)
            return rest
        if rest == b"\x1f":
            self._head = rest  # the first byte of a next gzip member's magic: the second is in the next read
        return b""


def _bounded_brotli() -> type | None:
    """brotli's Decompressor, if it can bound its output (brotli 1.2 on)."""
    try:
        import brotli

        brotli.Decompressor().process(b"", output_buffer_limit=1)
    except Exception:  # noqa: BLE001 - none, no Decompressor, no output_buffer_limit (before 1.2), broken: not relied on
        return None
    return brotli.Decompressor


_BROTLI = _bounded_brotli()


class _Brotli:
    __slots__ = ("_decompressor", "_more")

    def __init__(self, decompressor: type) -> None:
        self._decompressor = decompressor()
        self._more = False  # the last call filled its limit before the end: output may be waiting inside brotli

    @property
    def pending(self) -> bool:
        # brotli takes new input only once it has taken all of the last input; even then
        # it may still owe output (can_accept_more_data() is True with 32 KiB more inside),
        # which would be lost at the end of the body if nobody asked for it.
        return self._more or not self._decompressor.can_accept_more_data()

    def feed(self, data: bytes, limit: int) -> bytes:
        if self._decompressor.is_finished():
            return b""  # anything after the end of the stream is ignored, as for gzip
        try:
            out = self._decompressor.process(data, output_buffer_limit=limit)
        except Exception as error:  # brotli.error, which brotlicffi names differently
            raise ValueError(f"the br body is corrupt ({type(error).__name__})") from None
        self._more = len(out) >= limit and not self._decompressor.is_finished()
        return out


ACCEPT_ENCODING = "gzip, deflate, br" if _BROTLI is not None else "gzip, deflate"


def decoder_for(content_encoding: str | None) -> Decoder | None:
    """The decoder for a Content-Encoding header; None for none (or identity)."""
    name = (content_encoding or "").strip().lower()
    if name in ("", "identity"):
        return None
    if name in ("gzip", "x-gzip"):
        return _Zlib("gzip")
    if name == "deflate":
        return _Zlib(name)
    if name == "br" and _BROTLI is not None:
        return _Brotli(_BROTLI)
    if name == "br":
        raise UnsupportedEncoding("br (needs the brotli module, version 1.2 or newer, to decode with a bound)")
    shown = name[:40] + ("…" if len(name) > 40 else "")
    raise UnsupportedEncoding(f"{shown!r} (only {ACCEPT_ENCODING} are decoded)")
