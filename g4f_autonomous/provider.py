"""The AutonomousAI provider: g4f's declaration, then the request, then the answer loop."""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Mapping
from urllib.parse import unquote, urlsplit

import aiohttp
from g4f import debug
from g4f.errors import G4FError, ModelNotFoundError, ProviderNotWorkingError, ResponseError
from g4f.errors import TimeoutError as G4FTimeoutError
from g4f.providers.base_provider import AsyncGeneratorProvider, ProviderModelMixin
from g4f.providers.response import FinishReason, JsonConversation, Usage

from . import wire
from .session import pooled_session
from .sse import SSEDecoder, SSEError

WORKING_ENV = "G4F_AUTONOMOUS_WORKING"
DEFAULT_TIMEOUT = 120.0
READ_SIZE = 2**16
END_GRACE = 0.05  # seconds to wait after [DONE] for the end of the body
LARGE_BODY = 2**20  # aiohttp's own threshold for its large-body warning
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
    stream: bool
    thread_id: str
    messages: list[dict[str, Any]]  # as sent, to redact echoes of them from errors


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
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        request = cls._build_request(model, messages, proxy, timeout, media, base_url, stream, conversation, headers)
        session = await pooled_session()
        try:
            response = await session.post(
                request.endpoint, data=_payload(request.body), headers=request.headers, proxy=request.proxy,
                proxy_headers=request.proxy_headers, timeout=request.timeout,
            )
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise G4FTimeoutError(f"{request.shown_endpoint}: no answer within {request.timeout.sock_read:g} s") from error
        except aiohttp.ClientError as error:
            raise ResponseError(f"cannot reach {request.shown_endpoint}: {_cause(error)}") from error

        finished = False
        try:
            async for item in _read_answer(response, request.shown_endpoint, request.stream, request.timeout):
                yield item
            finished = True
        except G4FError as error:
            # Error texts quote bodies, and servers echo input: hide the user's words.
            error.args = tuple(
                wire.redact_quotes(arg, wire.message_texts(request.messages)) if isinstance(arg, str) else arg
                for arg in error.args
            )
            raise
        finally:
            # An early stop (break, aclose, cancel) must drop the connection at
            # once: the rest of the body is unread, so it cannot be reused.
            if finished:
                response.release()
            else:
                response.close()
        if return_conversation:
            yield JsonConversation(thread_id=request.thread_id)

    @classmethod
    def _build_request(
        cls, model: Any, messages: Any, proxy: Any, timeout: Any, media: Any, base_url: Any,
        stream: Any, conversation: Any, headers: Any,
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
            wire_messages = wire.attach_images(wire_messages, _media_urls(media))
        endpoint, shown_endpoint = _endpoint(base_url, model)
        proxy, proxy_auth = _proxy_and_credentials(wire.check_proxy(proxy))
        request_headers = wire.build_headers(headers)
        proxy_headers = None
        if proxy_auth and endpoint.startswith("https:"):
            proxy_headers = proxy_auth  # aiohttp sends these on the CONNECT only
        elif proxy_auth:
            request_headers.update(proxy_auth)  # plain http: the proxy reads the request itself
        thread_id = _thread_id(conversation) or str(uuid.uuid4())
        return _Request(
            endpoint=endpoint,
            shown_endpoint=shown_endpoint,
            body=wire.build_body(model, wire_messages, thread_id, bool(stream)),
            headers=request_headers,
            proxy=proxy,
            proxy_headers=proxy_headers,
            timeout=_client_timeout(timeout),
            stream=bool(stream),
            thread_id=thread_id,
            messages=wire_messages,
        )

    @classmethod
    async def get_health(cls, api_key: str | None = None, base_url: str | None = None, **kwargs: Any) -> dict:
        """A cheap GET of the base URL; reports reachability and never raises."""
        given, _ = wire.configured_base_url(base_url)
        result: dict[str, Any] = {"url": wire.redact_url(str(given)), "status": 0, "ok": False}
        try:
            url = wire.resolve_base_url(base_url)  # a bad URL is a report too, not an exception
            result["url"] = wire.redact_url(url)
            session = await pooled_session()
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
            result["error"] = _cause(error)
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


async def _read_answer(
    response: aiohttp.ClientResponse, endpoint: str, stream: bool, timeout: aiohttp.ClientTimeout
) -> AsyncIterator[Any]:
    content_type = response.headers.get("content-type", "").lower()
    answer = _Answer(endpoint)
    if response.status >= 300 or not content_type.startswith("text/event-stream"):
        body = await _read_text(response, endpoint, timeout)
        if response.status >= 300 or wire.looks_like_html(content_type, body):
            raise wire.http_failure(response.status, content_type, body, endpoint)
        text = answer.take_body(body)
        if text:
            yield text
    else:
        held: list[str] = []  # stream=False: one piece at the end
        decoder = SSEDecoder()
        try:
            async for block in response.content.iter_chunked(READ_SIZE):
                for text in answer.take(decoder.feed(block)):
                    if stream:
                        yield text
                    else:
                        held.append(text)
                if answer.done:
                    await _finish_body(response)
                    break
            else:
                held.extend(answer.take(decoder.close()))
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise G4FTimeoutError(
                f"{endpoint}: stream stalled for {timeout.sock_read:g} s after {answer.deltas} deltas"
            ) from error
        except aiohttp.ClientError as error:
            raise ResponseError(f"{endpoint}: stream broke after {answer.deltas} deltas: {_cause(error)}") from error
        except SSEError as error:
            raise ResponseError(f"{endpoint}: {error}") from error
        if not (answer.done or answer.deltas or answer.finish_reason):
            # Not one answer event and no [DONE]: an empty reply would hide the failure.
            raise ResponseError(f"{endpoint}: event stream ended without an answer or [DONE]")
        if held:
            yield "".join(held)
    if answer.finish_reason:
        yield FinishReason(answer.finish_reason)
    if answer.usage:
        yield Usage(**answer.usage)


async def _finish_body(response: aiohttp.ClientResponse) -> None:
    """After [DONE], read the end of the body if it comes at once, so the connection is reused.

    aiohttp only returns a connection to the pool when its body was read to the
    end, and a server often sends [DONE] and the end of the body in two writes.
    Without this, about one call in 30 paid for a new connection (measured in
    ``bench``). A server that keeps the body open is not waited for.
    """
    if response.content.is_eof():
        return
    await asyncio.sleep(0)  # one turn of the loop reads an end already on the socket: no task needed
    if response.content.is_eof():
        return
    try:
        await asyncio.wait_for(_discard_rest(response.content), END_GRACE)
    except (asyncio.TimeoutError, aiohttp.ClientError):
        pass  # the answer is complete; only the connection is not reused


async def _discard_rest(content: aiohttp.StreamReader) -> None:
    while await content.readany():
        pass


class _Answer:
    """What has been read of one answer so far: the end marker, finish reason, usage."""

    __slots__ = ("endpoint", "done", "deltas", "finish_reason", "usage")

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.done = False
        self.deltas = 0
        self.finish_reason: str | None = None
        self.usage: dict | None = None

    def take(self, events: list) -> list[str]:
        """The text deltas of these events, up to ``[DONE]``."""
        texts = []
        for event in events:
            if self.done:
                break
            if event.data == "[DONE]":
                self.done = True
                break
            chunk = self._parse(event.data)
            if chunk is not None and chunk.text:
                texts.append(chunk.text)
        self.deltas += len(texts)
        return texts

    def take_body(self, body: str) -> str:
        """A body not declared an event stream: one JSON object, or events after all."""
        if body.lstrip().startswith("{"):
            try:
                payload = json.loads(body)
            except ValueError:
                raise ResponseError(f"{self.endpoint}: answer is not valid JSON: {wire.excerpt(body)}") from None
            chunk = self._record(wire.read_chunk(payload, self.endpoint))
            return chunk.text
        decoder = SSEDecoder()
        events = decoder.feed(body.encode("utf-8")) + decoder.close()
        if not events:
            raise ResponseError(
                f"{self.endpoint}: answer is neither an event stream nor JSON: {wire.excerpt(body)}"
            )
        return "".join(self.take(events))

    def _parse(self, data: str) -> wire.Chunk | None:
        try:
            payload = json.loads(data)
        except ValueError:
            # Seen upstream: stray non-JSON lines between good events. Skip them,
            # and log only the size: the line may quote the user's message.
            debug.log(f"AutonomousAI: skipped a malformed event of {len(data)} characters from {self.endpoint}")
            return None
        return self._record(wire.read_chunk(payload, self.endpoint))

    def _record(self, chunk: wire.Chunk) -> wire.Chunk:
        self.finish_reason = chunk.finish_reason or self.finish_reason
        self.usage = chunk.usage or self.usage
        return chunk


async def _read_text(response: aiohttp.ClientResponse, endpoint: str, timeout: aiohttp.ClientTimeout) -> str:
    try:
        return await response.text(errors="replace")
    except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as error:
        raise G4FTimeoutError(f"{endpoint}: body stalled for {timeout.sock_read:g} s") from error
    except aiohttp.ClientError as error:
        raise ResponseError(f"{endpoint}: body broke off: {_cause(error)}") from error


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
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_connect=seconds, sock_read=seconds)


