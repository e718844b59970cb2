"""Does an answer follow the protocol the provider expects? A pure function of one HTTP answer.

The public service cannot be reached from where this plugin is developed, so
its protocol rests on what is documented. ``g4f-autonomous check --deep`` and
the ``live`` tests send one tiny real chat per endpoint and hand the answer
(status, headers, body) to :func:`check_answer`, which lists every way it
differs from what the provider reads: a user who can reach the service
learns at once whether it still speaks that protocol.

The expected streamed answer: HTTP 200, ``text/event-stream``, events whose
data is a JSON object ``{"choices": [{"delta": {"content": "..."}, "finish_reason": ...}]}``,
one of them with a finish reason, one with ``usage`` (integer
``prompt_tokens``, ``completion_tokens``, ``total_tokens``), and ``[DONE]``
as the last event. What an event may hold is the provider's own reading of it,
:func:`wire.read_chunk`: a member it would drop is a difference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from . import wire
from .sse import SSEDecoder, SSEError

BODY_LIMIT = 2**20  # a tiny chat's answer is far smaller; more is a difference in itself


@dataclass(frozen=True)
class Difference:
    """One way an answer differs from the protocol."""

    aspect: str  # status, content type, event shape, fields, [DONE], finish reason, usage
    expected: str
    found: str

    def __str__(self) -> str:
        return f"{self.aspect}: expected {self.expected}, found {self.found}"


def check_answer(status: int, headers: Mapping[str, str], body: bytes) -> list[Difference]:
    """Every difference between this streamed answer and the protocol; [] when it conforms."""
    differences: list[Difference] = []
    if status != 200:
        differences.append(Difference("status", "200", str(status)))
    # The headers as a plain dict (probe's): the name's case is the server's.
    content_type = next((value for name, value in headers.items() if name.lower() == "content-type"), "")
    if not content_type.lower().startswith("text/event-stream"):
        differences.append(Difference("content type", "text/event-stream", content_type or "none"))
    decoder = SSEDecoder()
    try:
        events = decoder.feed(body) + decoder.close()
    except SSEError as error:
        return differences + [Difference("event shape", "events of a sane size", str(error))]
    if not events:
        excerpt = " ".join(body[:200].decode("utf-8", errors="replace").split())
        shown = repr(excerpt) if excerpt else "an empty body"
        return differences + [Difference("event shape", "server-sent events", shown)]

    texts = finish = usage = 0
    done_at = None
    for index, event in enumerate(events):
        if event.data == "[DONE]":
            done_at = index
            continue
        found = _check_event(event.data, index, differences)
        if found is not None:
            chunk, has_usage = found
            texts += bool(chunk.text)
            finish += chunk.finish_reason is not None
            usage += has_usage
    if not texts:
        differences.append(Difference("fields", "choices[0].delta.content text in some event", "none"))
    if done_at is None:
        differences.append(Difference("[DONE]", "data: [DONE] as the last event", "no [DONE]"))
    elif done_at != len(events) - 1:
        differences.append(Difference("[DONE]", "data: [DONE] as the last event",
                                      f"{len(events) - 1 - done_at} event(s) after it"))
    if not finish:
        differences.append(Difference("finish reason", "choices[0].finish_reason in some event", "none"))
    if not usage:
        differences.append(Difference("usage", "a usage object in some event", "none"))
    return differences


def _check_event(data: str, index: int, differences: list[Difference]) -> tuple[wire.Chunk, bool] | None:
    """The provider's reading of one event (:func:`wire.read_chunk`) and whether it has a usage object.

    None if the event is unusable.

    Every member the provider reads and finds of the wrong kind is a
    difference: the provider would silently leave it out.
    """
    try:
        payload = json.loads(data)
    except ValueError:
        differences.append(Difference("event shape", "JSON data", f"event {index}: {data[:80]!r}"))
        return None
    chunk = wire.read_chunk(payload)
    if chunk is None:
        differences.append(Difference("event shape", "a JSON object", f"event {index}: {type(payload).__name__}"))
        return None
    if chunk.error is not None:
        found = f"event {index}: {json.dumps(chunk.error)[:120]}"
        differences.append(Difference("event shape", "no error member", found))
    choices = payload.get("choices")
    if choices is not None and not (isinstance(choices, list) and all(isinstance(c, dict) for c in choices)):
        found = f"event {index}: {json.dumps(choices)[:80]}"
        differences.append(Difference("fields", "choices: a list of objects", found))
    elif choices:
        choice = choices[0]
        delta = choice.get("delta") or choice.get("message")
        if delta and not isinstance(delta, dict):
            found = f"event {index}: {type(delta).__name__}"
            differences.append(Difference("fields", "choices[0].delta: an object", found))
        elif delta and delta.get("content") not in (None, "") and not chunk.text:
            differences.append(Difference("fields", "choices[0].delta.content: a string",
                                          f"event {index}: {type(delta['content']).__name__}"))
        reason = choice.get("finish_reason")
        if reason is not None and wire.finish_reason(reason) is None:
            expected = f"a printable string of at most {wire.FINISH_REASON_LIMIT} characters"
            differences.append(Difference("finish reason", expected, f"event {index}: {json.dumps(reason)[:40]}"))
    elif "usage" not in payload and "finish_reason" not in payload:
        found = f"event {index}: {data[:80]!r}"
        differences.append(Difference("event shape", "choices, usage or finish_reason", found))
    raw_usage = payload.get("usage")
    if raw_usage is not None and not isinstance(raw_usage, dict):
        differences.append(Difference("usage", "an object", f"event {index}: {json.dumps(raw_usage)[:40]}"))
    elif raw_usage is not None and len(chunk.usage or ()) < len(wire.USAGE_COUNTS):
        differences.append(Difference("usage", f"integer {', '.join(wire.USAGE_COUNTS)}",
                                      f"event {index}: {json.dumps(raw_usage)[:120]}"))
    return chunk, isinstance(raw_usage, dict)  # a usage object with wrong counts is a difference of its own
