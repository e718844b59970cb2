"""The longest time the running event loop was held by someone else, measured by a ticker task.

g4f's servers run every user's call on one event loop: a step that holds the
loop for seconds delays every other user. A test wraps the work in
``async with LoopTicker() as ticker:`` and then asserts on ``ticker.longest``,
the longest gap between two wake-ups of a task that asks to wake every
``interval`` seconds, less that interval. The bound a test asserts is a
failure signal (seconds of freeze), never a performance target.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType


class LoopTicker:
    """Measures the longest stall of the running loop while the ``async with`` block runs."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.longest = 0.0  # seconds the loop was held beyond the interval
        self.ticks = 0
        self._task: asyncio.Task | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.longest = max(self.longest, now - last - self.interval)
            self.ticks += 1
            last = now

    async def __aenter__(self) -> LoopTicker:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)  # let it take its first reading
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._task is not None
        # A stall that ends just as the block does is measured only if the ticker wakes once more.
        await asyncio.sleep(self.interval)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
