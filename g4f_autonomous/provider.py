"""The AutonomousAI provider: g4f's declaration, then the request, then the answer loop."""

from __future__ import annotations

import asyncio
import base64
import functools
import math
import os
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping
from urllib.parse import unquote, urlsplit

import aiohttp
from g4f import debug
from g4f.errors import ModelNotFoundError, ProviderNotWorkingError, ResponseError
from g4f.errors import TimeoutError as G4FTimeoutError
from g4f.providers.base_provider import AsyncGeneratorProvider, ProviderModelMixin
from g4f.providers.response import FinishReason, JsonConversation, Usage

from . import wire
from .redact import Redactor
from .answer import TRANSPORT_ERRORS, Deadline, Expired, cause, read_answer
from . import session as pool

WORKING_ENV = "G4F_AUTONOMOUS_WORKING"
DEFAULT_TIMEOUT = 120.0
HEALTH_READ_LIMIT = 2**16


@dataclass(slots=True)
class _Request:
    """One checked request, ready to send."""

    endpoint: str
    shown_endpoint: str  # without credentials, for messages
    body: bytes
    headers: dict[str, str]
    proxy: str | None
    proxy_headers: dict[str, str] | None
    timeout: aiohttp.ClientTimeout
    seconds: float  # the gap allowed between events (and for the answer to start)
    total_timeout: float | None
    stream: bool
    thread_id: str
    origin: wire.Origin  # for error messages: the shown endpoint, and what to hide of the user's input


