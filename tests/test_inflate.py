"""The bounded Content-Encoding decoders (g4f_autonomous/inflate.py): exact output, the bound on each step, the
end of a stream, corrupt input, and which encodings are offered."""

from __future__ import annotations

import gzip
import sys
import types
import zlib

import brotli
import pytest

from g4f_autonomous import inflate
from g4f_autonomous.inflate import UnsupportedEncoding, decoder_for

# brotli grows its output buffer by this much at a time: a br step may give that much over its limit.
BROTLI_BLOCK = 2**15
TEXT = b"".join(b'data: {"choices": [{"delta": {"content": "token %d "}}]}\n\n' % index for index in range(5000))


def deflate(data: bytes, wbits: int, level: int = 6) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


def packed(name: str, data: bytes) -> bytes:
    if name in ("gzip", "x-gzip"):
        return gzip.compress(data)
    if name == "deflate":
        return deflate(data, 15)
    return brotli.compress(data, quality=5)  # the default, 11, takes seconds for TEXT


def run(decoder: inflate.Decoder, data: bytes, chunk: int, limit: int) -> tuple[bytes, int]:
    """Everything decoded from ``data`` fed in pieces of ``chunk`` bytes, and the largest step's output.

    New input is given only when nothing is pending, as the Decoder protocol asks.
    """
    out, largest = [], 0
    for start in range(0, len(data), chunk):
        while decoder.pending:
            piece = decoder.feed(b"", limit)
            largest = max(largest, len(piece))
            out.append(piece)
        piece = decoder.feed(data[start:start + chunk], limit)
        largest = max(largest, len(piece))
        out.append(piece)
    while decoder.pending:
        piece = decoder.feed(b"", limit)
        largest = max(largest, len(piece))
        out.append(piece)
    return b"".join(out), largest


# --- which encodings -------------------------------------------------------------

@pytest.mark.parametrize("header", [None, "", "identity", " Identity ", "IDENTITY"])
def test_no_encoding_needs_no_decoder(header):
    assert decoder_for(header) is None


def test_the_installed_brotli_bounds_its_output_so_br_is_offered():
    assert inflate.ACCEPT_ENCODING == "gzip, deflate, br"


@pytest.mark.parametrize("header", ["gzip", "x-gzip", " GZIP ", "deflate", "Deflate", "br", "BR"])
def test_each_offered_encoding_decodes_whole(header):
    name = header.strip().lower()
    decoder = decoder_for(header)
    assert decoder is not None
    assert run(decoder, packed(name, TEXT), 1000, 4096)[0] == TEXT


@pytest.mark.parametrize("header, message", [
    ("zstd", "'zstd' (only gzip, deflate, br are decoded)"),
    ("gzip, br", "'gzip, br' (only gzip, deflate, br are decoded)"),
    ("x" * 41, f"'{'x' * 40}…' (only gzip, deflate, br are decoded)"),
    ("y" * 40, f"'{'y' * 40}' (only gzip, deflate, br are decoded)"),
])
def test_any_other_encoding_is_refused_naming_it_shortened(header, message):
    with pytest.raises(UnsupportedEncoding) as caught:
        decoder_for(header)
    assert str(caught.value) == message
    assert isinstance(caught.value, ValueError)


def test_without_a_bounded_brotli_br_is_neither_offered_nor_decoded(monkeypatch):
    monkeypatch.setattr(inflate, "_BROTLI", None)
    with pytest.raises(UnsupportedEncoding) as caught:
        decoder_for("br")
    assert str(caught.value) == "br (needs the brotli module, version 1.2 or newer, to decode with a bound)"


class _OldDecompressor:
    def process(self, data):  # brotli before 1.2: no output_buffer_limit
        return data


class _BrokenDecompressor:
    def process(self, data, output_buffer_limit=None):
        raise RuntimeError("broken build")


@pytest.mark.parametrize("module", [
    None,  # not installed: importing it fails
    types.SimpleNamespace(),  # no streaming Decompressor at all
    types.SimpleNamespace(Decompressor=_OldDecompressor),
    types.SimpleNamespace(Decompressor=_BrokenDecompressor),
])
def test_a_brotli_that_cannot_bound_its_output_is_not_used(monkeypatch, module):
    monkeypatch.setitem(sys.modules, "brotli", module)
    assert inflate._bounded_brotli() is None


