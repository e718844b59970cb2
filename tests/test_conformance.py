"""The protocol check: the pure check_answer, `check --deep` and the live tests, against the emulator.

The emulator answers as the protocol says; ``Fault`` scripts answers that do
not (a raw body, a status, a content type), and each difference must be named.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import closed_port_url
from offline import offline_env
from prefetch import Prefetch

from g4f_autonomous import cli
from g4f_autonomous.conformance import check_answer
from g4f_autonomous.emulator import EmulatorThread, Fault
from g4f_autonomous.probe import endpoint_models, probe_all

REPO = Path(__file__).resolve().parent.parent
SSE = {"Content-Type": "text/event-stream"}


def event(payload) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def chunk(content=None, finish=None, **extra) -> dict:
    delta = {} if content is None else {"content": content}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}


USAGE = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
GOOD = event(chunk("OK")) + event(chunk(finish="stop", usage=USAGE)) + event("[DONE]")


def aspects(status=200, headers=SSE, body=GOOD) -> list[str]:
    return [difference.aspect for difference in check_answer(status, headers, body)]


# --- the pure check --------------------------------------------------------------------


def test_a_conforming_answer_has_no_differences():
    assert check_answer(200, SSE, GOOD) == []
    assert check_answer(200, {"content-type": "text/event-stream; charset=utf-8"}, GOOD) == []


def test_top_level_finish_reason_is_read_too():
    body = event(chunk("OK")) + event({"finish_reason": "stop", "usage": USAGE}) + event("[DONE]")
    assert check_answer(200, SSE, body) == []


@pytest.mark.parametrize("status, headers, body, expected", [
    (503, SSE, GOOD, ["status"]),
    (200, {"Content-Type": "application/json"}, GOOD, ["content type"]),
    (200, {}, GOOD, ["content type"]),
    (200, SSE, event(chunk("OK")) + event(chunk(finish="stop", usage=USAGE)), ["[DONE]"]),
    (200, SSE, event("[DONE]") + event(chunk("OK")) + event(chunk(finish="stop", usage=USAGE)), ["[DONE]"]),
    (200, SSE, event(chunk("OK")) + event(chunk(usage=USAGE)) + event("[DONE]"), ["finish reason"]),
    (200, SSE, event(chunk("OK")) + event(chunk(finish="stop")) + event("[DONE]"), ["usage"]),
    (200, SSE, event(chunk("OK")) + event(chunk(finish="stop", usage={"prompt_tokens": "3"})) + event("[DONE]"),
     ["usage"]),
    (200, SSE, event(chunk(finish="stop", usage=USAGE)) + event("[DONE]"), ["fields"]),
    (200, SSE, event({"choices": [{"delta": {"content": 5}}]}) + event(chunk(finish="stop", usage=USAGE))
     + event("[DONE]"), ["fields", "fields"]),
    (200, SSE, event({"choices": [{"delta": {"text": "OK"}}]}) + event(chunk(finish="stop", usage=USAGE))
     + event("[DONE]"), ["fields"]),
    (200, SSE, event({"text": "OK"}) + event(chunk(finish="stop", usage=USAGE)) + event("[DONE]"),
     ["event shape", "fields"]),
    (200, SSE, event("{not json") + GOOD, ["event shape"]),
    (200, SSE, event(chunk("OK")) + event({"error": {"message": "busy"}}) + event("[DONE]"),
     ["event shape", "event shape", "finish reason", "usage"]),
    (200, SSE, b"", ["event shape"]),
])
def test_each_difference_is_named(status, headers, body, expected):
    assert aspects(status, headers, body) == expected


@pytest.mark.parametrize("body, found", [(b"", "an empty body"), (b"  not\n\n  events " + b"x" * 300, "'not events " + "x" * 184 + "'")])
def test_a_body_without_events_is_quoted_short(body, found):
    assert [str(d) for d in check_answer(200, SSE, body)] == [f"event shape: expected server-sent events, found {found}"]


def test_a_web_page_is_several_differences():
    found = aspects(403, {"Content-Type": "text/html"}, b"<html><title>Just a moment...</title></html>")
    assert found == ["status", "content type", "event shape"]


# --- check --deep against the emulator ----------------------------------------------------


def run_check(capsys, base_url: str) -> tuple[int, str]:
    code = cli.main(["check", "--deep", "--base-url", base_url, "--timeout", "10"])
    return code, capsys.readouterr().out


def test_check_deep_on_the_emulator_conforms(capsys, threaded_emulator):
    code, out = run_check(capsys, threaded_emulator.base_url)
    assert code == 0, out
    rows = out.splitlines()[1:]
    assert [row.split()[0] for row in rows] == list(endpoint_models())
    assert all(row.endswith("conforms") for row in rows)
    assert {request.path.rsplit("/ai", 1)[1] for request in threaded_emulator.emulator.requests} == set(endpoint_models())


@pytest.mark.parametrize("fault, expected", [
    (Fault(status=503), ["status: expected 200, found 503", "content type: expected text/event-stream"]),
    (Fault(body=json.dumps(chunk("OK", "stop", usage=USAGE)), content_type="application/json"),
     ["content type: expected text/event-stream, found application/json", "event shape: expected server-sent events"]),
    (Fault(body=(event(chunk("OK")) + event("[DONE]")).decode(), content_type="text/event-stream"),
     ["finish reason: expected", "usage: expected a usage object"]),
    (Fault(no_done=True), ["[DONE]: expected data: [DONE] as the last event, found no [DONE]"]),
    (Fault(stream_error="overloaded"), ["event shape: expected no error member", "[DONE]: expected"]),
    (Fault(garbage=True), ["content type: expected text/event-stream, found text/plain"]),
])
def test_check_deep_names_each_difference_on_every_endpoint(capsys, threaded_emulator, fault, expected):
    threaded_emulator.emulator.fault = fault
    code, out = run_check(capsys, threaded_emulator.base_url)
    assert code == 1
    for text in expected:
        assert out.count(text) == len(endpoint_models()), (text, out)


def test_check_deep_reports_an_unreachable_service(capsys):
    code, out = run_check(capsys, closed_port_url())
    assert code == 1
    assert out.count("status: expected an HTTP answer, found ClientConnectorError") == len(endpoint_models())


# --- the live tests, pointed at the emulator ------------------------------------------------

# One interpreter for every run of tests/test_live.py below (starting one and importing g4f is
# most of a run's cost): each run is a fresh pytest session, with its own G4F_AUTONOMOUS_LIVE_URL.
LIVE_RUNS = """
import json, os, sys
import pytest
for url, args in json.loads(sys.argv[1]):
    os.environ["G4F_AUTONOMOUS_LIVE_URL"] = url
    code = pytest.main([*args, "-p", "no:cacheprovider", "-q", "tests/test_live.py"])
    print(f"\\n--- exit {int(code)}", flush=True)
