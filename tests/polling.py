"""Bounded polling for what a server notices asynchronously (a disconnect, a closed stream)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """True as soon as ``condition()`` holds; its last value after ``seconds``."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()
