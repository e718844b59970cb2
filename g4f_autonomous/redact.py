"""Hiding the user's words in error texts, in time linear in the prompt.

Servers echo bad input in their errors, and an error message quotes up to
200 characters of an upstream body, so an error text may carry the user's
messages into logs and tracebacks. :class:`Redactor` hides every run of
QUOTE_RUN or more characters that an error text shares with a *source form*
of what the request sent:

* each message text, whitespace collapsed as ``errors.excerpt`` does;
* its JSON string form, as a server echoing JSON shows it (``\\n``,
  ``\\"``, ``\\u00e9``), both with and without ``ensure_ascii``, collapsed
  the same way and without the surrounding quotes;
* the base64 ``messages`` field of the request body, as sent.

Method. The error text is short (an excerpt), the sources can be megabytes,
so the sources are never indexed (that makes an object per position, far
too slow in Python): the text is. Any run of QUOTE_RUN characters of the
text contains a piece of _ANCHOR characters starting at a multiple of _STEP
(10 = 5 + 6 - 1), so each source is searched for those few pieces with
``str.find`` (a C scan), and each place a piece occurs is checked for the
QUOTE_RUN windows around it, then widened to the whole shared run. A piece
that occurs too often switches to searching its few windows directly, which
bounds the work per piece to a few scans. Work is skipped where the text is
already hidden, where a source cannot hold the piece (base64 has a small
alphabet), and the JSON forms are only built in full when the text has a
backslash: without one, a window of a JSON form is a window of the plain
form, except next to escaped whitespace at a message's very start or end,
which is covered by building those two ends alone.

Nothing happens when a Redactor is made (one is made per request); the
source forms are built on the first :meth:`Redactor.redact` and kept.
"""

from __future__ import annotations

import json
import re
from typing import Any

# An error text sharing this many characters in a row with a message is quoting it.
QUOTE_RUN = 10
REDACTED = "[redacted]"

_ANCHOR = 5
_STEP = QUOTE_RUN - _ANCHOR + 1

