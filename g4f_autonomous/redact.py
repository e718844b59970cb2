"""Hiding the user's words and the provider's credentials in error texts, in bounded time.

Servers echo bad input in their errors, and an error message quotes up to
200 characters of an upstream body, so an error text may carry the user's
messages into logs and tracebacks. :class:`Redactor` hides every run of
QUOTE_RUN or more characters that an error text shares with a *source form*
of what the request sent:

* the message texts, whitespace collapsed as ``errors.excerpt`` does;
* their JSON string forms, as a server echoing JSON shows them (``\\n``,
  ``\\"``, ``\\u00e9``), both with and without ``ensure_ascii``, collapsed
  the same way and without the surrounding quotes;
* the base64 ``messages`` field of the request body, as sent;
* the credentials the provider puts on the wire (user info of the base URL
  and of the proxy, and their ``Basic`` tokens): these are also hidden
  wherever they occur whole, however short.

The text is read as sent and, when it holds ``%`` or ``+``, URL-decoded too;
plain and JSON forms are compared case-insensitively (both sides casefolded),
the base64 forms exactly (base64 is case-sensitive).

Method. All messages of one form are joined into ONE source, separated by
``\\n``: a collapsed form holds no newline, and neither does the text as
searched (each of its whitespace runs is read as one space), so no match
spans two messages, and the cost does not grow with the number of messages.
The error text is short (an excerpt), the sources can be megabytes, so the
sources are never indexed: the text is. Any run of QUOTE_RUN characters of
the text contains a piece of _ANCHOR characters starting at a multiple of
_STEP (10 = 5 + 6 - 1), so each source is searched for those few pieces with
``str.find`` (a C scan), and each place a piece occurs is checked for the
QUOTE_RUN windows around it, then widened to the whole shared run.

Time is bounded, because errors are built on the event loop of a shared
server: one call stops scanning after REDACT_SECONDS and hides what it has
not checked (hiding too much is safe; holding the loop for seconds is not),
and builds the source forms (a one-time cost, kept for later calls) only if
that fits in the same time: a quote about a prompt too large for that
(about 3 M ASCII characters, 1 M others) is hidden whole. Requests below
_ALWAYS_SCANNED / _ALWAYS_PREPARED are never cut short, so their redaction
does not depend on the machine's speed. bench/redaction.py measures it all.

Nothing happens when a Redactor is made (one is made per request); the
source forms are built on the first :meth:`Redactor.redact` that needs them
and kept.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

# An error text sharing this many characters in a row with a message is quoting it.
QUOTE_RUN = 10
REDACTED = "[redacted]"
# How long one redact() call may hold the (shared) event loop. Past it, what
# is left unchecked is hidden; but small requests are never cut short, so
# that their redaction does not depend on the machine's speed: every call
# may scan _ALWAYS_SCANNED characters and build forms of _ALWAYS_PREPARED.
REDACT_SECONDS = 0.05
_ALWAYS_SCANNED = 8 * 2**20
_ALWAYS_PREPARED = 2**18
# What building the casefolded, collapsed plain form costs per source character
# (measured on the reference machine, first call less later call in
# bench/redaction.py's rows: 10-23 ns for
# ASCII; casefolding other text is far slower, 40-51 ns); a JSON form, twice that.
_PREP_SECONDS_ASCII = 15e-9
_PREP_SECONDS_OTHER = 45e-9
# A credential shorter than this is not hidden on its own (it would hide
# every "a" of a text for the password "a"); a run of QUOTE_RUN still is.
SECRET_MIN = 4

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
_PERCENT = re.compile(r"(?:%[0-9A-Fa-f]{2})+")

# Joins the raw texts before collapsing: a character no text holds and that
# collapsing leaves alone. It becomes JOIN, a newline, once collapsed. A lone
# surrogate is in no message that UTF-8 can encode (build_request refuses the
# others), but makes the joined string non-ASCII, where casefolding and
# collapsing are several times slower: ASCII texts are joined by the first
# control character they do not hold.
_RAW_JOIN = "\ud800"
_ASCII_JOINS = ("\x00", "\x01", "\x02", "\x03", "\x7f")
_RAW_JOIN_ESCAPED = "\\ud800"  # how json.dumps with ensure_ascii writes it
JOIN = "\n"

# Which windows of the text a kind of source can hide. A JSON form only
# counts where the quote shows an escape: elsewhere it is the plain form,
# give or take a letter of an escape or a space next to one, never 10 of
# the user's characters in a row.
_WANTED: dict[str, Callable[[str], bool]] = {
    "plain": lambda window: True,
    "json": lambda window: "\\" in window,
    "base64": _BASE64.issuperset,
}


class Redactor:
    """Hides, in error texts, what one request sent.

    ``messages`` are the wire messages as sent (``{"role", "content"}``
    dicts, content a string or a list of parts with ``text`` parts);
    ``encoded`` is the base64 ``messages`` field of the body, as sent;
    ``secrets`` are credentials the request carries (see :func:`credential_forms`).
    """

    __slots__ = ("_messages", "_encoded", "_secrets", "_raw", "_plain", "_json")

    def __init__(self, messages: list[dict[str, Any]], encoded: str = "", secrets: Iterable[str] = ()) -> None:
        self._messages = messages
        self._encoded = encoded
        self._secrets = tuple(secret for secret in secrets if secret)
        self._raw: _Joined | None = None
        self._plain: str | None = None
        self._json: list[str] | None = None

    def redact(self, text: str) -> str:
        """``text`` with every run of QUOTE_RUN or more characters shared with a source form hidden.

        Each hidden run becomes one REDACTED marker; a run of QUOTE_RUN - 1
        shared characters is kept. A text quoting nothing comes back as is.
        """
        if len(text) < min(QUOTE_RUN, SECRET_MIN) or not (self._messages or self._encoded or self._secrets):
            return text
        hidden = bytearray(len(text))
        budget = _Budget()
        exact_sources = [(self._encoded, "base64")] if self._encoded and _BASE64_RUN.search(text) else []
        exact_sources += [(secret, "base64") for secret in self._secrets if _BASE64.issuperset(secret)]
        for variant, spans in _variants(text):
            folded, folded_spans = _casefolded(variant, spans)
            if len(folded) >= QUOTE_RUN and not self._afford_forms(self._plain is None, False):
                return REDACTED  # too large to prepare within this call: all of it may be quoted
            marks = bytearray(len(folded))
            for source in self._folded_sources(folded, marks):
                _mark_shared(folded, source, marks, budget)
            _mark_whole(folded, [secret.casefold() for secret in self._secrets], marks)
            _carry(marks, folded_spans, hidden)
            marks = bytearray(len(variant))
            for source in exact_sources:
                _mark_shared(variant, source, marks, budget)
            _carry(marks, spans, hidden)
        return _hide(text, hidden)

    # --- source forms, built on first use ---------------------------------

    def _folded_sources(self, text: str, hidden: bytearray) -> list[tuple[str, str]]:
        """(source, kind) pairs worth searching for this (casefolded) text.

        When the JSON forms cannot be built within this call, the windows only
        they could hide (those with a backslash) are hidden instead.
        """
        if len(text) < QUOTE_RUN:
            return []
        sources = [(self._plain_form(), "plain")]
        if "\\" in text:
            if self._json is not None or self._afford_forms(False, True):
                sources += [(form, "json") for form in self._json_forms()]
            else:
                for start in range(len(text) - QUOTE_RUN + 1):
                    if "\\" in text[start:start + QUOTE_RUN]:
                        hidden[start:start + QUOTE_RUN] = b"\1" * QUOTE_RUN
        return [(source, kind) for source, kind in sources if len(source) >= QUOTE_RUN]

    def _afford_forms(self, plain: bool, json_forms: bool) -> bool:
        """Whether these missing forms can be built within one call's time (building cannot be cut short)."""
        if not plain and not json_forms:
            return True
        raw = self._joined()
        per_char = _PREP_SECONDS_ASCII if raw.ascii else _PREP_SECONDS_OTHER
        # JSON forms: two, each encoded then collapsed, about twice the plain form's cost each.
        forms = plain + 4 * json_forms
        # Decided on the size alone, not on the time left, so that it does not depend on the machine's load.
        return raw.size <= _ALWAYS_PREPARED or forms * per_char * raw.size <= REDACT_SECONDS

    def _joined(self) -> _Joined:
        if self._raw is None:
            texts = message_texts(self._messages) + list(self._secrets)
            joined = _RAW_JOIN.join(texts)
            # A text holding the joint cannot be sent (UTF-8 cannot encode it); for
            # one given here all the same, each text is handled on its own.
            exact = joined.count(_RAW_JOIN) == len(texts) - 1
            self._raw = _Joined(texts, joined if exact else None, all(map(str.isascii, texts)), len(joined))
        return self._raw

    def _plain_form(self) -> str:
        if self._plain is None:
            raw = self._joined()
            if raw.ascii:
                for joint in _ASCII_JOINS:
                    joined = joint.join(raw.texts)
                    if joined.count(joint) == len(raw.texts) - 1:
                        self._plain = _collapse_joined(joined, joint).casefold()
                        return self._plain
            if raw.joined is None:
                self._plain = JOIN.join(collapse(text) for text in raw.texts).casefold()
            else:
                self._plain = _collapse_joined(raw.joined, _RAW_JOIN).casefold()
        return self._plain

    def _json_forms(self) -> list[str]:
        if self._json is None:
            raw = self._joined()
            forms = []
            if raw.joined is None:
                utf8 = JOIN.join(collapse(_json_inner(text, False)) for text in raw.texts)
                ascii_ = JOIN.join(collapse(_json_inner(text, True)) for text in raw.texts)
            else:
                utf8 = _collapse_joined(_json_inner(raw.joined, False), _RAW_JOIN)
                # Escaped, the joint is \ud800; an escaped backslash followed by
                # "ud800" looks the same, so escaped backslashes step aside first
                # (NUL cannot occur in ensure_ascii output: JSON escapes it).
                escaped = _json_inner(raw.joined, True).replace("\\\\", "\0")
                unescaped_joints = escaped.replace(_RAW_JOIN_ESCAPED, _RAW_JOIN).replace("\0", "\\\\")
                ascii_ = _collapse_joined(unescaped_joints, _RAW_JOIN)
            # Only the escapes matter (see _WANTED): a form without any has nothing to add.
            if "\\" in utf8:
                forms.append(utf8.casefold())
            if ascii_ != utf8:
                forms.append(ascii_.casefold())
            self._json = forms
        return self._json


