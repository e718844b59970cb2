"""One pooled aiohttp session per event loop, and the POST that uses it.

Keep-alive across calls is what makes short answers fast, but a session is
bound to the loop that created it, and g4f's sync client runs every call in
a loop of its own. So sessions are kept per loop and closed when that loop
shuts down: a tiny async generator is parked on the loop, and the loop's
``shutdown_asyncgens()`` (called by ``asyncio.run``, ``asyncio.Runner`` and
g4f's own sync bridge) finalises it, which closes the session.

A loop closed by hand (``run_until_complete`` then ``close()``, no
``shutdown_asyncgens()``) would skip that and keep its session and sockets
forever, so the loop's ``close`` is wrapped to close the session first.
A forked child drops the pool: the pooled sockets are its parent's.
"""

from __future__ import annotations

import asyncio
import errno
import io
import os
import socket
import threading
import weakref
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp

from .inflate import ACCEPT_ENCODING

__all__ = ["pooled_session", "close_pooled_session", "post", "LARGE_BODY"]

LARGE_BODY = 2**20  # aiohttp's own threshold for its large-body warning


class _Resolver(aiohttp.ThreadedResolver):
    """aiohttp's default resolver, except that names under ``.invalid`` fail at once.

    RFC 6761 reserves ``.invalid`` and asks resolvers to answer it negatively
    without a look-up; offline, a look-up can hang for the resolver's timeout.
    """

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:
        name = host.rstrip(".").lower()
        if name == "invalid" or name.endswith(".invalid"):
            raise OSError(socket.EAI_NONAME, "Name or service not known (names under .invalid never resolve)")
        return await super().resolve(host, port, family)


class _Attempt:
    """Per request (aiohttp's ``trace_request_ctx``): was its connection taken from the pool?"""

    __slots__ = ("reused",)

    def __init__(self) -> None:
        self.reused = False


async def _on_reuse(session: aiohttp.ClientSession, context: Any, params: Any) -> None:
    if isinstance(context.trace_request_ctx, _Attempt):
        context.trace_request_ctx.reused = True


async def _on_create(session: aiohttp.ClientSession, context: Any, params: Any) -> None:
    if isinstance(context.trace_request_ctx, _Attempt):
        context.trace_request_ctx.reused = False


def _new_session(*, force_close: bool = False) -> aiohttp.ClientSession:
    tracing = aiohttp.TraceConfig()
    tracing.on_connection_reuseconn.append(_on_reuse)
    tracing.on_connection_create_end.append(_on_create)
    # limit=0: g4f callers decide their own concurrency; a cap here would
    # silently queue streams behind each other.
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, resolver=_Resolver(), force_close=force_close)
    # No cookie jar: one pooled session serves every user of a g4f server, so a
    # cookie one answer set would ride along on everybody's next request.
    # auto_decompress=False: aiohttp would inflate a whole read in one step on the
    # loop; answer.Body decodes in bounded slices instead, and only the encodings
    # it can bound are asked for (a caller's own Accept-Encoding still wins).
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None), trace_configs=[tracing],
        cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
        headers={"Accept-Encoding": ACCEPT_ENCODING},
    )


class _Entry:
    """A loop's sessions: the pooled one, and one that never reuses a connection (for retries)."""

    __slots__ = ("session", "keeper", "fresh", "pid")

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.keeper: AsyncGenerator[None, None] | None = None
        self.fresh: aiohttp.ClientSession | None = None
        self.pid = os.getpid()

    def fresh_session(self) -> aiohttp.ClientSession:
        if self.fresh is None or self.fresh.closed:
            # force_close: no connection is kept, so every request opens a new one.
            self.fresh = _new_session(force_close=True)
        return self.fresh

    async def close(self) -> None:
        await self.session.close()
        if self.fresh is not None:
            await self.fresh.close()


_pool: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Entry] = weakref.WeakKeyDictionary()
_watched: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()  # loops whose close is wrapped
_inherited: list[_Entry] = []  # in a forked child: the parent's entries, never used, never closed


async def _close_with_loop(loop: asyncio.AbstractEventLoop, entry: _Entry) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        # The session refers to its loop, so the weak key alone would never let
        # go: without this, every call of g4f's sync client (a loop each) left
        # its loop and closed session behind.
        if _pool.get(loop) is entry:
            del _pool[loop]
        # In a forked child the sockets are shared with the parent: closing them
        # gracefully (a TLS close_notify) would write on the parent's connections.
        if entry.pid == os.getpid():
            await entry.close()


