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

A request is sent at most once, except when it met the server's close of an
idle kept-alive connection: then it is sent again, once, on a new connection.
``may_resend`` states the rule that tells the two apart, and why. The facts it
needs (was the connection reused, did a byte of an answer arrive, when the
server's close came) are counted by the connection's own protocol object
(``_Handler``), which costs next to nothing per request, unlike aiohttp's
trace hooks.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import io
import os
import threading
import time
import weakref
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler

from .inflate import ACCEPT_ENCODING

__all__ = ["pooled_session", "close_pooled_session", "post", "may_resend", "LARGE_BODY", "RESEND_WINDOW"]

LARGE_BODY = 2**20  # aiohttp's own threshold for its large-body warning

# How soon after a request goes out a close can still be the server's idle
# close crossing it on the wire (see ``may_resend``): a round trip to a server
# on another continent, with room for a busy loop, and well short of anything
# that takes a model call to produce.
RESEND_WINDOW = 0.25


class _Handler(ResponseHandler):
    """aiohttp's protocol for one connection, also noting what the resend rule needs.

    aiohttp calls ``set_response_params`` once per request, just before the
    request is written, and builds a new response parser there: from then on
    every byte the connection delivers belongs to this request's answer.
    Noting it here, where the transport hands bytes over, gives the same answer
    with aiohttp's C parser as with its pure-Python one.
    """

    request_began: float  # time.monotonic() when the current request was handed to the connection

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        # Requests begun on this connection (more than one: it was reused), and
        # the number of the last one during which bytes arrived (0: none yet).
        self.requests = self.answered = 0
        self.peer_closed_at: float | None = None  # when the server's FIN or reset arrived

    def set_response_params(self, **kwargs: Any) -> None:  # aiohttp passes keywords only
        self.requests += 1
        # Counted before aiohttp hands bytes that came early to the new parser
        # (through data_received): they are this request's answer.
        self.request_began = time.monotonic()
        attempt = _first_try.get()
        if attempt is not None:
            attempt.append(self)
        super().set_response_params(**kwargs)

    def data_received(self, data: bytes) -> None:
        if data:  # aiohttp itself calls this with b"" when it resumes reading
            self.answered = self.requests
        super().data_received(data)

    def eof_received(self) -> None:
        self._peer_closed()
        super().eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        if exc is not None:  # a reset or broken pipe; None is a close after EOF, or our own close
            self._peer_closed()
        super().connection_lost(exc)

    def may_resend(self) -> bool:
        """The resend rule (``may_resend``) applied to the current request."""
        closed_after = None if self.peer_closed_at is None else self.peer_closed_at - self.request_began
        return may_resend(reused=self.requests > 1, answered=self.answered == self.requests, closed_after=closed_after)

    def _peer_closed(self) -> None:
        if self.peer_closed_at is None:
            self.peer_closed_at = time.monotonic()


class _Connector(aiohttp.TCPConnector):
    """aiohttp's connector, with connections that count (``_Handler``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # aiohttp builds each connection's protocol with this factory (an
        # internal name, stable since aiohttp 3.0). Should it ever go, the
        # connections are plain ones and no request is resent: the safe side.
        self._factory = functools.partial(_Handler, loop=self._loop)  # type: ignore[assignment]


# aiohttp gives no handle on the connection of a request that failed, so the
# connection reports itself to the first try of the ``post`` running in the same
# task: the last one listed carried the request.
_first_try: contextvars.ContextVar[list[_Handler] | None] = contextvars.ContextVar(
    "g4f_autonomous_first_try", default=None,
)


def _new_session(*, force_close: bool = False) -> aiohttp.ClientSession:
    # limit=0: g4f callers decide their own concurrency; a cap here would
    # silently queue streams behind each other.
    # The threaded resolver (the system's, with /etc/hosts) even where aiodns is installed.
    connector = _Connector(limit=0, resolver=aiohttp.ThreadedResolver(), force_close=force_close)
    # No time limit: a call's waits, connecting included, are bounded by the
    # provider's deadline, armed before the POST; aiohttp's would only race it.
    # No cookie jar: one pooled session serves every user of a g4f server, so a
    # cookie one answer set would ride along on everybody's next request.
    # Only the encodings answer.Body can decode with a bound are asked for (a
    # caller's own Accept-Encoding still wins); each request then asks aiohttp
    # not to decode (auto_decompress=False), which would inflate a whole read
    # in one step on the loop.
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(), cookie_jar=aiohttp.DummyCookieJar(),
        headers={"accept-encoding": ACCEPT_ENCODING},
    )


class _Entry:
    """A loop's sessions: the pooled one, and one that never reuses a connection (for retries)."""

    __slots__ = ("session", "fresh", "pid", "keeper")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.session = _new_session()
        self.fresh: aiohttp.ClientSession | None = None
        self.pid = os.getpid()
        self.keeper = _close_with_loop(loop, self)  # parked on the loop by ``_entry``

    def fresh_session(self) -> aiohttp.ClientSession:
        if self.fresh is None:
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
    closer: list[threading.Thread] = []

    def close_session_then_loop() -> None:
        if closer:
            return  # a thread is closing it (see below): close() again has nothing to do
        # A running loop's close() refuses, and its session stays pooled.
        entry = None if loop.is_running() else _pool.pop(loop, None)
        if entry is None:
            close()
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # the usual case: no loop runs in this thread
            _close_session_then(loop, entry, close)
            return
        # Closed from a task of another loop: a thread runs one loop at a time,
        # so this one closes its session, then itself, in a thread of its own,
        # which the caller's loop does not wait for (close() does not wait for
        # the loop's default executor either): the loop is closed a moment later.
        # Only its signal handlers go now: only the main thread can remove them.
        for signal_number in list(getattr(loop, "_signal_handlers", {})):
            loop.remove_signal_handler(signal_number)
        closer.append(threading.Thread(target=_close_session_then, args=(loop, entry, close)))
        closer[0].start()

    try:
        loop.close = close_session_then_loop  # type: ignore[method-assign]
    except AttributeError:
        # A loop type without instance attributes: its owner has to call
        # shutdown_asyncgens() (asyncio.run does) for the session to close.
        return
    _watched.add(loop)


def _close_session_then(loop: asyncio.AbstractEventLoop, entry: _Entry, close: Any) -> None:
    try:
        loop.run_until_complete(entry.keeper.aclose())
    finally:
        close()


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
    entry = _Entry(loop)
    await entry.keeper.__anext__()  # now the loop tracks it and will finalise it
    _pool[loop] = entry
    _watch_close(loop)
    return entry


async def pooled_session() -> aiohttp.ClientSession:
    """The running loop's shared session, created on first use."""
    return (await _entry()).session


async def close_pooled_session() -> None:
    """Close this loop's session now (optional: loop shutdown does it too)."""
    entry = _pool.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await entry.keeper.aclose()


async def post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    proxy: str | None = None,
    proxy_headers: dict[str, str] | None = None,
) -> aiohttp.ClientResponse:
    """POST ``body`` on the running loop's pooled session; the caller releases the response.

    A request that failed is sent again, once and on a new connection, only
    under the rule in ``may_resend``. Errors are aiohttp's own.
    """
    def send(session: aiohttp.ClientSession) -> Any:
        return session.post(
            url, data=_payload(body), headers=headers, proxy=proxy, proxy_headers=proxy_headers, auto_decompress=False,
            allow_redirects=False,  # a redirect would re-send the user's messages to whatever host it names
        )

    entry = await _entry()
    connections: list[_Handler] = []
    token = _first_try.set(connections)
    try:
        return await send(entry.session)
    except aiohttp.ClientError:
        # The rule looks at the connection, not at the error: whatever aiohttp
        # calls it, a server that closed as the rule says never saw the request.
        if not (connections and connections[-1].may_resend()):
            raise
    finally:
        _first_try.reset(token)
    return await send(entry.fresh_session())