# What str.split() splits on, besides the space itself (checked against
# str.isspace over all of Unicode in the tests).
_ASCII_SPACES = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f"
_OTHER_SPACES = (
    "\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_BASE64_RUN = re.compile(f"[A-Za-z0-9+/=]{{{QUOTE_RUN}}}")
_HIDDEN_RUN = re.compile(rb"\x01+")

# Which windows of the text a kind of source can hide. A JSON form only
# counts where the quote shows an escape: elsewhere it is the plain form,
# give or take a letter of an escape or a space next to one, never 10 of
# the user's characters in a row.
_WANTED = {
    "plain": lambda window: True,
    "json": lambda window: "\\" in window,
    "base64": _BASE64.issuperset,
}


class Redactor:
    """Hides, in error texts, what one request sent.

    ``messages`` are the wire messages as sent (``{"role", "content"}``
    dicts, content a string or a list of parts with ``text`` parts);
    ``encoded`` is the base64 ``messages`` field of the body, as sent.
    """

    __slots__ = ("_messages", "_encoded", "_plain", "_json")

    def __init__(self, messages: list[dict[str, Any]], encoded: str = "") -> None:
        self._messages = messages
        self._encoded = encoded
        self._plain: list[str] | None = None
        self._json: list[str] | None = None

    def redact(self, text: str) -> str:
        """``text`` with every run of QUOTE_RUN or more characters shared with a source form hidden.

        Each hidden run becomes one REDACTED marker; a run of QUOTE_RUN - 1
        shared characters is kept. A text quoting nothing comes back as is.
        """
        if len(text) < QUOTE_RUN:
            return text
        hidden = bytearray(len(text))
        for source in self._sources(text):
            _mark_shared(text, source, hidden)
        return _hide(text, hidden)

    # --- source forms, built on first use ---------------------------------

    def _sources(self, text: str) -> list[tuple[str, str]]:
        """(source, kind) pairs worth searching for this text."""
        sources = [(source, "plain") for source in self._plain_forms()]
        if "\\" in text:
            sources += [(source, "json") for source in self._json_forms()]
        if self._encoded and _BASE64_RUN.search(text):
            sources.append((self._encoded, "base64"))
        return [(source, kind) for source, kind in sources if len(source) >= QUOTE_RUN]

    def _texts(self) -> list[str]:
        return message_texts(self._messages)

    def _plain_forms(self) -> list[str]:
        if self._plain is None:
            self._plain = [collapse(text) for text in self._texts()]
        return self._plain

    def _json_forms(self) -> list[str]:
        if self._json is None:
            forms = []
            for text in self._texts():
                # Only the escapes matter (see _WANTED): a text without any has no JSON form to search.
                utf8 = collapse(_json_inner(text, False))
                if "\\" in utf8:
                    forms.append(utf8)
                if not text.isascii():
                    forms.append(collapse(_json_inner(text, True)))
            self._json = forms
        return self._json


def message_texts(messages: list[dict[str, Any]]) -> list[str]:
    """The texts of wire messages (strings and ``text`` parts)."""
    texts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(
                part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    return texts


def collapse(text: str) -> str:
    """``" ".join(text.split())``, by whole-string replaces.

    Splitting makes an object per word: about 130 ms for 10 MB of prose,
    where these C-level scans take a few milliseconds.
    """
    spaces = _ASCII_SPACES if text.isascii() else _ASCII_SPACES + _OTHER_SPACES
    for space in spaces:
        if space in text:
            text = text.replace(space, " ")
    # Each pass halves every run of spaces; long runs go first.
    for run in ("        ", "  "):
        while run in text:
            text = text.replace(run, " ")
    return text.strip(" ")


def _json_inner(text: str, ensure_ascii: bool) -> str:
    return json.dumps(text, ensure_ascii=ensure_ascii)[1:-1]


def _mark_shared(text: str, source_and_kind: tuple[str, str], hidden: bytearray) -> None:
    """Set ``hidden`` over every run of QUOTE_RUN or more characters of ``text`` found in the source."""
    source, kind = source_and_kind
    wanted = _WANTED[kind]
    last_window = len(text) - QUOTE_RUN
    # More places than this for one piece cost more than searching its windows.
    too_many = len(source) // 300 + 16
    for anchor_at in range(0, len(text) - _ANCHOR + 1, _STEP):
        first = max(0, anchor_at - (QUOTE_RUN - _ANCHOR))
        last = min(anchor_at, last_window)
        if first > last or 0 not in hidden[first:last + QUOTE_RUN]:
            continue  # no window holds this piece, or all it could hide is hidden
        anchor = text[anchor_at:anchor_at + _ANCHOR]
        windows = [(start, text[start:start + QUOTE_RUN]) for start in range(first, last + 1)]
        windows = [(start, window) for start, window in windows if wanted(window)]
        if not windows or (kind == "base64" and not _BASE64.issuperset(anchor)):
            continue  # nothing to find, or the piece cannot occur: spares a scan
        seen = 0
        at = source.find(anchor)
        while at >= 0 and windows:
            seen += 1
            if seen > too_many:
                for start, window in windows:
                    found = source.find(window)
                    if found >= 0:
                        _mark_run(text, start, source, found, hidden, kind)
                break
            for start, window in windows:
                found = at - (anchor_at - start)
                if found >= 0 and source.startswith(window, found):
                    _mark_run(text, start, source, found, hidden, kind)
            windows = [(start, window) for start, window in windows if 0 in hidden[start:start + QUOTE_RUN]]
            at = source.find(anchor, at + 1)


def _mark_run(text: str, start: int, source: str, found: int, hidden: bytearray, kind: str) -> None:
    """Hide the whole run shared around ``text[start:]`` == ``source[found:]`` (QUOTE_RUN long).

    Hiding the whole run at once spares the later pieces inside it their
    scans. A JSON form hides only windows with an escape, so only the window.
    """
    if kind == "json":
        hidden[start:start + QUOTE_RUN] = b"\1" * QUOTE_RUN
        return
    before = _common_length(text[:start][::-1], source[max(0, found - start):found][::-1])
    end = start + QUOTE_RUN
    after = _common_length(text[end:], source[found + QUOTE_RUN:found + QUOTE_RUN + len(text) - end])
    hidden[start - before:end + after] = b"\1" * (before + QUOTE_RUN + after)


def _common_length(a: str, b: str) -> int:
    """Length of the common prefix of ``a`` and ``b``, by halving (slice compares run in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _hide(text: str, hidden: bytearray) -> str:
    pieces, done = [], 0
    for run in _HIDDEN_RUN.finditer(hidden):
        pieces += [text[done:run.start()], REDACTED]
        done = run.end()
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)
