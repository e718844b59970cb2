"""Load and lifetime: many streams at once, thousands in a row with flat
resources, early stops that hang up at once, and nothing left unclosed."""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import ask, on_an_emulator, text_of
from offline import offline_env
from polling import until
from prefetch import Prefetch

from g4f_autonomous import AutonomousAI
from g4f_autonomous.emulator import Fault, answer_text

REPO = Path(__file__).resolve().parent.parent


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def answer(base_url: str, text: str, **kwargs: Any) -> str:
    return text_of(await ask("llama", user(text), base_url=base_url, **kwargs))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


async def test_200_concurrent_streams_in_one_loop_each_exact(emulator):
    texts = [f"stream number {index} of many" for index in range(200)]
    answers = await asyncio.gather(*(answer(emulator.base_url, text) for text in texts))
    assert answers == [answer_text("llama", user(text)) for text in texts]
    assert len(emulator.requests) == 200
    assert emulator.open_streams == 0


@pytest.mark.alone
async def test_2000_sequential_requests_keep_fds_and_memory_flat(emulator):
    async def run(count: int, offset: int) -> None:
        for index in range(offset, offset + count):
            text = f"request {index}"
            assert await answer(emulator.base_url, text) == f"llama heard: {text}"
            emulator.requests.clear()  # the emulator's record is not the client's memory

    await run(100, 0)  # warm-up: pool, caches, lazy imports
    gc.collect()
    fds, rss, objects = open_fds(), rss_bytes(), len(gc.get_objects())
    await run(2000, 100)
    gc.collect()
    # A leak of one descriptor, or one object, per call would show 2,000 of them.
    assert open_fds() - fds <= 2  # measured: 0
    # The event loop keeps cancelled timers (and their contexts) until it purges
    # them in bulk: a few hundred at most, however many calls (measured: 80).
    assert len(gc.get_objects()) - objects < 500
    assert rss_bytes() - rss < 4 * 2**20  # measured: 0 to 0.3 MiB
    assert emulator.open_streams == 0


async def test_consumer_breaking_out_of_loop_hangs_up_at_once(emulator):
    emulator.fault = Fault(stall_after=2, stall_seconds=60)
    async for item in AutonomousAI.create_async_generator("llama", user("a b c d"), base_url=emulator.base_url,
                                                       join_deltas=False):
        assert item == "llama "
        break
    assert await until(lambda: emulator.disconnects == 1)
    assert emulator.open_streams == 0


async def test_consumer_calling_aclose_hangs_up_at_once(emulator):
    emulator.fault = Fault(stall_after=2, stall_seconds=60)
    stream = AutonomousAI.create_async_generator("llama", user("a b c d"), base_url=emulator.base_url,
                                                       join_deltas=False)
    assert await stream.__anext__() == "llama "
    await stream.aclose()
    assert await until(lambda: emulator.disconnects == 1)
    assert emulator.open_streams == 0


async def test_cancelled_consumer_task_hangs_up_at_once(emulator):
    emulator.fault = Fault(stall_after=2, stall_seconds=60)
    received: list[str] = []

    async def consume() -> None:
        async for item in AutonomousAI.create_async_generator("llama", user("a b c d"), base_url=emulator.base_url,
                                                       join_deltas=False):
            received.append(item)

    task = asyncio.create_task(consume())
    assert await until(lambda: len(received) == 2)  # now it waits in the stall
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    assert received == ["llama ", "heard: "]
    assert await until(lambda: emulator.disconnects == 1)
    assert emulator.open_streams == 0


SYNC_CLIENT_SCRIPT = """
import gc
from g4f.client import Client
import g4f_autonomous

client = Client(provider="AutonomousAI")
messages = [{"role": "user", "content": "hello sync world"}]
for _ in range(2):  # each call runs in a new event loop of its own
    print(client.chat.completions.create(model="llama", messages=messages).choices[0].message.content)
chunks = client.chat.completions.create(model="hermes-3", messages=messages, stream=True)
print("".join(chunk.choices[0].delta.content or "" for chunk in chunks))
del client, chunks
gc.collect()
"""


def run_sync_client_script(root: Path, env: dict[str, str], base_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", SYNC_CLIENT_SCRIPT],
        cwd=root, env={**env, "G4F_AUTONOMOUS_BASE_URL": base_url}, capture_output=True, text=True, timeout=120,
    )


def prefetch(jobs: Prefetch, root: Path) -> None:
    """The sync client's fresh interpreter, ahead of its test (see prefetch.py)."""
    env = offline_env(root, PYTHONPATH=str(REPO), PYTHONWARNINGS="error::ResourceWarning")
    jobs.submit("load sync client", on_an_emulator, functools.partial(run_sync_client_script, root, env))


def test_sync_client_calls_leave_nothing_unclosed(prefetched):
    result, requests = prefetched.result("load sync client")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["llama heard: hello sync world"] * 2 + ["hermes heard: hello sync world"]
    for sign in ("ResourceWarning", "Unclosed", "unclosed", "Exception ignored", "Traceback"):
        assert sign not in result.stderr, result.stderr
    assert len(requests) == 3