"""


def live_runs_job(root: Path) -> dict[str, tuple[int, str]]:
    """Exit code and output of each run, by name: what a user of ``pytest -m live`` sees."""
    with EmulatorThread() as upstream:  # of its own: this runs ahead, while other tests use theirs
        # One request per endpoint and run, in turn: the "conforms" run is answered well, "differs" without [DONE].
        upstream.emulator.next_faults.extend([Fault()] * len(endpoint_models()))
        upstream.emulator.next_faults.extend([Fault(no_done=True)] * len(endpoint_models()))
        runs = {"default": ("", ["--collect-only"]), "conforms": (upstream.base_url, ["-m", "live"]),
                "differs": (upstream.base_url, ["-m", "live"]), "unreachable": (closed_port_url(), ["-m", "live"])}
        done = subprocess.run([sys.executable, "-c", LIVE_RUNS, json.dumps(list(runs.values()))], cwd=REPO,
                              env=offline_env(root), capture_output=True, text=True, timeout=300)
    results = re.findall(r"(.*?)\n--- exit (\d+)\n", done.stdout, re.DOTALL)
    assert len(results) == len(runs), done.stdout + done.stderr
    return {name: (int(code), output) for name, (output, code) in zip(runs, results, strict=True)}


def prefetch(jobs: Prefetch, root: Path) -> None:
    """The live-test runs, ahead of their tests (see prefetch.py)."""
    jobs.submit("conformance live runs", live_runs_job, root)


@pytest.fixture(scope="module")
def live_runs(prefetched) -> dict[str, tuple[int, str]]:
    return prefetched.result("conformance live runs")


def test_live_tests_pass_on_the_emulator(live_runs):
    code, out = live_runs["conforms"]
    assert code == 0, out
    assert f"{len(endpoint_models())} passed" in out


def test_live_tests_fail_naming_the_difference(live_runs):
    code, out = live_runs["differs"]
    assert code == 1, out
    assert f"{len(endpoint_models())} failed" in out
    assert "[DONE]: expected data: [DONE] as the last event, found no [DONE]" in out


def test_live_tests_skip_when_the_service_cannot_be_reached(live_runs):
    code, out = live_runs["unreachable"]
    assert code == 0, out
    assert f"{len(endpoint_models())} skipped" in out


def test_live_tests_are_deselected_by_default(live_runs):
    code, out = live_runs["default"]
    assert f"{len(endpoint_models())} deselected" in out, out


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_probe_decodes_a_compressed_answer_as_the_provider_does(emulator, encoding):
    emulator.fault = Fault(encoding=encoding)
    reports = await probe_all(emulator.base_url)
    assert [report.differences for report in reports] == [[] for _ in reports]


# --- one definition: what the check accepts is what the provider reads ----------------

@pytest.mark.parametrize("payload, expected", [
    (chunk(finish="x" * 65, usage=USAGE), ["finish reason", "finish reason"]),  # longer than the provider passes on
    (chunk(finish="stop\n", usage=USAGE), ["finish reason", "finish reason"]),  # not printable
    (chunk(finish="stop", usage={**USAGE, "total_tokens": 2**53}), ["usage"]),  # past what the provider counts
    (chunk(finish="stop", usage={**USAGE, "prompt_tokens": True}), ["usage"]),
])
def test_a_member_the_provider_would_drop_is_a_difference(payload, expected):
    body = event(chunk("OK")) + event(payload) + event("[DONE]")
    assert aspects(body=body) == expected


def test_the_limits_are_the_providers():
    from g4f_autonomous import wire

    longest = "x" * wire.FINISH_REASON_LIMIT
    body = event(chunk("OK")) + event(chunk(finish=longest, usage={**USAGE, "total_tokens": 2**53 - 1})) + event("[DONE]")
    assert aspects(body=body) == []
    assert wire.read_chunk(chunk(finish=longest)).finish_reason == longest
