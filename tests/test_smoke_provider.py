"""The provider against the emulator: the basic round trip."""

from g4f.providers.response import FinishReason, Usage

from g4f_autonomous import AutonomousAI


async def test_stream_yields_deltas_then_finish_reason_then_usage(emulator):
    items = [item async for item in AutonomousAI.create_async_generator(
        "hermes-3", [{"role": "user", "content": "ping pong"}], base_url=emulator.base_url)]
    texts = [item for item in items if isinstance(item, str)]
    assert texts == ["hermes ", "heard: ", "ping ", "pong"]
    assert isinstance(items[-2], FinishReason) and items[-2].reason == "stop"
    assert isinstance(items[-1], Usage) and items[-1].completion_tokens == 4
    assert emulator.requests[0].path == "/api/v1/ai/chat-hermes"
