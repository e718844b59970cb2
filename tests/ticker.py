"""The longest time the running event loop was held by someone else, measured by a ticker task.

g4f's servers run every user's call on one event loop: a step that holds the
loop for seconds delays every other user. A test wraps the work in
``async with LoopTicker() as ticker:`` and then asserts on ``ticker.longest``,
the longest gap between two wake-ups of a task that asks to wake every
``interval`` seconds, less that interval. The bound a test asserts is a
failure signal (seconds of freeze), never a performance target.

``longest_work`` counts only the time this process worked during each gap
(its CPU time, all threads, capped by the gap): a loaded machine that runs
something else for a while stalls every task without the code under test
holding anything. A test of work on the loop (parsing, encoding, decoding, or
a thread holding the GIL through a long C call) asserts on it; a test of a
blocking wait (a join, a sleep) must use ``longest``, as waiting costs no CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType


class LoopTicker:
    """Measures the longest stall of the running loop while the ``async with`` block runs."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.longest = 0.0  # seconds the loop was held beyond the interval
        self.longest_work = 0.0  # the same, counting only time this process was working
        self.ticks = 0
        self._task: asyncio.Task | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        last, last_work = loop.time(), time.process_time()
        while True:
            await asyncio.sleep(self.interval)
            now, work = loop.time(), time.process_time()
            self.longest = max(self.longest, now - last - self.interval)
            self.longest_work = max(self.longest_work, min(now - last, work - last_work) - self.interval)
            self.ticks += 1
            last, last_work = now, work

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
