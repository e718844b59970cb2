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
as the last event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .sse import SSEDecoder, SSEError

USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")
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
    content_type = _header(headers, "content-type")
    if not content_type.lower().startswith("text/event-stream"):
        differences.append(Difference("content type", "text/event-stream", content_type or "none"))
    decoder = SSEDecoder()
    try:
        events = decoder.feed(body) + decoder.close()
    except SSEError as error:
        return differences + [Difference("event shape", "events of a sane size", str(error))]
    if not events:
        return differences + [Difference("event shape", "server-sent events", _excerpt(body) or "an empty body")]

    texts = finish = usage = 0
    done_at = None
    for index, event in enumerate(events):
        if event.data == "[DONE]":
            done_at = index
            continue
        found = _check_event(event.data, index, differences)
        if found is None:
            continue
        has_text, has_finish, event_usage = found
        texts += has_text
        finish += has_finish
        if event_usage is not None:
            usage += 1
            wrong = [name for name in USAGE_FIELDS if not _is_count(event_usage.get(name))]
            if wrong:
                differences.append(Difference("usage", f"integer {', '.join(USAGE_FIELDS)}",
                                              f"event {index}: {json.dumps(event_usage)[:120]}"))
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


def _check_event(data: str, index: int, differences: list[Difference]) -> tuple[bool, bool, dict | None] | None:
    """(has text, has finish reason, usage) of one event, noting its differences; None if unusable."""
    try:
        payload = json.loads(data)
    except ValueError:
        differences.append(Difference("event shape", "JSON data", f"event {index}: {data[:80]!r}"))
        return None
    if not isinstance(payload, dict):
        differences.append(Difference("event shape", "a JSON object", f"event {index}: {type(payload).__name__}"))
        return None
    if payload.get("error"):
        found = f"event {index}: {json.dumps(payload['error'])[:120]}"
        differences.append(Difference("event shape", "no error member", found))
    choices = payload.get("choices")
    has_text = has_finish = False
    if choices is not None and not (isinstance(choices, list) and all(isinstance(c, dict) for c in choices)):
        found = f"event {index}: {json.dumps(choices)[:80]}"
        differences.append(Difference("fields", "choices: a list of objects", found))
    elif choices:
        choice = choices[0]
        delta = choice.get("delta", choice.get("message"))
        if delta is not None and not isinstance(delta, dict):
            found = f"event {index}: {type(delta).__name__}"
            differences.append(Difference("fields", "choices[0].delta: an object", found))
        elif delta is not None and "content" in delta and delta["content"] is not None \
                and not isinstance(delta["content"], str):
            differences.append(Difference("fields", "choices[0].delta.content: a string",
                                          f"event {index}: {type(delta['content']).__name__}"))
        elif delta:
            has_text = bool(delta.get("content"))
        reason = choice.get("finish_reason")
        if reason is not None and not isinstance(reason, str):
            differences.append(Difference("finish reason", "a string", f"event {index}: {json.dumps(reason)[:40]}"))
        has_finish = isinstance(reason, str) and bool(reason)
    elif "usage" not in payload and "finish_reason" not in payload:
        found = f"event {index}: {data[:80]!r}"
        differences.append(Difference("event shape", "choices, usage or finish_reason", found))
    # Older servers sent the finish reason at the top level; the provider reads that too.
    has_finish = has_finish or (isinstance(payload.get("finish_reason"), str) and bool(payload["finish_reason"]))
    usage = payload.get("usage")
    if usage is not None and not isinstance(usage, dict):
        differences.append(Difference("usage", "an object", f"event {index}: {json.dumps(usage)[:40]}"))
        usage = None
    return has_text, has_finish, usage


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def _excerpt(body: bytes) -> str:
    text = " ".join(body[:200].decode("utf-8", errors="replace").split())
    return repr(text) if text else ""