def _working_from_env() -> bool:
    return os.environ.get(WORKING_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class AutonomousAI(AsyncGeneratorProvider, ProviderModelMixin):
    label = "Autonomous AI"
    url = "https://www.autonomous.ai/anon/"
    api_endpoint = wire.DEFAULT_BASE_URL
    working = _working_from_env()
    active_by_default = True
    needs_auth = False
    supports_stream = True
    supports_system_message = True
    supports_message_history = True

    default_model = "llama"
    default_vision_model = "vision"
    models = list(wire.ENDPOINTS)
    model_aliases = dict(wire.MODEL_ALIASES)
    vision_models = [default_vision_model]

    @classmethod
    def get_model(cls, model: str, **kwargs: Any) -> str:
        """g4f's resolution (empty → default, alias → model), but strict.

        g4f's own lookup also accepts any suffix of a model name ("ma" → "llama"),
        which turns a typo into a silent model switch; here a name must be a
        model or an alias.
        """
        if model in cls.models:  # the common case: an exact upstream name
            return model
        if model is not None and not isinstance(model, str):
            raise ModelNotFoundError(f"AutonomousAI: model must be a string such as 'llama', got {type(model).__name__}")
        known = not model or model == "auto" or model in (cls.model_aliases or {})
        resolved = super().get_model(model, **kwargs) if known else None
        if resolved not in cls.models:
            aliases = ", ".join(f"{alias} → {name}" for alias, name in wire.MODEL_ALIASES.items())
            raise ModelNotFoundError(
                f"AutonomousAI has no model {model!r}. Models: {', '.join(cls.models)}. Aliases: {aliases}"
            )
        return resolved

    @classmethod
    async def create_async_generator(
        cls,
        model: str,
        messages: list[dict[str, Any]],
        proxy: str | None = None,
        timeout: float | None = None,
        media: list | None = None,
        base_url: str | None = None,
        stream: bool = True,
        conversation: JsonConversation | Mapping[str, Any] | None = None,
        return_conversation: bool = False,
        headers: Mapping[str, str] | None = None,
        total_timeout: float | None = None,
        join_deltas: bool = True,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        request = cls._build_request(
            model=model, messages=messages, proxy=proxy, timeout=timeout, total_timeout=total_timeout,
            media=media, base_url=base_url, stream=stream, conversation=conversation, headers=headers,
        )
        origin = request.origin
        deadline = Deadline(request.seconds, request.total_timeout)
        try:
            try:
                response = await deadline.wait(pool.post(
                    request.endpoint, body=request.body, headers=request.headers, proxy=request.proxy,
                    proxy_headers=request.proxy_headers, timeout=request.timeout,
                ))
            except Expired:
                raise deadline.error(origin, f"no answer within {request.seconds:g} s") from None
            except (asyncio.TimeoutError, *TRANSPORT_ERRORS) as error:
                if isinstance(error, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
                    raise G4FTimeoutError(f"{origin.endpoint}: no connection within {request.seconds:g} s") from None
                raise ResponseError(f"cannot reach {origin.endpoint}: {origin.quote(cause(error))}") from None
            finished = False
            try:
                # g4f's client enforces max_tokens by counting chunks: joined deltas would defeat it.
                join = bool(join_deltas) and max_tokens is None
                async for item in read_answer(response, origin, deadline, request.stream, join):
                    yield item
                finished = True
            finally:
                # An early stop (break, aclose, cancel) or an error must drop the
                # connection at once: the rest of the body is unread.
                if finished:
                    response.release()
                else:
                    response.close()
        finally:
            deadline.close()
        if return_conversation:
            yield JsonConversation(thread_id=request.thread_id)

    @classmethod
    def _build_request(
        cls, *, model: Any, messages: Any, proxy: Any, timeout: Any, total_timeout: Any, media: Any,
        base_url: Any, stream: Any, conversation: Any, headers: Any,
    ) -> "_Request":
        """Check every argument and build the request, for both stream modes, before any I/O."""
        # g4f checks ``working`` only where it picks providers itself; a client
        # given this provider by name would call it anyway, so it refuses too.
        if not cls.working:
            raise ProviderNotWorkingError(
                f"{cls.__name__} is not working (turned off by {WORKING_ENV}=0 or its working attribute)"
            )
        model = cls.get_model(model)
        wire_messages = wire.check_messages(messages)
        if media:
            if model not in cls.vision_models:
                debug.log(f"AutonomousAI: {model} cannot see images, using {cls.default_vision_model}")
                model = cls.default_vision_model
            wire_messages = wire.attach_images(wire_messages, wire.media_urls(media))
        endpoint, shown_endpoint = _endpoint(base_url, model)
        proxy, proxy_auth = _proxy_and_credentials(wire.check_proxy(proxy))
        request_headers = wire.build_headers(headers)
        proxy_headers = None
        if proxy_auth and endpoint.startswith("https:"):
            proxy_headers = proxy_auth  # aiohttp sends these on the CONNECT only
        elif proxy_auth:
            request_headers.update(proxy_auth)  # plain http: the proxy reads the request itself
        thread_id = _thread_id(conversation) or str(uuid.uuid4())
        seconds = _seconds("timeout", timeout, DEFAULT_TIMEOUT)
        encoded_messages = wire.encode_messages(wire_messages)
        return _Request(
            endpoint=endpoint,
            shown_endpoint=shown_endpoint,
            body=wire.build_body(model, encoded_messages, thread_id, bool(stream)),
            headers=request_headers,
            proxy=proxy,
            proxy_headers=proxy_headers,
            timeout=_timeout_for(seconds),
            seconds=seconds,
            total_timeout=_seconds("total_timeout", total_timeout, None),
            stream=bool(stream),
            thread_id=thread_id,
            # Servers echo input in their errors: quoted upstream text hides the user's.
            origin=wire.Origin(shown_endpoint, Redactor(wire_messages, encoded_messages).redact),
        )

    @classmethod
    async def get_health(cls, api_key: str | None = None, base_url: str | None = None, **kwargs: Any) -> dict:
        """A cheap GET of the base URL; reports reachability and never raises."""
        given, _ = wire.configured_base_url(base_url)
        result: dict[str, Any] = {"url": wire.redact_url(str(given)), "status": 0, "ok": False}
        try:
            url = wire.resolve_base_url(base_url)  # a bad URL is a report too, not an exception
            result["url"] = wire.redact_url(url)
            session = await pool.pooled_session()
            async with session.get(
                url, headers=wire.build_headers(), timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                text = await _read_head(response, HEALTH_READ_LIMIT)
                result["status"] = response.status
                challenged = wire.is_cloudflare_challenge(text)
                result["ok"] = response.status < 500 and not challenged
                if challenged:
                    result["error"] = "Cloudflare challenge page"
                elif response.status >= 500:
                    result["error"] = f"HTTP {response.status}"
        except Exception as error:  # a health probe reports, it does not raise
            result["error"] = cause(error)
        return result


async def _read_head(response: aiohttp.ClientResponse, limit: int) -> str:
    """The first ``limit`` bytes of a body: enough to spot a challenge page, cheap on a big one."""
    head = bytearray()
    while len(head) < limit:
        chunk = await response.content.read(limit - len(head))
        if not chunk:
            break
        head += chunk
    return head.decode("utf-8", errors="replace")


def _endpoint(base_url: Any, model: str) -> tuple[str, str]:
    """The endpoint URL and its redacted form, validated once per distinct input.

    Checking and redacting parse URLs: about 5% of a short answer's client
    time (bench), the same work on every call.
    """
    if base_url is not None and not isinstance(base_url, str):
        return _resolve_endpoint(base_url, "", model)  # unhashable: let wire raise its ValueError
    return _cached_endpoint(base_url, os.environ.get(wire.BASE_URL_ENV, ""), model)


def _resolve_endpoint(base_url: Any, from_env: str, model: str) -> tuple[str, str]:
    # from_env is only part of the cache key: resolve_base_url reads the variable itself.
    endpoint = wire.endpoint_url(wire.resolve_base_url(base_url), model)
    return endpoint, wire.redact_url(endpoint)


_cached_endpoint = functools.lru_cache(maxsize=64)(_resolve_endpoint)


@functools.lru_cache(maxsize=64)
def _timeout_for(seconds: float) -> aiohttp.ClientTimeout:
    # connect= also bounds the DNS look-up, which sock_connect does not cover.
    # Reads are bounded by the provider's own Deadline, which counts events, not bytes.
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_connect=seconds)


def _seconds(name: str, value: Any, default: float | None) -> float | None:
    """A positive number of seconds; None or 0 means ``default``."""
    if value is None or (value == 0 and not isinstance(value, bool)):
        return default
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


def _proxy_and_credentials(proxy: str | None) -> tuple[str | None, dict[str, str] | None]:
    """The proxy URL without user and password, and those as a Proxy-Authorization header.

    aiohttp quotes the proxy URL in its error texts (a proxy's 407, say);
    kept out of the URL, the password cannot reach an error or a traceback.
    """
    if proxy is None:
        return None, None
    parts = urlsplit(proxy)
    if parts.username is None and parts.password is None:
        return proxy, None
    credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    try:
        raw = credentials.encode("latin-1")  # what aiohttp itself uses for URL credentials
    except UnicodeEncodeError:
        raw = credentials.encode("utf-8")
    bare = parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()
    return bare, {"Proxy-Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}


def _thread_id(conversation: Any) -> str | None:
    if conversation is None:
        return None
    if isinstance(conversation, Mapping):
        thread_id = conversation.get("thread_id")
    else:
        thread_id = getattr(conversation, "thread_id", None)
    return thread_id if isinstance(thread_id, str) and thread_id else None
