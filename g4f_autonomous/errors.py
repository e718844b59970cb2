"""Every g4f error the provider raises about an answer, worded in one place.

A message starts with the endpoint (never with credentials), says what went
wrong, and quotes the upstream only through :meth:`Origin.quote`: at most
BODY_EXCERPT characters, with runs taken from the user's own messages hidden,
because servers echo their input. Causes are never chained (``from None``):
aiohttp's own errors may quote what the upstream sent, so a traceback would
show what the message hides.

Bad arguments are not here: they are ValueErrors raised where each is checked.

The wording is pure: importing this module loads neither g4f nor aiohttp. The
errors themselves are g4f's classes (so that g4f's retry lists and API server
treat them as their own), looked up through ``compat`` when one is made.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .wire import is_cloudflare_challenge, looks_like_html, redact_url

# How much of an upstream text a message may quote.
BODY_EXCERPT = 200
# C0 and C1 controls and DEL: an upstream's text must not drive the terminal that shows a log.
# Lone surrogates too: no encoder takes them (g4f's API would answer HTTP 500).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def excerpt(text: str) -> str:
    """At most BODY_EXCERPT characters of ``text``, whitespace collapsed."""
    text = " ".join(text[:BODY_EXCERPT * 8].split())
    return text if len(text) <= BODY_EXCERPT else text[:BODY_EXCERPT] + "…"


def _keep(text: str) -> str:
    return text


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an answer comes from: the endpoint as shown, and how to hide the user's input in quotes."""

    endpoint: str
    redact: Callable[[str], str] = _keep

    def quote(self, text: str) -> str:
        # Control characters (NUL, ESC of a terminal escape sequence) go after the
        # redaction, so that they cannot break up a run of the user's text to hide it.
        return _CONTROL.sub("\ufffd", self.redact(excerpt(text)))


def _g4f(kind: str, message: str) -> Any:
    """g4f's error class ``kind`` (or the stand-in compat makes on a g4f without it), holding ``message``."""
    from . import compat  # the I/O layer's; not imported with the wording

    error_class: type[Exception] = getattr(compat, kind)
    return error_class(message)


def cause(error: BaseException) -> str:
    """A short cause, without the URLs aiohttp puts in some texts (they may carry credentials).

    aiohttp's errors are told by what they carry (``os_error``; ``status`` and
    ``message``), not by class, so that the wording needs no aiohttp.
    """
    os_error = getattr(error, "os_error", None)
    if isinstance(os_error, OSError):
        if isinstance(os_error, ConnectionError) and os_error.errno:
            # asyncio words a refused connect "Connect call failed"; the errno says why.
            return f"{type(error).__name__}: {os.strerror(os_error.errno)}"
        return f"{type(error).__name__}: {os_error.strerror or os_error}"
    status, message = getattr(error, "status", None), getattr(error, "message", None)
    if isinstance(status, int) and isinstance(message, str):
        return f"{type(error).__name__}: {status}, {message}"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {text}" if text != type(error).__name__ else text


# --- reaching the service and reading from it ----------------------------------

def unreachable(origin: Origin, error: BaseException) -> Exception:
    return _g4f("ResponseError", f"cannot reach {origin.endpoint}: {origin.quote(cause(error))}")


def broke_off(origin: Origin, error: BaseException, deltas: int | None) -> Exception:
    """The connection failed while the body was read; ``deltas`` once the event stream had begun."""
    where = "body broke off" if deltas is None else f"stream broke after {deltas} deltas"
    return _g4f("ResponseError", f"{origin.endpoint}: {where}: {origin.quote(cause(error))}")


def no_answer(origin: Origin, seconds: float) -> Exception:
    return _g4f("TimeoutError", f"{origin.endpoint}: no answer within {seconds:g} s")


def stalled(origin: Origin, seconds: float, deltas: int) -> Exception:
    return _g4f("TimeoutError", f"{origin.endpoint}: stream stalled for {seconds:g} s after {deltas} deltas")


def total_timeout(origin: Origin, seconds: float) -> Exception:
    return _g4f("TimeoutError", f"{origin.endpoint}: total_timeout of {seconds:g} s reached")


def default_total_timeout(origin: Origin, seconds: float) -> Exception:
    return _g4f(
        "TimeoutError",
        f"{origin.endpoint}: the answer did not end within {seconds:g} s, the bound on a call without "
        "total_timeout (answer.DEFAULT_TOTAL_TIMEOUT); pass total_timeout for a longer one"
    )