def test_a_brotli_that_bounds_its_output_is_used():
    assert inflate._bounded_brotli() is brotli.Decompressor


# --- the bound on each step --------------------------------------------------------

@pytest.mark.parametrize("name", ["gzip", "deflate", "br"])
@pytest.mark.parametrize("limit", [1, 7, 4096])
def test_no_step_gives_more_than_the_limit(name, limit):
    size = 2**20 if limit > 100 else 2**14  # 1 MiB of zeros is a few KiB packed
    decoder = decoder_for(name)
    assert decoder is not None
    out, largest = run(decoder, packed(name, b"\0" * size), 2**16, limit)
    assert out == b"\0" * size
    if name == "br":
        assert limit <= largest <= limit + BROTLI_BLOCK
    else:
        assert largest == limit  # full steps, each of exactly the limit, while output is owed


@pytest.mark.parametrize("name", ["gzip", "deflate", "br"])
def test_output_owed_for_taken_input_is_pending_until_given(name):
    decoder = decoder_for(name)
    assert decoder is not None
    assert not decoder.pending
    first = decoder.feed(packed(name, b"z" * 200_000), 100)
    assert 100 <= len(first) <= 100 + BROTLI_BLOCK and decoder.pending
    rest = []
    while decoder.pending:
        rest.append(decoder.feed(b"", 100))
    assert first + b"".join(rest) == b"z" * 200_000
    assert decoder.feed(b"", 100) == b""


@pytest.mark.parametrize("name", ["gzip", "deflate"])
def test_a_step_that_ends_the_stream_exactly_at_the_limit_is_not_pending(name):
    # The output fills the limit, but the stream is over: nothing can be left inside zlib.
    decoder = decoder_for(name)
    assert decoder is not None
    assert decoder.feed(packed(name, b"q" * 100), 100) == b"q" * 100
    assert not decoder.pending
    assert decoder.feed(b"", 100) == b""


def test_output_owed_once_all_input_is_taken_is_pending():
    # Raw deflate has no trailer to leave untaken: fed a byte at a time, its last byte is taken while the
    # long run of zeros it ends is still inside zlib, and only pending says so.
    decoder = decoder_for("deflate")
    assert decoder is not None
    assert run(decoder, deflate(b"\0" * 2**16, -15), 1, 100)[0] == b"\0" * 2**16


# --- where a stream ends ------------------------------------------------------------

def test_gzip_members_one_after_another_all_decode():
    data = gzip.compress(b"one ") + gzip.compress(b"two ") + gzip.compress(b"three")
    for chunk in (1, 5, len(data)):
        decoder = decoder_for("gzip")
        assert decoder is not None
        assert run(decoder, data, chunk, 3)[0] == b"one two three"


@pytest.mark.parametrize("trailer", [b"\0\0\0\0", b"junk after the end", b"\x1f"])
def test_bytes_after_a_gzip_stream_that_are_no_member_are_ignored(trailer):
    for chunk in (1, 4, 1000):
        decoder = decoder_for("gzip")
        assert decoder is not None
        assert run(decoder, gzip.compress(b"body") + trailer, chunk, 64)[0] == b"body", chunk


def test_bytes_after_a_deflate_stream_are_ignored_even_a_gzip_header():
    data = deflate(b"body", 15) + gzip.compress(b"more")
    for chunk in (1, 3, 1000):
        decoder = decoder_for("deflate")
        assert decoder is not None
        assert run(decoder, data, chunk, 64)[0] == b"body", chunk


def test_br_output_still_inside_brotli_once_it_takes_input_again_is_pending():
    # brotli says it can take more input while it still holds output: the end of the body must not lose it.
    decoder = decoder_for("br")
    assert decoder is not None
    assert run(decoder, packed("br", b"\0" * 2**20), 2**20, 2**14)[0] == b"\0" * 2**20


