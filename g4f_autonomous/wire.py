"""The Autonomous AI wire format, as pure functions.

Everything that translates between g4f's world (messages, media, model names,
errors) and the upstream's JSON lives here, with no I/O, so that tests can
check each rule without a server and the provider only moves bytes.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "https://chatgpt.autonomous.ai/api/v1/ai"
BASE_URL_ENV = "G4F_AUTONOMOUS_BASE_URL"

# Upstream model ("aiAgent") -> path below the base URL.
ENDPOINTS: dict[str, str] = {
    "llama": "/chat",
    "qwen_coder": "/chat",
    "hermes": "/chat-hermes",
    "vision": "/chat-vision",
    "summary": "/summary",
}

# Public model names -> upstream model.
MODEL_ALIASES: dict[str, str] = {
    "llama-3.3-70b": "llama",
    "qwen-2.5-coder-32b": "qwen_coder",
    "hermes-3": "hermes",
    "llama-3.2-90b": "vision",
    "llama-3.2-70b": "summary",
}

# The upstream is a browser app; it is only ever called the way a browser calls it.
BROWSER_HEADERS: dict[str, str] = {
    "accept": "*/*",
    "accept-language": "en-US,en;q=0.9",
    "content-type": "application/json",
    "country-code": "US",
    "origin": "https://www.autonomous.ai",
    "referer": "https://www.autonomous.ai/",
    "time-zone": "America/New_York",
    "user-agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    ),
}

# Control characters: C0, DEL and C1. None belongs in a URL or a header (C1's NEL is a line break to
# some parsers), and in a terminal or a log they start escape sequences (ESC, and C1's CSI).
CONTROL_CHARACTERS = "\x00-\x1f\x7f-\x9f"
CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")
_VALUE_CONTROL = re.compile(f"(?!\t){CONTROL.pattern}")  # a header value may hold a tab
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP field name (RFC 9110 token)


# --- request side -----------------------------------------------------------

def check_messages(messages: Any) -> list[dict[str, Any]]:
    """Validate g4f messages and return the upstream's view: role and content only.

    Raises ValueError naming the first problem, before any network I/O.
    """
    if not isinstance(messages, list):
        raise ValueError(
            f"messages must be a list of {{'role': ..., 'content': ...}} dicts, got {type(messages).__name__}"
        )
    if not messages:
        raise ValueError("messages is empty: send at least one {'role': 'user', 'content': '...'} message")
    checked: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ValueError(
                f"messages[{index}] must be a dict with 'role' and 'content', got {type(message).__name__}"
            )
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise ValueError(f"messages[{index}] has no 'role': use 'system', 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, list):
            for part_index, part in enumerate(content):
                if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                    raise ValueError(
                        f"messages[{index}].content[{part_index}] must be a dict with a 'type', "
                        "like {'type': 'text', 'text': '...'}"
                    )
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise ValueError(f"messages[{index}].content[{part_index}] is a text part without a 'text' string")
        elif not isinstance(content, str):
            raise ValueError(
                f"messages[{index}].content must be a string or a list of content parts, "
                f"got {type(content).__name__}"
            )
        checked.append({"role": role, "content": content})
    return checked


def attach_images(messages: list[dict[str, Any]], image_urls: Iterable[str]) -> list[dict[str, Any]]:
    """Put images as OpenAI ``image_url`` parts into the last user message."""
    parts = [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
    if not parts:
        return messages
    messages = list(messages)
    # The last user message, or a new one at the end.
    index = next((i for i in reversed(range(len(messages))) if messages[i]["role"] == "user"), len(messages))
    content = messages[index]["content"] if index < len(messages) else ""
    text_parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
    messages[index:index + 1] = [{"role": "user", "content": text_parts + parts}]
    return messages


def media_urls(media: Any, to_data_uri: Callable[[Any, str | None], str]) -> list[str]:
    """g4f media as image URLs: data URIs, or http(s) URLs passed on as given.

    ``media`` is a list of ``(data, filename)`` pairs or of data (bytes, a
    path, an image object g4f reads, a ``data:image/`` URI or an http(s) URL).
    Anything else is a ValueError naming ``media`` or ``media[i]``, before any I/O.
    ``to_data_uri(data, filename)`` turns data into a data URI (g4f's, from
    compat: this module stays free of g4f).
    """
    if not isinstance(media, (list, tuple)):
        raise ValueError(f"media must be a list of (data, filename) pairs or of image data, got {type(media).__name__}")
    urls = []
    for index, item in enumerate(media):
        is_pair = isinstance(item, (tuple, list))
        if is_pair and (len(item) != 2 or not (item[1] is None or isinstance(item[1], str))):
            raise ValueError(f"media[{index}] must be image data or a (data, filename) pair with a filename string")
        data, filename = item if is_pair else (item, None)
        if isinstance(data, str):
            if not data.startswith(("data:image/", "http://", "https://")) or CONTROL.search(data):
                raise ValueError(f"media[{index}] is a string but not a data:image/ URI or an http(s) URL")
            urls.append(data)
            continue
        try:
            url = to_data_uri(data, filename)
        except Exception as error:  # g4f raises ValueError, NameError, OSError ... for what it cannot read
            raise ValueError(f"media[{index}] is not an image g4f can read ({type(error).__name__})") from None
        if not isinstance(url, str) or not url.startswith("data:"):
            raise ValueError(f"media[{index}] is not an image g4f can read")
        urls.append(url)
    return urls


# Built once: json.dumps with options makes a new encoder on every call.
_UTF8_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_ASCII_JSON = json.JSONEncoder(separators=(",", ":"))


# Characters (and base64 input bytes / 3) handed to one C call while encoding. A
# large request is built in a worker thread (provider.py), and a C call holds the
# GIL, so the event loop waits for at most one slice: about 2 ms here.
ENCODE_SLICE = 2**18


def encode_messages(messages: list[dict[str, Any]]) -> str:
    """Base64 of the UTF-8 JSON of the messages (role and content of each), as the upstream expects.

    Built in slices of ENCODE_SLICE characters (a long text's JSON form is the
    JSON forms of its pieces, joined), so that no single step is long.
    What cannot be sent is a ValueError naming the message: a text UTF-8 cannot
    encode (a lone surrogate such as "\\ud800"), or a content part holding
    something JSON cannot (an object, a loop, nesting deeper than Python recurses).
    """
    raw = bytearray(b"[")
    for index, message in enumerate(messages):
        if index:
            raw += b","
        try:
            for piece in _json_pieces(message):
                raw += piece.encode()
        except UnicodeEncodeError:
            raise ValueError(f"messages[{index}] contains a lone surrogate that UTF-8 cannot encode") from None
        except RecursionError:
            raise ValueError(f"messages[{index}] is nested too deeply") from None
        except (TypeError, ValueError) as error:
            raise ValueError(f"messages[{index}] holds what JSON cannot ({error})") from None
    raw += b"]"
    step = 3 * ENCODE_SLICE  # a multiple of 3: the pieces' base64 joins without padding
    return "".join(base64.b64encode(raw[start:start + step]).decode() for start in range(0, len(raw), step))


def _json_pieces(message: dict[str, Any]) -> list[str]:
    """The compact JSON of a message's role and content; a text content in pieces of ENCODE_SLICE characters."""
    head = f'{{"role":{_UTF8_JSON.encode(message.get("role"))},"content":'
    content = message.get("content")
    if not isinstance(content, str):  # content parts, encoded whole
        return [head, _UTF8_JSON.encode(content), "}"]
    pieces = [head + '"']
    for start in range(0, len(content), ENCODE_SLICE):
        pieces.append(_UTF8_JSON.encode(content[start:start + ENCODE_SLICE])[1:-1])
    pieces.append('"}')
    return pieces


