"""The provider's clock: it bounds the upstream's time, never the caller's, and leaves the caller's task as it was.

Raw servers on 127.0.0.1 where the exact bytes and pauses matter; the emulator elsewhere.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import helpers
import pytest
from g4f.errors import TimeoutError as G4FTimeoutError
from polling import until
from raw_server import Answer, raw_server, read_request

from g4f_autonomous import AutonomousAI, answer
from g4f_autonomous.emulator import Fault

MESSAGES = [{"role": "user", "content": "tell me a story"}]
GUARD = 10.0  # a regression that hangs fails instead
EVENTS = b"".join(b'data: {"choices": [{"delta": {"content": "%d "}}]}\n\n' % index for index in range(3))


def stalling_after(head: bytes) -> Answer:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(head)
        await writer.drain()
        await asyncio.sleep(GUARD * 2)
    return answer


async def ask(base_url: str, **kwargs: Any) -> list:
    return await asyncio.wait_for(helpers.ask("llama", MESSAGES, base_url=base_url, **kwargs), GUARD)


async def test_a_consumer_slower_than_the_gap_is_neither_cancelled_nor_timed_out(emulator):
    # The whole answer arrives at once; the caller then holds its first delta for three times `timeout`.
    emulator.fault = Fault(deltas=3)
    agen = AutonomousAI.create_async_generator("llama", MESSAGES, base_url=emulator.base_url, timeout=0.1,
                                               join_deltas=False)
    items = []
    async for item in agen:
        if not items:
            await asyncio.sleep(0.3)  # a cancel from the provider's timer would land here
        items.append(item)
    assert helpers.text_of(items) == "tok tok tok "


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\noops",
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n<html>",
], ids=["an error body", "a body neither events nor JSON"])
async def test_a_body_that_stalls_is_bounded_by_the_gap(head):
    async with raw_server(stalling_after(head)) as base_url:
        with pytest.raises(G4FTimeoutError) as caught:
            await ask(base_url, timeout=0.3)
    assert str(caught.value) == f"{base_url}/chat: no answer within 0.3 s"


@pytest.mark.parametrize("head, expected", [
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 10000\r\n\r\n",
     "no answer within 0.3 s"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 10000\r\n\r\n" + EVENTS,
     "stream stalled for 0.3 s after 3 deltas"),
])
async def test_a_gap_is_reported_as_a_gap_even_with_a_total_timeout(head, expected):
    async with raw_server(stalling_after(head)) as base_url:
        with pytest.raises(G4FTimeoutError) as caught:
            await ask(base_url, timeout=0.3, total_timeout=60)
    assert str(caught.value) == f"{base_url}/chat: {expected}"


async def test_a_total_timeout_before_any_header_is_reported_as_total(emulator):
    emulator.fault = Fault(first_byte_delay=5)
    with pytest.raises(G4FTimeoutError) as caught:
        await ask(emulator.base_url, timeout=30, total_timeout=0.3)
    assert str(caught.value) == f"{emulator.base_url}/chat: total_timeout of 0.3 s reached"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="Task.cancelling() is new in 3.11")
@pytest.mark.parametrize("fault", [Fault(first_byte_delay=5), Fault(stall_after=1, stall_seconds=5)])
async def test_after_a_timeout_the_callers_task_is_not_left_cancelling(emulator, fault):
    emulator.fault = fault
    with pytest.raises(G4FTimeoutError):  # in this task: asyncio.wait_for would run it in one of its own
        await helpers.ask("llama", MESSAGES, base_url=emulator.base_url, timeout=0.2)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    # A later await of the caller's is not cancelled by what the provider did.
    await asyncio.sleep(0.01)


async def test_an_outside_cancel_during_the_wait_stays_a_cancel(emulator):
    emulator.fault = Fault(first_byte_delay=5)
    task = asyncio.ensure_future(ask(emulator.base_url, timeout=30))
    await until(lambda: len(emulator.requests) == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("can_uncancel", [True, False], ids=["uncancel", "3.10"])
async def test_an_outside_cancel_racing_the_deadline_stays_a_cancel(monkeypatch, can_uncancel):
    if can_uncancel and not answer.CAN_UNCANCEL:
        pytest.skip("Task.uncancel is new in 3.11")
    monkeypatch.setattr(answer, "CAN_UNCANCEL", can_uncancel)
    loop = asyncio.get_running_loop()
    deadline = answer.Deadline(0.05, None, 60)
    task = asyncio.ensure_future(deadline.wait(asyncio.sleep(30)))
    await asyncio.sleep(0)  # the task is waiting; the deadline's timer is due in 0.05 s
    loop.call_later(0.06, task.cancel)
    time.sleep(0.2)  # the loop held: both come due in its next step, the deadline's timer first
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline.close()


@pytest.mark.parametrize("can_uncancel", [True, False], ids=["uncancel", "3.10"])
async def test_the_deadline_alone_ends_the_wait_and_leaves_the_task_usable(monkeypatch, can_uncancel):
    if can_uncancel and not answer.CAN_UNCANCEL:
        pytest.skip("Task.uncancel is new in 3.11")
    monkeypatch.setattr(answer, "CAN_UNCANCEL", can_uncancel)
    deadline = answer.Deadline(0.05, None, 60)
    with pytest.raises(answer.Expired, match="^gap$"):
        await deadline.wait(asyncio.sleep(30))
    deadline.close()
    await asyncio.sleep(0.01)  # no cancel is left pending for the caller's next await
