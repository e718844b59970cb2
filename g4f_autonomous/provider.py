"""The AutonomousAI provider: g4f's declaration, then build, send, read.

The request is built by ``request``, sent by ``session``, read by ``answer``;
every error about an answer is worded by ``errors``.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from . import answer, errors, wire
from . import session as pool
from .answer import TRANSPORT_ERRORS, Deadline, Expired, read_answer, read_up_to
from .compat import (
    AsyncGeneratorProvider,
    JsonConversation,
    ModelNotFoundError,
    ProviderModelMixin,
    ProviderNotWorkingError,
    debug,
)
from .request import Request, build_request

WORKING_ENV = "G4F_AUTONOMOUS_WORKING"
HEALTH_READ_LIMIT = 2**16
HEALTH_TIMEOUT = 10.0  # seconds for the whole probe
# Messages larger than this (characters of text, or a count of messages) are
# checked and encoded in a worker thread. On the loop, 10 MB held it 150-310 ms
# and 100,000 short messages 210 ms (bench.hostile's 413 and 10 MB rows); in a
# thread the loop waits at most for one C call (wire.ENCODE_SLICE).
OFF_LOOP_CHARACTERS = 2**20
OFF_LOOP_MESSAGES = 2_000


def _max_tokens(value: Any) -> int | None:
    """The caller's max_tokens: None, or a whole number of deltas of at least 1."""
    if value is None:
        return None
    if type(value) is int and value >= 1:
        return value
    shown = repr(value) if isinstance(value, (int, float)) else type(value).__name__
    raise ValueError(f"max_tokens must be a whole number of at least 1, got {shown[:40]}")


def _working_from_env() -> bool:
    value = os.environ.get(WORKING_ENV)
    return value is None or value.strip().lower() not in ("0", "false", "no", "off")


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
        """g4f's resolution (empty or "auto" → default, alias → model), but strict.

        g4f's own lookup also accepts any suffix of a model name ("ma" → "llama"),
        which turns a typo into a silent model switch; here a name must be a
        model or an alias, so g4f's lookup is not called at all.
        """
        if model in cls.models:  # the common case: an exact upstream name
            return model
        if model is not None and not isinstance(model, str):
            raise ModelNotFoundError(
                f"AutonomousAI: model must be a string such as 'llama', got {type(model).__name__}"
            )
        if not model or model == "auto":
            return cls.default_model
        if model in cls.model_aliases:
            return cls.model_aliases[model]
        aliases = ", ".join(f"{alias} → {name}" for alias, name in cls.model_aliases.items())
        raise ModelNotFoundError(
            f"AutonomousAI has no model {wire.bounded(model)}. Models: {', '.join(cls.models)}. Aliases: {aliases}"
        )

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
        max_tokens = _max_tokens(max_tokens)
        # The upstream takes no limit, so the provider keeps max_tokens by counting
        # deltas as g4f's client counts chunks: for that it asks for a stream even
        # when the caller wants the answer whole (it is then held and given as one).
        build = functools.partial(
            cls._build_request,
            model=model, messages=messages, proxy=proxy, timeout=timeout, total_timeout=total_timeout,
            media=media, base_url=base_url, stream=stream or max_tokens is not None, conversation=conversation,
            headers=headers,
        )
        request = await asyncio.to_thread(build) if _is_large(messages) else build()
        origin = request.origin
        # Without total_timeout a call still ends: at the default, or later if the gap itself is longer.
        deadline = Deadline(
            request.seconds, request.total_timeout, default_total=max(answer.DEFAULT_TOTAL_TIMEOUT, request.seconds)
        )
        try:
            try:
                response = await deadline.wait(pool.post(
                    request.endpoint, body=request.body, headers=request.headers, proxy=request.proxy,
                    proxy_headers=request.proxy_headers,
                ))
            except Expired:
                raise deadline.error(origin) from None
            except TRANSPORT_ERRORS as error:
                raise errors.unreachable(origin, error) from None
            try:
                # g4f's client enforces max_tokens by counting chunks: joined deltas would defeat it.
                join = join_deltas and max_tokens is None
                async for item in read_answer(response, origin, deadline, stream, join, max_tokens):
                    yield item
            finally:
                # aiohttp keeps the connection only if the body was read to its end: an early
                # stop (break, aclose, cancel) or an error drops it, the rest of the body unread.
                response.release()
        finally:
            deadline.close()
        if return_conversation:
            yield JsonConversation(thread_id=request.thread_id)

    @classmethod
    def _build_request(cls, *, model: Any, media: Any = None, **arguments: Any) -> Request:
        """Refuse when turned off, resolve the model, then check and build everything before any I/O."""
        # g4f checks ``working`` only where it picks providers itself; a client
        # given this provider by name would call it anyway, so it refuses too.
        if not cls.working:
            raise ProviderNotWorkingError(
                f"{cls.__name__} is not working (turned off by {WORKING_ENV}=0 or its working attribute)"
            )
        model = cls.get_model(model)
        if media and model not in cls.vision_models:
            debug.log(f"AutonomousAI: {model} cannot see images, using {cls.default_vision_model}")
            model = cls.default_vision_model
        return build_request(model=model, media=media, **arguments)

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
                url, headers=wire.build_headers(), timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT),
                auto_decompress=False,  # answer.Body decodes, in bounded slices
            ) as response:
                text = (await read_up_to(response, HEALTH_READ_LIMIT)).decode(errors="replace")
                result["status"] = response.status
                challenged = wire.is_cloudflare_challenge(text)
                result["ok"] = response.status < 500 and not challenged
                if challenged:
                    result["error"] = "Cloudflare challenge page"
                elif response.status >= 500:
                    result["error"] = f"HTTP {response.status}"
        except answer.BodyError as error:  # an encoding it cannot decode, or a page decoding past its cap
            result["error"] = errors.cause(error.error)
        except (ValueError, asyncio.TimeoutError, *TRANSPORT_ERRORS) as error:
            # What a bad URL, an unreachable or odd server gives: a report, not an exception.
            # Anything else is a bug of ours, and shows as one.
            result["error"] = errors.cause(error)
        return result


def _is_large(messages: Any) -> bool:
    """Whether checking and encoding ``messages`` would hold the loop long (OFF_LOOP_*); stops early."""
    if not isinstance(messages, list):
        return False  # build_request names the problem
    if len(messages) > OFF_LOOP_MESSAGES:
        return True
    size = 0
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            size += len(content)
        elif isinstance(content, list):
            texts = [part.get("text") for part in content if isinstance(part, Mapping)]
            size += sum(len(text) for text in texts if isinstance(text, str))
        if size > OFF_LOOP_CHARACTERS:
            return True
    return False
