"""Building one upstream request from g4f's arguments: every check before any I/O.

Pure (no I/O, no aiohttp) apart from reading the base-URL environment variable
through ``wire``: the translation rules themselves live in ``wire``; this module puts one request together for
both stream modes.
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from . import wire
from .compat import to_data_uri
from .errors import Origin
from .redact import Redactor, credential_forms

DEFAULT_TIMEOUT = 120.0


@dataclass(slots=True)
class Request:
    """One checked request, ready to send."""

    endpoint: str
    body: bytes
    headers: dict[str, str]
    proxy: str | None
    proxy_headers: dict[str, str] | None
    seconds: float  # the gap allowed between events (and for the answer to start)
    total_timeout: float | None
    thread_id: str
    origin: Origin  # for error messages: the endpoint as shown, and what to hide of the user's input


def build_request(
    *,
    model: str,
    messages: Any,
    media: Any = None,
    base_url: Any = None,
    proxy: Any = None,
    headers: Any = None,
    timeout: Any = None,
    total_timeout: Any = None,
    stream: Any = True,
    conversation: Any = None,
) -> Request:
    """The request for an upstream ``model`` (already resolved); a bad argument is a ValueError naming it."""
    wire_messages = wire.check_messages(messages)
    if media:
        wire_messages = wire.attach_images(wire_messages, wire.media_urls(media, to_data_uri))
    endpoint, shown_endpoint = endpoint_for(base_url, model)
    checked_proxy = wire.check_proxy(proxy)
    proxy, proxy_auth = proxy_and_credentials(checked_proxy)
    request_headers = headers_for(headers)
    proxy_headers = None
    if proxy_auth and endpoint.startswith("https:"):
        proxy_headers = proxy_auth  # aiohttp sends these on the CONNECT only
    elif proxy_auth:
        request_headers = {**request_headers, **proxy_auth}  # plain http: the proxy reads the request itself
    seconds = positive_seconds("timeout", timeout, DEFAULT_TIMEOUT)
    thread_id = thread_id_of(conversation) or str(uuid.uuid4())
    encoded_messages = wire.encode_messages(wire_messages)
    return Request(
        endpoint=endpoint,
        body=wire.build_body(model, encoded_messages, thread_id, bool(stream)),
        headers=request_headers,
        proxy=proxy,
        proxy_headers=proxy_headers,
        seconds=seconds,
        total_timeout=positive_seconds("total_timeout", total_timeout, None),
        thread_id=thread_id,
        # Servers echo input in their errors: what they quote of it is hidden.
        origin=Origin(shown_endpoint, Redactor(
            wire_messages, encoded_messages, credentials_of(endpoint) + credentials_of(checked_proxy)).redact),
    )


def endpoint_for(base_url: Any, model: str) -> tuple[str, str]:
    """The model's endpoint URL (``base_url``, else the environment's, else the public one) and its
    form without credentials; a bad base URL is a ValueError naming where it came from."""
    url = wire.endpoint_url(wire.resolve_base_url(base_url), model)
    shown = wire.redact_url(url)
    # Every error names the endpoint: a caller's 10 MB base_url must not make 10 MB errors.
    if len(shown) > wire.QUOTED_LIMIT:
        shown = shown[:wire.QUOTED_LIMIT] + "…"
    return url, shown


def headers_for(extra: Any) -> dict[str, str]:
    """The request headers (``wire.build_headers``); without extra headers one shared dict: never change it.

    Only the no-extra-headers case is shared (most calls; a dict per call is
    what hundreds of waiting streams would otherwise each keep). Callers'
    headers are built per call: a cache of them kept callers' values after
    the call (through g4f's GUI, a remote user's: 10 calls with distinct 20 MB
    values held 191 MiB), and building a few headers costs about 3 µs.
    """
    if not extra:
        return _BROWSER_HEADERS
    return wire.build_headers(extra)


_BROWSER_HEADERS = wire.build_headers()


# Longer than any call could last (about 31 years), and far below what
# float() and the event loop's clock arithmetic overflow on (10**400 did).
MAX_SECONDS = 1e9


def positive_seconds(name: str, value: Any, default: float | None) -> Any:
    """A positive number of seconds, at most MAX_SECONDS; None or 0 means ``default``."""
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0):
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= MAX_SECONDS:
        return float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and MAX_SECONDS < value < math.inf:
        # An int of thousands of digits cannot even be printed (Python limits int to str).
        if isinstance(value, float) or value.bit_length() <= 600:
            shown = f"{value:g}" if isinstance(value, float) else str(value)
        else:
            shown = f"an integer of {value.bit_length()} bits"
        raise ValueError(f"{name} must be at most {MAX_SECONDS:g} seconds, got {shown}")
    raise ValueError(f"{name} must be a positive number of seconds, got {wire.bounded(value)}")


def proxy_and_credentials(proxy: str | None) -> tuple[str | None, dict[str, str] | None]:
    """The proxy URL without user and password, and those as a Proxy-Authorization header.

    aiohttp quotes the proxy URL in its error texts (a proxy's 407, say);
    kept out of the URL, the password cannot reach an error or a traceback.
    """
    if proxy is None:
        return None, None
    parts = urlsplit(proxy)
    if parts.username is None:  # no "@": no password either
        return proxy, None
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    try:
        raw = credentials.encode("latin-1")  # what aiohttp itself uses for URL credentials
    except UnicodeEncodeError:
        raw = credentials.encode()
    bare = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return bare, {"Proxy-Authorization": "Basic " + base64.b64encode(raw).decode()}


def credentials_of(url: str | None) -> list[str]:
    """What a URL's user info puts on the wire, in every form an upstream could echo (see redact.credential_forms)."""
    if not url:
        return []
    parts = urlsplit(url)
    return credential_forms(parts.username, parts.password)


def thread_id_of(conversation: Any) -> str | None:
    """The thread to continue: ``conversation.thread_id`` (an object or a dict), if a non-empty string."""
    if isinstance(conversation, Mapping):
        thread_id = conversation.get("thread_id")
    else:
        thread_id = getattr(conversation, "thread_id", None)
    return thread_id if isinstance(thread_id, str) and thread_id else None
