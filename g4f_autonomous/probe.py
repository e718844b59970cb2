"""One tiny real chat per upstream endpoint, answered as raw HTTP: the input of :mod:`.conformance`.

Used by ``g4f-autonomous check --deep`` and the ``live`` tests. Requests carry
the provider's headers and message encoding (:mod:`.wire`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field

import aiohttp

from . import errors, wire
from .answer import BodyError, read_up_to
from .conformance import BODY_LIMIT, Difference, check_answer
from .inflate import ACCEPT_ENCODING

PROMPT = [{"role": "user", "content": "Reply with one word: OK"}]


@dataclass
class EndpointReport:
    """What one endpoint answered, and how that differs from the protocol."""

    endpoint: str  # the path below the base URL
    model: str
    differences: list[Difference] = field(default_factory=list)

    @property
    def conforms(self) -> bool:
        return not self.differences


def endpoint_models() -> dict[str, str]:
    """Each endpoint path, with the first model served there."""
    paths: dict[str, str] = {}
    for model, path in wire.ENDPOINTS.items():
        paths.setdefault(path, model)
    return paths


async def probe_all(base_url: str | None = None, timeout: float = 30.0) -> list[EndpointReport]:
    """Chat once with every endpoint (one after the other: a public service, not a load test)."""
    base = wire.resolve_base_url(base_url)
    reports = []
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    # Decoded by answer.Body, in bounded slices, as the provider decodes: aiohttp
    # would inflate a whole read at once.
    async with aiohttp.ClientSession(
        timeout=client_timeout, auto_decompress=False, headers={"Accept-Encoding": ACCEPT_ENCODING}
    ) as session:
        for path, model in endpoint_models().items():
            reports.append(await _probe(session, base, path, model))
    return reports


async def _probe(session: aiohttp.ClientSession, base: str, path: str, model: str) -> EndpointReport:
    report = EndpointReport(path, model)
    # The documented request body, spelled out: what is probed is the service, not wire's signatures.
    body = json.dumps({"messages": wire.encode_messages(PROMPT), "threadId": str(uuid.uuid4()),
                       "stream": True, "aiAgent": model}).encode("ascii")
    try:
        async with session.post(base + path, data=body, headers=wire.build_headers()) as response:
            raw = await read_up_to(response, BODY_LIMIT + 1)
            report.differences = check_answer(response.status, dict(response.headers), raw[:BODY_LIMIT])
            if len(raw) > BODY_LIMIT:
                report.differences.append(Difference("event shape", f"an answer under {BODY_LIMIT} bytes", "more"))
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
        found = errors.excerpt(errors.cause(error)) or "no answer"
        report.differences.append(Difference("status", "an HTTP answer", found))
    except BodyError as error:  # an encoding that cannot be decoded, or decodes past the cap
        report.differences.append(Difference("status", "a readable body", errors.excerpt(str(error))))
    return report


def format_table(reports: list[EndpointReport]) -> str:
    """endpoint | model | result, one row per difference."""
    rows = [("endpoint", "model", "result")]
    for report in reports:
        if report.conforms:
            rows.append((report.endpoint, report.model, "conforms"))
        for index, difference in enumerate(report.differences):
            rows.append((report.endpoint if index == 0 else "", report.model if index == 0 else "", str(difference)))
    widths = [max(len(row[column]) for row in rows) for column in range(2)]
    return "\n".join(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}".rstrip() for row in rows)