def undecodable(origin: Origin, encoding: str) -> Exception:
    """A Content-Encoding that cannot be decoded with a bound on its output."""
    text = f"{origin.endpoint}: answer has content-encoding {origin.quote(encoding)}, not decoded"
    return _g4f("ResponseError", text)


def corrupt_body(origin: Origin, reason: str) -> Exception:
    return _g4f("ResponseError", f"{origin.endpoint}: {origin.quote(reason)}")


def body_too_large(origin: Origin, limit: int) -> Exception:
    return _g4f(
        "ResponseError",
        f"{origin.endpoint}: answer body decodes to more than {limit} bytes (answer.MAX_DECODED_SIZE)"
    )


def too_many_values(origin: Origin, what: str, limit: int) -> Exception:
    """A JSON text shaped to cost far more memory than its size: refused before it is built."""
    text = f"{origin.endpoint}: {what} holds more than {limit} JSON values (answer.MAX_JSON_VALUES)"
    return _g4f("ResponseError", text)


# --- answers that are not one -----------------------------------------------------

def http_status(
    origin: Origin, status: int, content_type: str, body: str, location: str | None = None
) -> Exception:
    """An error status, a redirect, a web page or anything else where an answer should be."""
    where = f"HTTP {status} from {origin.endpoint}"
    if looks_like_html(content_type, body) and is_cloudflare_challenge(body):
        return _g4f("CloudflareError", f"{where}: Cloudflare challenge page; try later or use another proxy")
    if 300 <= status < 400:
        target = origin.quote(redact_url(location)) if location else "nowhere"
        text = f"{where}: redirect to {target} not followed; set base_url to the service itself"
        return _g4f("ResponseStatusError", text)
    if looks_like_html(content_type, body):
        detail = "an HTML page"
    elif content_type.startswith("application/json"):
        detail = origin.quote(_json_error_text(body))
    else:
        detail = origin.quote(body) or "an empty body"
    if 200 <= status < 300:
        return _g4f("ResponseError", f"{origin.endpoint}: answer is neither an event stream nor JSON: {detail}")
    if status == 429:
        return _g4f("RateLimitError", f"{where}: {detail}")
    return _g4f("ResponseStatusError", f"{where}: {detail}")


def reported(origin: Origin, error: Any) -> Exception:
    """An answer object whose ``error`` member is set."""
    return _g4f("ResponseError", f"{origin.endpoint} reported an error: {origin.quote(error_text(error))}")


def not_an_object(origin: Origin, payload: Any) -> Exception:
    text = f"{origin.endpoint} sent {type(payload).__name__} where an answer object was expected"
    return _g4f("ResponseError", text)


def not_json(origin: Origin, body: str) -> Exception:
    return _g4f("ResponseError", f"{origin.endpoint}: answer is not valid JSON: {origin.quote(body)}")


def unreadable_event(origin: Origin, error: Exception) -> Exception:
    """Valid JSON that Python will not hold: a real event lost, so the answer would be wrong."""
    kind = "nested too deeply" if isinstance(error, RecursionError) else "a number too long to read"
    return _g4f("ResponseError", f"{origin.endpoint}: an event could not be read ({kind})")


def oversized_event(origin: Origin, error: Exception) -> Exception:
    return _g4f("ResponseError", f"{origin.endpoint}: {error}")


def no_text(origin: Origin, done: bool, finish_reason: str | None) -> Exception:
    """An answer without any text: an empty success would stop g4f's fallback lists."""
    ending = "[DONE]" if done else "its end"
    reason = f" (finish reason {finish_reason!r})" if finish_reason else ""
    return _g4f("ResponseError", f"{origin.endpoint}: answer reached {ending} without any text{reason}")


def json_too_large(origin: Origin, limit: int) -> Exception:
    return _g4f("ResponseError", f"{origin.endpoint}: JSON answer is larger than {limit} bytes")


def text_too_long(origin: Origin, limit: int) -> Exception:
    return _g4f(
        "ResponseError",
        f"{origin.endpoint}: answer is longer than {limit} characters, "
        "the most held for stream=False; stream it instead"
    )


def error_text(error: Any) -> str:
    """The readable part of an upstream ``error`` member, without walking arbitrary structures."""
    if isinstance(error, dict):
        error = error.get("message") or error.get("code") or "an error object without a message"
    if isinstance(error, str):
        return error
    if isinstance(error, (int, float)):
        return str(error)
    return f"an error {type(error).__name__}"


def _json_error_text(body: str) -> str:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return body
    if isinstance(data, dict):
        return error_text(data.get("error") or data.get("message") or body)
    return body
