"""One pooled aiohttp session per event loop.

Keep-alive across calls is what makes short answers fast, but a session is
bound to the loop that created it, and g4f's sync client runs every call in
a loop of its own. So sessions are kept per loop and closed when that loop
shuts down: a tiny async generator is parked on the loop, and the loop's
``shutdown_asyncgens()`` (called by ``asyncio.run``, ``asyncio.Runner`` and
g4f's own sync bridge) finalises it, which closes the session. No
ResourceWarning, no thread, no ``atexit``.
"""

from __future__ import annotations

import asyncio
import socket
import weakref
from typing import AsyncIterator

import aiohttp

__all__ = ["pooled_session", "close_pooled_session"]

_pool: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, AsyncIterator[None]]]" = (
    weakref.WeakKeyDictionary()
)


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


async def _close_with_loop(
    loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession
) -> AsyncIterator[None]:
    try:
        yield
    finally:
        # The session refers to its loop, so the weak key alone would never let
        # go: without this, every call of g4f's sync client (a loop each) left
        # its loop and closed session behind.
        entry = _pool.get(loop)
        if entry is not None and entry[0] is session:
            del _pool[loop]
        await session.close()


async def pooled_session() -> aiohttp.ClientSession:
    """The running loop's shared session, created on first use."""
    loop = asyncio.get_running_loop()
    entry = _pool.get(loop)
    if entry is not None and not entry[0].closed:
        return entry[0]
    # limit=0: g4f callers decide their own concurrency; a cap here would
    # silently queue streams behind each other.
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, resolver=_Resolver())
    session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))
    keeper = _close_with_loop(loop, session)
    await keeper.__anext__()  # now the loop tracks it and will finalise it
    _pool[loop] = (session, keeper)
    return session


async def close_pooled_session() -> None:
    """Close this loop's session now (optional: loop shutdown does it too)."""
    entry = _pool.pop(asyncio.get_running_loop(), None)
    if entry is not None:
        await entry[1].aclose()
