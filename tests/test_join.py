"""Joined deltas: the deltas decoded from one network read come as one string.

The text is the same however the bytes are split, nothing waits for a later
read, and g4f's max_tokens (which counts chunks) behaves as without joining.
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from g4f_autonomous import AutonomousAI
from g4f_autonomous.emulator import Fault

WORDS = [{"role": "user", "content": "one two three four five six seven eight nine ten"}]
ANSWER = "llama heard: one two three four five six seven eight nine ten"


async def strings(base_url: str, **kwargs) -> list[str]:
    agen = AutonomousAI.create_async_generator("llama", WORDS, base_url=base_url, **kwargs)
    return [item async for item in agen if isinstance(item, str)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunk_size=st.integers(min_value=0, max_value=300))
def test_joined_and_unjoined_texts_are_the_same_for_any_chunking(_emulator_thread, chunk_size):
    _emulator_thread.reset()
    _emulator_thread.emulator.fault = Fault(chunk_size=chunk_size)
    joined = asyncio.run(strings(_emulator_thread.base_url))
    _emulator_thread.emulator.fault = Fault(chunk_size=chunk_size)
    unjoined = asyncio.run(strings(_emulator_thread.base_url, join_deltas=False))
    assert "".join(joined) == "".join(unjoined) == ANSWER
    assert unjoined == ANSWER.replace(" ", " \0").split("\0")  # one word per delta
    assert 1 <= len(joined) <= len(unjoined)


async def test_deltas_written_at_once_come_as_one_string(emulator):
    # The emulator writes the whole short answer in one write: one read, one string.
    assert await strings(emulator.base_url) == [ANSWER]


async def test_a_delta_is_never_held_back_to_wait_for_the_next(emulator):
    emulator.fault = Fault(stall_after=1, stall_seconds=30)
    agen = AutonomousAI.create_async_generator("llama", WORDS, base_url=emulator.base_url)
    try:
        # The second delta is 30 s away: the first must come now, on its own.
        first = await asyncio.wait_for(agen.__anext__(), 10)
    finally:
        await agen.aclose()
    assert first == "llama "


async def test_max_tokens_counts_the_same_chunks_as_without_joining(emulator):
    """g4f's client stops after max_tokens chunks: with it, the provider does not join."""
    from g4f.client import AsyncClient

    client = AsyncClient(provider=AutonomousAI, base_url=emulator.base_url)

    async def content(**kwargs) -> str:
        stream = client.chat.completions.create(WORDS, "llama", max_tokens=3, stream=True, **kwargs)
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])

    assert await content() == await content(join_deltas=False) == "llama heard: one "
