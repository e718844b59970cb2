"""Helpers the test modules share: a port nobody listens on, one call collected.

(The emulator in a thread of its own is ``g4f_autonomous.emulator.EmulatorThread``.)

Plain functions, no fixtures (those are in conftest.py). Import this module
only from tests, after conftest.py has set g4f's offline folders. It uses
nothing newer than what conftest.py uses, so the smoke suite, which CI runs
alone on old g4f releases, may import it too.
"""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from collections.abc import Callable
from typing import Any

from g4f_autonomous import AutonomousAI
from g4f_autonomous.emulator import EmulatorThread, Fault, RecordedRequest


def closed_port() -> int:
    """A loopback port nothing listens on (free for a server to bind): one the OS just handed out and took back."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def closed_port_url() -> str:
    """The service's base URL on a :func:`closed_port`: connecting to it is refused."""
    return f"http://127.0.0.1:{closed_port()}/api/v1/ai"


async def ask(model: Any, messages: Any, *, provider: Any = AutonomousAI, **kwargs: Any) -> list[Any]:
    """Every item ``provider.create_async_generator(model, messages, **kwargs)`` yields, in order."""
    return [item async for item in provider.create_async_generator(model, messages, **kwargs)]


def texts(items: list[Any]) -> list[str]:
    """The text chunks among the items of an answer (without FinishReason, Usage, ...)."""
    return [item for item in items if isinstance(item, str)]


def text_of(items: list[Any]) -> str:
    """The answer's text, as a user reads it."""
    return "".join(texts(items))


async def traced_peak(coroutine: Any, catch: type[BaseException] = Exception) -> tuple[BaseException | None, int]:
    """Run ``coroutine``; return what it raised (of ``catch``) and the peak of Python allocations meanwhile."""
    tracemalloc.start()
    try:
        await coroutine
        raised = None
    except catch as error:
        raised = error
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return raised, peak


def on_an_emulator(run: Callable[[str], Any], fault: Fault | None = None) -> tuple[Any, list[RecordedRequest]]:
    """``run(base_url)`` with an emulator of its own at base_url; what it returned, and what the emulator received.

    For jobs run ahead of their tests (prefetch.py): the session's emulator is the running test's.
    """
    with EmulatorThread(fault) as upstream:
        return run(upstream.base_url), list(upstream.emulator.requests)


class ClockAheadLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock a test moves forward: what was due by then runs at its next turn."""

    ahead = 0.0

    def time(self) -> float:
        return super().time() + self.ahead