def test_a_br_step_that_fills_its_limit_exactly_is_pending():
    decoder = decoder_for("br")
    assert decoder is not None
    limit = BROTLI_BLOCK - 16  # what brotli gives in one step once more is owed
    first = decoder.feed(packed("br", b"\0" * 2**20), limit)
    assert len(first) == limit and decoder.pending
    assert run(decoder, b"", 1, limit)[0] == b"\0" * (2**20 - limit)


def test_reads_after_the_end_of_a_br_stream_are_ignored():
    decoder = decoder_for("br")
    assert decoder is not None
    assert run(decoder, brotli.compress(b"body"), 1000, 64)[0] == b"body"
    assert decoder.feed(b"trailing junk", 64) == b""
    assert not decoder.pending


@pytest.mark.parametrize("chunk", [1, 2, 3, 1000])
def test_deflate_raw_or_zlib_wrapped_is_told_apart_from_its_first_two_bytes_however_split(chunk):
    for wbits in (15, -15):
        decoder = decoder_for("deflate")
        assert decoder is not None
        assert run(decoder, deflate(TEXT[:3000], wbits), chunk, 512)[0] == TEXT[:3000], wbits


def test_a_one_byte_deflate_start_waits_for_the_second_byte():
    data = deflate(b"hello", 15)
    decoder = decoder_for("deflate")
    assert decoder is not None
    assert decoder.feed(data[:1], 64) == b""
    assert not decoder.pending
    assert decoder.feed(data[1:], 64) == b"hello"


@pytest.mark.parametrize("data, text", [
    # A stored block whose first byte names method 8 (spare bits set), but 0x0805 is no multiple of 31.
    (b"\x08\x05\x00\xfa\xffhello\x01\x00\x00\xff\xff", b"hello"),
    # zlib's own raw output for this text starts 0x33 0xb5: a multiple of 31, but not method 8.
    (deflate(b"58 58 58 ", -15, level=1), b"58 58 58 "),
])
def test_raw_deflate_is_wrapped_only_if_both_header_checks_pass(data, text):
    decoder = decoder_for("deflate")
    assert decoder is not None
    assert run(decoder, data, 1000, 64)[0] == text


def test_a_zlib_stream_labelled_gzip_is_corrupt():
    decoder = decoder_for("gzip")
    assert decoder is not None
    with pytest.raises(ValueError, match="^the gzip body is corrupt"):
        run(decoder, deflate(b"body", 15), 1000, 64)


def test_raw_deflate_whose_first_bytes_look_like_a_zlib_method_but_fail_the_check_is_raw():
    # Raw deflate of a stored block starts 0x01 or 0x00; find a raw stream whose first byte has method 8
    # but whose first two bytes are not a multiple of 31: it must still be read as raw.
    for level in range(10):
        for text in (b"a", b"abc" * 50, TEXT[:500]):
            packer = zlib.compressobj(level, zlib.DEFLATED, -15)
            data = packer.compress(text) + packer.flush()
            decoder = decoder_for("deflate")
            assert decoder is not None
            assert run(decoder, data, 1000, 512)[0] == text


# --- corrupt input -------------------------------------------------------------------

def test_a_deflate_body_of_two_corrupt_bytes_is_corrupt():
    # Two bytes are enough to choose raw deflate, and these name a block type that does not exist.
    decoder = decoder_for("deflate")
    assert decoder is not None
    with pytest.raises(ValueError, match="^the deflate body is corrupt"):
        decoder.feed(b"\xff\xff", 64)


@pytest.mark.parametrize("name, data, message", [
    ("gzip", b"\x1f\x8b\x08\x00" + b"\xff" * 20, "the gzip body is corrupt ("),
    ("gzip", b"not gzip at all", "the gzip body is corrupt ("),
    ("deflate", b"\x78\x9c" + b"\xff" * 20, "the deflate body is corrupt ("),
    ("br", b"\xff" * 20, "the br body is corrupt (error)"),
])
def test_a_corrupt_body_is_a_value_error_naming_the_encoding(name, data, message):
    decoder = decoder_for(name)
    assert decoder is not None
    with pytest.raises(ValueError) as caught:
        run(decoder, data, 1000, 64)
    assert type(caught.value) is ValueError
    assert str(caught.value).startswith(message)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