def _payload(body: bytes) -> bytes | io.BytesIO:
    # aiohttp sends a large bytes body in one write and warns (ResourceWarning)
    # that it may block the loop; a file-like body is sent in pieces. A new
    # one per attempt: a retry must send the whole body again.
    return io.BytesIO(body) if len(body) > LARGE_BODY else body


def may_resend(*, reused: bool, answered: bool, closed_after: float | None) -> bool:
    """Whether a request whose connection went away can be sent again without risk of doing its work twice.

    ``answered``: a byte of an answer arrived. ``closed_after`` is how long
    after the request was handed to the connection the server's FIN or reset
    arrived (None: it never did).

    A server may close a kept-alive connection it thinks idle just as the next
    request goes out on it. That close was sent before the request reached the
    server, so it arrives within about one round trip of the write, and the
    server never saw the request. A server that read the request and then died
    is different: it may have done the work and billed it. Resend only when all
    of these hold:

    - the connection was reused: only a kept-alive connection can be closed as
      idle, and a new connection that fails says something about the server;
    - not one byte of an answer arrived, counted where the connection hands
      bytes to aiohttp's parser, so a status line cut short (``HTTP/1.1 2``)
      counts, whichever parser aiohttp uses;
    - the close arrived within ``RESEND_WINDOW`` of the request. A server that
      held the request longer may be working on it.

    The window is measured from before the first byte is written, and a busy
    event loop only makes it look longer: doubt always falls on the side of
    not resending. What is left is a server that takes a request and drops
    the connection within the window without a byte of answer; it cannot be
    told apart from the race.
    """
    return reused and not answered and closed_after is not None and closed_after <= RESEND_WINDOW
