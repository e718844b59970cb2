"""The real service, when it can be reached: does it still speak the protocol the provider expects?

Deselected by default; run with ``pytest -m live``. Set G4F_AUTONOMOUS_LIVE_URL
to test another server. Skipped, with the reason, when the service cannot
be reached; each endpoint fails with the list of its differences otherwise.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from g4f_autonomous import wire
from g4f_autonomous.probe import EndpointReport, endpoint_models, probe_all

pytestmark = pytest.mark.live
# conftest clears G4F_AUTONOMOUS_BASE_URL so that no other test leaves loopback; this one is for live runs.
LIVE_URL_ENV = "G4F_AUTONOMOUS_LIVE_URL"


@pytest.fixture(scope="module")
def reports() -> dict[str, EndpointReport]:
    # One round of chats for the whole module: a public service, asked as little as possible.
    found = asyncio.run(probe_all(os.environ.get(LIVE_URL_ENV) or None))
    unreachable = [r for r in found if any(d.expected == "an HTTP answer" for d in r.differences)]
    if len(unreachable) == len(found):
        url = wire.redact_url(wire.resolve_base_url(os.environ.get(LIVE_URL_ENV) or None))
        pytest.skip(f"cannot reach {url}: {unreachable[0].differences[0].found}")
    return {report.endpoint: report for report in found}


@pytest.mark.parametrize("endpoint", list(endpoint_models()))
def test_endpoint_speaks_the_protocol(reports, endpoint):
    differences = reports[endpoint].differences
    assert not differences, "\n".join(str(d) for d in differences)