# The request body: its members and their JSON types, in the order the browser app sends them.
REQUEST_FIELDS: dict[str, type] = {"messages": str, "threadId": str, "stream": bool, "aiAgent": str}


def build_body(model: str, encoded_messages: str, thread_id: str, stream: bool) -> bytes:
    """The JSON request body (the members of REQUEST_FIELDS), for both stream modes.

    ``encoded_messages`` comes from :func:`encode_messages`. Written out rather
    than encoded from a dict: the base64 field needs no escaping, and a JSON
    encoder scans it anyway. Measured with timeit, 7.5 MB of messages: 12 ms
    held on the loop this way, 39 ms with ``ensure_ascii=False``, 52 ms with
    ``json.dumps``; for a small body all are a few microseconds.
    """
    flag = "true" if stream else "false"
    return (
        f'{{"messages":"{encoded_messages}","threadId":{_ASCII_JSON.encode(thread_id)},'
        f'"stream":{flag},"aiAgent":{_ASCII_JSON.encode(model)}}}'
    ).encode()


def read_body(path: str, raw: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The upstream's reading of a request to ``path`` (below the base URL): the body and its decoded messages.

    The inverse of :func:`build_body` and :func:`encode_messages`, with the
    same rules for messages (:func:`check_messages`). What a strict upstream
    refuses is a ValueError saying why.
    """
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: JSON nested too deep
        raise ValueError("body is not JSON") from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    for name, kind in REQUEST_FIELDS.items():
        if name not in body:
            raise ValueError(f"missing field {name!r}")
        if not isinstance(body[name], kind):
            raise ValueError(f"field {name!r} must be {kind.__name__}")
    if ENDPOINTS.get(body["aiAgent"]) != path:
        raise ValueError(f"aiAgent {body['aiAgent']!r} is not served at {path}")
    try:
        decoded = base64.b64decode(body["messages"], validate=True)
    except ValueError:  # binascii.Error is a ValueError
        raise ValueError("messages is not valid base64") from None
    try:
        messages = json.loads(decoded.decode())
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ValueError("messages is not base64 of UTF-8 JSON") from None
    check_messages(messages)
    return body, messages


# Headers that decide how the request is framed or routed, or that belong to
# one hop. g4f's GUI passes a remote user's JSON keys through as arguments, so
# ``headers=`` must not let anyone pick the Host, smuggle a second framing
# (Transfer-Encoding beside Content-Length) or cut the body short.
FORBIDDEN_HEADERS = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
    "upgrade", "expect",
})


def build_headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Browser headers, with the caller's overrides.

    Refused with ValueError: CR/LF or other control characters anywhere, and
    framing, routing or hop-by-hop headers (FORBIDDEN_HEADERS and ``proxy-*``).
    """
    headers = dict(BROWSER_HEADERS)
    if not extra:
        return headers
    if not isinstance(extra, Mapping):
        raise ValueError(f"headers must be a dict of strings, got {type(extra).__name__}")
    for name, value in extra.items():
        if not isinstance(name, str) or not isinstance(value, str):
            kinds = f"{type(name).__name__}: {type(value).__name__}"
            raise ValueError(f"headers: names and values must be strings, got {kinds}")
        if CONTROL.search(name) or _VALUE_CONTROL.search(value):
            raise ValueError(f"headers: {name.strip()[:40]!r} contains CR, LF or another control character")
        if not _TOKEN.fullmatch(name.strip()):
            # "host:evil.example" would go out as a Host header: a name is one HTTP token.
            allowed = "letters, digits and !#$%&'*+-.^_`|~"
            raise ValueError(f"headers: {name.strip()[:40]!r} is not a header name ({allowed})")
        key = name.strip().lower()
        if key in FORBIDDEN_HEADERS or key.startswith("proxy-"):
            raise ValueError(
                f"headers: {key!r} cannot be set: it controls how the request is framed or routed "
                "(use the proxy argument for a proxy)"
            )
        headers[key] = value
    return headers


def configured_base_url(base_url: Any = None) -> tuple[Any, str]:
    """The base URL as configured, unchecked, and where it came from.

    ``base_url`` argument, else $G4F_AUTONOMOUS_BASE_URL, else the public service.
    """
    if base_url:
        return base_url, "base_url"
    from_env = os.environ.get(BASE_URL_ENV)
    if from_env:
        return from_env, BASE_URL_ENV
    return DEFAULT_BASE_URL, "default"


def resolve_base_url(base_url: Any = None) -> str:
    """The configured base URL, checked; a bad one raises ValueError naming its source."""
    value, source = configured_base_url(base_url)
    return _checked_http_url(value, source).rstrip("/")


def endpoint_url(base_url: str, model: str) -> str:
    return base_url + ENDPOINTS[model]


def check_proxy(proxy: Any) -> str | None:
    """A proxy must be an http(s) URL; its value is never echoed (it may hold a password)."""
    if proxy is None or proxy == "":
        return None
    return _checked_http_url(proxy, "proxy", secret=True)


def _checked_http_url(value: Any, source: str, secret: bool = False) -> str:
    expected = f"{source} must be an http:// or https:// URL"
    if not isinstance(value, str):
        raise ValueError(f"{expected}, got {type(value).__name__}")
    shown = "" if secret else f": {bounded(redact_url(value))}"
    if CONTROL.search(value) or " " in value:
        raise ValueError(f"{expected} without spaces or control characters{shown}")
    # The scheme is read off the text itself: urlsplit on Python 3.10 takes
    # "host:port" or "user:pass@host" for a scheme, which would both misreport
    # and echo part of a secret.
    scheme, has_scheme, _ = value.partition("://")
    if not has_scheme or not _SCHEME.fullmatch(scheme):
        raise ValueError(f"{expected}; it has no scheme{shown}")
    if scheme.lower() not in ("http", "https"):
        raise ValueError(f"{expected}; it has '{scheme}'{shown}")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        raise ValueError(f"{expected} with a valid host and port{shown}") from None
    if not parts.hostname:
        raise ValueError(f"{expected} with a host name{shown}")
    try:
        # What the resolver will do: an empty label ("bad..example") or one of
        # more than 63 characters would otherwise be a bare UnicodeError at connect.
        parts.hostname.encode("idna")
    except UnicodeError:
        raise ValueError(f"{expected} with a valid host name (labels of 1 to 63 characters){shown}") from None
    return value


# How much of a caller's value an error message quotes.
QUOTED_LIMIT = 200


def bounded(value: Any) -> str:
    """``repr(value)``, cut to QUOTED_LIMIT characters: a caller's 10 MB value must not become a 10 MB message."""
    if isinstance(value, str) and len(value) > QUOTED_LIMIT:
        return repr(value[:QUOTED_LIMIT]) + f"… ({len(value)} characters)"
    shown = repr(value)
    return shown if len(shown) <= QUOTED_LIMIT else shown[:QUOTED_LIMIT] + "…"


def redact_url(url: str) -> str:
    """The URL without user name and password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.username is None and parts.password is None:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]).geturl()


# --- answer side ------------------------------------------------------------

# What reaches g4f is checked: its FinishReason and Usage take anything, and a
# hostile upstream's odd value would only fail later, inside the caller.
FINISH_REASON_LIMIT = 64
USAGE_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")
_COUNT_LIMIT = 2**53  # larger counts are not counts; JSON readers lose precision past it


@dataclass(slots=True)
class Chunk:
    """What one upstream JSON object contributes to the answer."""

    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    error: Any = None  # the object's (or its first choice's) ``error`` member, when it reports one
    role: str | None = None  # the role of a message without text: a first event often carries only this


def read_chunk(payload: Any) -> Chunk | None:
    """Map one ``chat.completion.chunk`` (or a whole non-stream answer) to a Chunk; None if not an object.

    The text is in ``choices[0].delta.content`` (or ``message.content`` for a
    non-stream answer); the finish reason in ``choices[0].finish_reason`` or, as
    older servers sent it, at the top level. A finish reason that is not a
    short string, and usage members that are not known token counts, are left
    out. A lone surrogate in the text (JSON's "\\ud800") becomes U+FFFD: no
    encoder takes it, so g4f's API would fail the whole answer.
    """
    if not isinstance(payload, dict):
        return None
    chunk = Chunk(error=payload.get("error") or None)
    choices = payload.get("choices")
    if choices and isinstance(choices, list) and isinstance(choices[0], dict):
        choice = choices[0]
        if chunk.error is None:
            chunk.error = choice.get("error") or None
        message = choice.get("delta") or choice.get("message")
        if isinstance(message, dict):
            content = message.get("content")
            if isinstance(content, str) and content:
                # isascii first: read_chunk took 2.6 us an event without it, 1.7 us with it (timeit), which
                # bench's row "100,000 deltas, per-event chunks: provider | limit" (target <= 1.05x) would show.
                chunk.text = content if content.isascii() else _SURROGATE.sub("\ufffd", content)
            else:  # only a message without text needs its role (a first event often has only that)
                role = message.get("role")
                if isinstance(role, str) and role:
                    chunk.role = role
        chunk.finish_reason = finish_reason(choice.get("finish_reason"))
    if chunk.finish_reason is None:
        chunk.finish_reason = finish_reason(payload.get("finish_reason"))
    chunk.usage = _usage(payload.get("usage"))
    return chunk


_SURROGATE = re.compile("[\ud800-\udfff]")
# One character that adds a value (group 1), or one JSON string, to its end or
# to the end of the text if unterminated. The string's body is taken by a
# lookahead, which Python's re never backtracks into (Python 3.10 has no
# possessive quantifiers), so each character is looked at once.
_JSON_TOKEN = re.compile(r'([\[{,:])|"(?=([^"\\]*(?:\\.[^"\\]*)*))\2(?:"|\\?\Z)', re.DOTALL)


def json_values_over(text: str, limit: int) -> bool:
    """Whether the JSON ``text`` would build more than about ``limit`` values (each costs 50-100 bytes).

    Counts the characters that open an object or array or add a member or an
    element, outside strings, and stops counting at ``limit``: linear, and
    nothing is built. A text that is no JSON may be counted high; json.loads
    refuses it anyway.
    """
    # Such characters inside strings too, in C: an upper bound, enough for most texts. A bound on the
    # loop, not a nicety: for an event of 4 MiB of prose, 9 ms here against 70 ms for the exact count.
    if text.count(",") + text.count(":") + text.count("{") + text.count("[") <= limit:
        return False
    values = strings = 0
    for match in _JSON_TOKEN.finditer(text):
        if match.lastindex == 1:
            values += 1
            if values > limit:
                return True
        else:
            strings += 1
            # In JSON each string follows one of those characters, or is the whole text: more strings
            # are no JSON, and counting them all would be a long loop.
            if strings > values + 1:
                return True
    return False


def finish_reason(value: Any) -> str | None:
    """``value`` if it is a finish reason the provider passes on (a short printable string), else None."""
    if isinstance(value, str) and 0 < len(value) <= FINISH_REASON_LIMIT and value.isprintable():
        return value
    return None


def _usage(value: Any) -> dict[str, int] | None:
    """The token counts in ``value`` the provider passes on: ints (not bool, float or string) in range."""
    if not isinstance(value, dict):
        return None
    counts = {name: value[name] for name in USAGE_COUNTS
              if type(value.get(name)) is int and 0 <= value[name] < _COUNT_LIMIT}
    return counts or None


CLOUDFLARE_MARKERS = (
    "<title>Just a moment...</title>",
    "<title>Attention Required! | Cloudflare</title>",
    'id="cf-please-wait"',
    'id="cf-spinner-please-wait"',
    'id="cf-cloudflare-status"',
    "challenges.cloudflare.com",
    "cf_chl_",
)


def is_cloudflare_challenge(body: str) -> bool:
    return any(marker in body for marker in CLOUDFLARE_MARKERS)


_HTML_START = re.compile(r"\s*<(?:!doctype|html)", re.IGNORECASE)


def looks_like_html(content_type: str, body: str) -> bool:
    return content_type.startswith("text/html") or _HTML_START.match(body) is not None


def looks_like_json(content_type: str, head: bytes) -> bool:
    return content_type.startswith("application/json") or head.lstrip()[:1] in (b"{", b"[")


_EVENT_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")


def looks_like_events(head: bytes) -> bool:
    """A body that begins the way an event stream does, whatever its content type says."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(_EVENT_FIELDS)