def _watch_close(loop: asyncio.AbstractEventLoop) -> None:
    """Make ``loop.close()`` close the loop's pooled session first.

    A closed loop cannot run again, and a transport of a closed loop cannot be
    closed through public API (it schedules its last callback on the loop), so
    the session has to go while the loop can still run: at ``close()``.
    """
    if loop in _watched:
        return
    close = loop.close

    def close_session_then_loop() -> None:
        entry = _pool.get(loop)
        try:
            if entry is not None and entry.keeper is not None and not loop.is_running() and not loop.is_closed():
                _run_on(loop, entry.keeper.aclose())
        finally:
            close()

    try:
        loop.close = close_session_then_loop  # type: ignore[method-assign]
    except AttributeError:
        # A loop type without instance attributes: its owner has to call
        # shutdown_asyncgens() (asyncio.run does) for the session to close.
        return
    _watched.add(loop)


def _run_on(loop: asyncio.AbstractEventLoop, coroutine: Any) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop.run_until_complete(coroutine)  # the usual case: no loop runs in this thread
        return
    # Closed from a task of another loop: a thread runs one loop at a time,
    # so this one finishes its session in a short-lived thread of its own.
    worker = threading.Thread(target=loop.run_until_complete, args=(coroutine,), name="g4f-autonomous-close")
    worker.start()
    worker.join()


def _forget_parent_pool() -> None:
    # A child shares its parent's sockets, and one request on them would mix
    # the two processes' exchanges. The parent's entries stay referenced so
    # that nothing finalises (and closes, or warns about) them in the child.
    _inherited.extend(_pool.values())
    _pool.clear()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_forget_parent_pool)


async def _entry() -> _Entry:
    loop = asyncio.get_running_loop()
    entry = _pool.get(loop)
    if entry is not None and not entry.session.closed:
        return entry
    entry = _Entry(_new_session())
    keeper = _close_with_loop(loop, entry)
    await keeper.__anext__()  # now the loop tracks it and will finalise it
    entry.keeper = keeper
    _pool[loop] = entry
    _watch_close(loop)
    return entry


async def pooled_session() -> aiohttp.ClientSession:
    """The running loop's shared session, created on first use."""
    return (await _entry()).session


async def close_pooled_session() -> None:
    """Close this loop's session now (optional: loop shutdown does it too)."""
    entry = _pool.pop(asyncio.get_running_loop(), None)
    if entry is not None and entry.keeper is not None:
        await entry.keeper.aclose()


async def post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    proxy: str | None = None,
    proxy_headers: dict[str, str] | None = None,
    timeout: aiohttp.ClientTimeout,
) -> aiohttp.ClientResponse:
    """POST ``body`` on the running loop's pooled session; the caller releases the response.

    A server may close an idle kept-alive connection just as the next request
    goes out on it. Such a failure is retried once, on a new connection: only
    when the connection was reused and not a byte of the answer had arrived,
    so the server cannot have answered. A new connection that fails says
    something about the server and is not retried. Errors are aiohttp's own.
    """
    entry = await _entry()
    attempt = _Attempt()
    try:
        return await entry.session.post(
            url, data=_payload(body), headers=headers, proxy=proxy, proxy_headers=proxy_headers,
            timeout=timeout, trace_request_ctx=attempt, allow_redirects=False,  # see below
        )
    except aiohttp.ClientError as error:
        if not (attempt.reused and _closed_before_answer(error)):
            raise
    return await entry.fresh_session().post(
        url, data=_payload(body), headers=headers, proxy=proxy, proxy_headers=proxy_headers, timeout=timeout,
        allow_redirects=False,  # a redirect would re-send the user's messages to whatever host it names
    )


def _payload(body: bytes) -> bytes | io.BytesIO:
    # aiohttp sends a large bytes body in one write and warns (ResourceWarning)
    # that it may block the loop; a file-like body is sent in pieces. A new
    # one per attempt: a retry must send the whole body again.
    return io.BytesIO(body) if len(body) > LARGE_BODY else body


# aiohttp >= 3.10 raises this for a write on a connection already closing.
_WRITE_ON_CLOSING = getattr(aiohttp, "ClientConnectionResetError", ())


def _closed_before_answer(error: aiohttp.ClientError) -> bool:
    """Whether the connection went away under the request before any byte of an answer."""
    if isinstance(error, aiohttp.ServerDisconnectedError):
        # aiohttp hands a partly read answer over as the message; with nothing
        # read the message is its default text. (Its pure-Python parser cannot
        # tell a few bytes without a line end from none.)
        return isinstance(error.message, str)
    if isinstance(error, _WRITE_ON_CLOSING):
        return True
    if isinstance(error, aiohttp.ClientOSError) and not isinstance(error, aiohttp.ClientConnectorError):
        # A reset or broken pipe carries no count of bytes read; the idle close
        # it comes from here sends none.
        return error.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED)
    return False