def _client_timeout(timeout: Any) -> aiohttp.ClientTimeout:
    """``timeout`` bounds connecting, the wait for the answer and each gap between events."""
    if timeout is None or timeout == 0:
        seconds = DEFAULT_TIMEOUT
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0:
        seconds = float(timeout)
    else:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return _timeout_for(seconds)


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


def _payload(body: bytes) -> bytes | io.BytesIO:
    # aiohttp sends a large bytes body in one write and warns (ResourceWarning)
    # that it may block the loop; a file-like body is sent in pieces.
    return io.BytesIO(body) if len(body) > LARGE_BODY else body


def _thread_id(conversation: Any) -> str | None:
    if conversation is None:
        return None
    if isinstance(conversation, Mapping):
        thread_id = conversation.get("thread_id")
    else:
        thread_id = getattr(conversation, "thread_id", None)
    return thread_id if isinstance(thread_id, str) and thread_id else None


def _media_urls(media: list) -> list[str]:
    from g4f.image import to_data_uri

    urls = []
    for item in media:
        data, filename = item if isinstance(item, (tuple, list)) else (item, None)
        urls.append(to_data_uri(data, filename))
    return urls


def _cause(error: BaseException) -> str:
    """A short cause without URLs that could carry credentials."""
    if isinstance(error, aiohttp.ClientConnectorError):
        os_error = error.os_error
        if isinstance(os_error, ConnectionError) and os_error.errno:
            # asyncio words a refused connect "Connect call failed"; the errno says why.
            return f"{type(error).__name__}: {os.strerror(os_error.errno)}"
        return f"{type(error).__name__}: {os_error.strerror or os_error}"
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {wire.excerpt(text)}" if text != type(error).__name__ else text