class _Budget:
    """What one redact() call may still do: scan until REDACT_SECONDS have passed, but at least _ALWAYS_SCANNED."""

    __slots__ = ("deadline", "scanned")

    def __init__(self) -> None:
        self.deadline = time.perf_counter() + REDACT_SECONDS
        self.scanned = 0  # characters of sources read so far

    def spent(self) -> bool:
        return self.scanned >= _ALWAYS_SCANNED and time.perf_counter() > self.deadline


@dataclass(slots=True)
class _Joined:
    """The source texts, joined by _RAW_JOIN once (None if a text holds it), all ASCII or not, total size."""

    texts: list[str]
    joined: str | None
    ascii: bool
    size: int


def credential_forms(user: str | None, password: str | None, encoding: str = "latin-1") -> list[str]:
    """What of ``user:password`` credentials can show on the wire: the password, the pair, its Basic token.

    ``user`` and ``password`` are as in the URL (percent-encoded): both the
    encoded and the decoded forms are listed. The token is what aiohttp sends
    as ``Authorization: Basic ...`` (latin-1, else UTF-8, as it encodes).
    """
    from urllib.parse import unquote

    if not user and not password:
        return []
    forms = []
    for login, secret in {(user or "", password or ""), (unquote(user or ""), unquote(password or ""))}:
        pair = f"{login}:{secret}"
        try:
            raw = pair.encode(encoding)
        except UnicodeEncodeError:
            raw = pair.encode("utf-8")
        forms += [secret, pair, base64.b64encode(raw).decode("ascii")]
    return sorted({form for form in forms if form})  # no password: no secret alone


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
    where these C-level scans take a few milliseconds each.
    """
    spaces = _ASCII_SPACES if text.isascii() else _ASCII_SPACES + _OTHER_SPACES
    for space in spaces:
        if space in text:
            text = text.replace(space, " ")
    # Each pass halves every run of spaces; long runs go first. Looking for
    # two spaces is one of the slowest scans there is (a space every few
    # characters): done once when there are none.
    if "  " in text:
        for run in ("        ", "  "):
            while run in text:
                text = text.replace(run, " ")
    return text.strip(" ")


def _collapse_joined(joined: str, joint: str) -> str:
    """Each piece between joints collapsed, joined by JOIN: one pass over all, not one per message."""
    collapsed = collapse(joined)
    # Collapsing left at most one space on each side of a joint: each message's strip().
    if " " + joint in collapsed:
        collapsed = collapsed.replace(" " + joint, joint)
    if joint + " " in collapsed:
        collapsed = collapsed.replace(joint + " ", joint)
    return collapsed.replace(joint, JOIN)


def _json_inner(text: str, ensure_ascii: bool) -> str:
    return json.dumps(text, ensure_ascii=ensure_ascii)[1:-1]


# --- the text's readings ----------------------------------------------------------
# A reading of the text is a string and, for each of its characters, the span
# of the text it stands for: hiding a character of a reading hides its span.

Spans = list[tuple[int, int]]


def _variants(text: str) -> list[tuple[str, Spans]]:
    """The text as is, and URL-decoded (``%XX`` and ``+``) when it holds any; whitespace runs made one space."""
    plain = list(text)
    readings = [_spaced([(char, (at, at + 1)) for at, char in enumerate(plain)])]
    if "%" in text or "+" in text:
        readings.append(_spaced(_url_decoded(text)))
    return readings


def _url_decoded(text: str) -> list[tuple[str, tuple[int, int]]]:
    decoded: list[tuple[str, tuple[int, int]]] = []
    done = 0
    for escape in _PERCENT.finditer(text):
        decoded += _plus_as_space(text, done, escape.start())
        # Each character of a run of escapes stands for the whole run (a character is several bytes).
        run = (escape.start(), escape.end())
        chars = bytes.fromhex(escape.group().replace("%", "")).decode("utf-8", "replace")
        decoded += [(char, run) for char in chars]
        done = escape.end()
    return decoded + _plus_as_space(text, done, len(text))


def _plus_as_space(text: str, start: int, end: int) -> list[tuple[str, tuple[int, int]]]:
    return [(" " if char == "+" else char, (at, at + 1)) for at, char in enumerate(text[start:end], start)]


def _spaced(chars: list[tuple[str, tuple[int, int]]]) -> tuple[str, Spans]:
    """Whitespace as it compares with a source: a run is one space; a newline or tab is never a joint (JOIN)."""
    out: list[str] = []
    spans: Spans = []
    for char, span in chars:
        if char.isspace():
            if out and out[-1] == " ":
                spans[-1] = (spans[-1][0], span[1])
                continue
            char = " "
        out.append(char)
        spans.append(span)
    return "".join(out), spans


def _casefolded(text: str, spans: Spans) -> tuple[str, Spans]:
    folded = text.casefold()
    if len(folded) == len(text):
        return folded, spans
    pieces, folded_spans = [], []
    for char, span in zip(text, spans, strict=True):
        piece = char.casefold()  # "ß" is "ss": both letters stand for it
        pieces.append(piece)
        folded_spans += [span] * len(piece)
    return "".join(pieces), folded_spans


def _carry(marks: bytearray, spans: Spans, hidden: bytearray) -> None:
    for run in _HIDDEN_RUN.finditer(marks):
        start, end = spans[run.start()][0], spans[run.end() - 1][1]
        hidden[start:end] = b"\1" * (end - start)


# --- searching --------------------------------------------------------------------

def _mark_whole(text: str, secrets: list[str], hidden: bytearray) -> None:
    """Hide every whole occurrence of a secret, however short (down to SECRET_MIN)."""
    for secret in secrets:
        if len(secret) < SECRET_MIN:
            continue
        at = text.find(secret)
        while at >= 0:
            hidden[at:at + len(secret)] = b"\1" * len(secret)
            at = text.find(secret, at + 1)


def _mark_shared(text: str, source_and_kind: tuple[str, str], hidden: bytearray, budget: _Budget) -> None:
    """Set ``hidden`` over every run of QUOTE_RUN or more characters of ``text`` found in the source.

    Once the ``budget`` is spent, everything
    from the first window left unchecked to the end is hidden.
    """
    source, kind = source_and_kind
    wanted = _WANTED[kind]
    last_window = len(text) - QUOTE_RUN
    # More places than this for one piece cost more than searching its windows.
    too_many = len(source) // 300 + 16
    for anchor_at in range(0, len(text) - _ANCHOR + 1, _STEP):
        first = max(0, anchor_at - (QUOTE_RUN - _ANCHOR))
        last = min(anchor_at, last_window)
        if 0 not in hidden[first:last + QUOTE_RUN]:
            continue  # all it could hide is hidden (a text under QUOTE_RUN has no window: see below)
        anchor = text[anchor_at:anchor_at + _ANCHOR]
        windows = [(start, text[start:start + QUOTE_RUN]) for start in range(first, last + 1)]
        windows = [(start, window) for start, window in windows if wanted(window)]
        if not windows or (kind == "base64" and not _BASE64.issuperset(anchor)):
            continue  # nothing to find, or the piece cannot occur: spares a scan
        if budget.spent():
            hidden[first:] = b"\1" * (len(text) - first)
            return
        seen = 0
        at = source.find(anchor)
        while at >= 0 and windows:
            seen += 1
            if seen > too_many:
                for start, window in windows:
                    budget.scanned += len(source)
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
        # A scan that found nothing, or went on to the end, read the whole source.
        budget.scanned += len(source) if at < 0 or seen > too_many else at


def _mark_run(text: str, start: int, source: str, found: int, hidden: bytearray, kind: str) -> None:
    """Hide the window ``text[start:]`` == ``source[found:]`` (QUOTE_RUN long) and the shared run after it.

    Hiding the rest of the run at once spares the later pieces inside it their
    scans. Nothing is widened backwards: anchors go left to right, so the
    windows before this one were checked already. A JSON form hides only
    windows with an escape, so only the window.
    """
    end = start + QUOTE_RUN
    if kind != "json":
        end += _common_length(text[end:], source[found + QUOTE_RUN:found + QUOTE_RUN + len(text) - end])
    hidden[start:end] = b"\1" * (end - start)


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
