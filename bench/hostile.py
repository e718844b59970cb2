"""What a hostile upstream costs a caller: peak memory, time to the error, and the loop's longest stall.

Run: ``python -m bench.hostile [PART OF A CASE NAME]``. The emulator runs in a process of its own
(``python -m g4f_autonomous serve``); each case runs in a fresh interpreter
(``python -m bench.hostile CASE URL``) that reports its peak RSS growth over
its RSS after the imports, the time to the error, the error, and the longest
time the event loop was held (a ticker task on the caller's loop, as
``tests/ticker.py`` measures it: what every other user of a g4f server would
have waited). The baseline row is an ordinary short answer, in a fresh
interpreter too.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEXT_EVENT = '{"choices": [{"delta": {"content": "\u0436"}}]}'  # one character outside Latin-1
# name: (fault fields, provider arguments, what an unbounded client would do).
# Arguments starting with "_" are the bench's: _cap lowers MAX_ANSWER_SIZE, _messages
# is ("many", n): n short distinct messages, or ("big", n): one message of n characters.
CASES: dict[str, tuple[dict, dict, str]] = {
    "ordinary short answer (baseline)": ({}, {"timeout": 2}, ""),
    "HTTP 500 with an endless body": (
        {"status": 500, "endless_body": True, "content_type": "text/plain"}, {"timeout": 2},
        "reads until memory runs out"),
    "HTTP 500, gzip bomb: 1 GiB of zeros in 1 MiB": (
        {"status": 500, "gzip_bomb_mib": 1024, "content_type": "text/plain"}, {"timeout": 2},
        "inflates to 1 GiB"),
    "whole JSON answer of 1.2 MB, MAX_ANSWER_SIZE lowered to 1 MiB": (
        {"deltas": 300_000}, {"timeout": 30, "stream": False, "_cap": 2**20}, "holds it all"),
    "one byte every 0.5 s, timeout=2": (
        {"drip_seconds": 0.5}, {"timeout": 2}, "waits as long as the server drips"),
    "chunk size 'zz' after the first event, timeout=2": (
        {"broken_chunk": True}, {"timeout": 2}, "aiohttp's C parser waits for ever"),
    "64 MB of text-less events as 121 KiB of gzip, timeout=2 total=3": (
        {"encoding": "gzip", "filler_events": 6_400_000}, {"timeout": 2, "total_timeout": 3},
        "inflates and parses a whole read with the loop held"),
    "64 MB of text-less events as br, timeout=2 total=3": (
        {"encoding": "br", "filler_events": 6_400_000}, {"timeout": 2, "total_timeout": 3},
        "inflates and parses a whole read with the loop held"),
    "one 30 MB event of {\"x\":[{},{},...]}": (
        {"wide_json_bytes": 30_000_000, "wide_json_event": True}, {"timeout": 30},
        "builds 10 M dicts"),
    "one 4 MB event of {\"x\":[{},{},...]}, under the event cap": (
        {"wide_json_bytes": 4_000_000, "wide_json_event": True}, {"timeout": 30},
        "builds 1.3 M dicts"),
    "whole JSON answer of 30 MB {\"x\":[{},{},...]}": (
        {"wide_json_bytes": 30_000_000}, {"timeout": 30}, "builds 10 M dicts"),
    "stream=False, 1 M one-character deltas": (
        {"filler_events": 1_000_000, "filler": TEXT_EVENT}, {"timeout": 30, "stream": False},
        "holds a str per delta"),
    "'data: {}' every 0.7 s (20 of them), timeout=1": (
        {"filler_events": 20, "filler": "{}", "keepalive_seconds": 0.7}, {"timeout": 1},
        "waits as long as empty events come"),
    "HTTP 413 with a plain reason after 100,000 short messages": (
        {"status": 413, "body": "Request Entity Too Large", "content_type": "text/plain"},
        {"timeout": 30, "_messages": ("many", 100_000)}, "redacts per message"),
    "HTTP 400 echoing a 10 MB prompt": (
        {"status": 400, "body": "bad request: {text}", "content_type": "text/plain"},
        {"timeout": 30, "_messages": ("big", 10_000_000)}, "redacts the whole echo"),
}


def run_case(name: str, base_url: str) -> dict:
    """In a fresh interpreter: one call under ``name``'s fault."""
    import asyncio

    from child import _peak_rss_kib, _reset_peak, _status_kib  # bench/child.py
    from ticker import LoopTicker  # tests/ticker.py

    from g4f_autonomous import AutonomousAI, answer
    from g4f_autonomous.emulator import FAULT_HEADER

    fault, arguments, _ = CASES[name]
    arguments = dict(arguments)
    if "_cap" in arguments:
        answer.MAX_ANSWER_SIZE = arguments.pop("_cap")
    messages = _messages(arguments.pop("_messages", None))
    rss = _status_kib("VmRSS") or 0
    _reset_peak()
    stall = [0.0]

    async def call() -> str:
        headers = {FAULT_HEADER: json.dumps(fault)}
        async with LoopTicker() as ticker:
            try:
                async for _ in AutonomousAI.create_async_generator("llama", messages, base_url=base_url,
                                                                   headers=headers, **arguments):
                    pass
            finally:
                await asyncio.sleep(0.02)  # the ticker's next wake-up measures the last step
                stall[0] = ticker.longest
        return "answered"

    start = time.perf_counter()
    try:
        outcome = asyncio.run(call())
    except Exception as error:  # the bench reports whatever came out
        outcome = f"{type(error).__name__}: {str(error)[:90]}"
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_growth_mib": (_peak_rss_kib() - rss) / 1024, "outcome": outcome,
            "stall": stall[0]}


def _messages(spec: tuple[str, int] | None) -> list[dict]:
    if spec is None:
        return [{"role": "user", "content": "hello there"}]
    kind, size = spec
    if kind == "many":
        return [{"role": "user", "content": f"message number {index}"} for index in range(size)]
    words = "the quick brown fox jumps over a lazy dog "
    return [{"role": "user", "content": (words * (size // len(words) + 1))[:size]}]


CASES_WARM_UP = "HTTP 500, gzip bomb: 1 GiB of zeros in 1 MiB"


def warm_up(name: str, base_url: str) -> None:
    fault, _, _ = CASES[name]
    import asyncio

    import aiohttp

    from g4f_autonomous import wire
    from g4f_autonomous.emulator import FAULT_HEADER

    async def warm() -> None:
        async with aiohttp.ClientSession() as session:
            messages = wire.encode_messages([{"role": "user", "content": "warm up"}])
            body = {"messages": messages, "threadId": "warm-up", "stream": True, "aiAgent": "llama"}
            async with session.post(base_url + "/chat", json=body, headers={FAULT_HEADER: json.dumps(fault)},
                                    timeout=aiohttp.ClientTimeout(total=120)) as response:
                await response.content.read(1)

    asyncio.run(warm())


def main(only: str = "") -> int:
    """Every case, or those whose name contains ``only``."""
    sys.path.insert(0, str(ROOT / "tests"))
    from offline import offline_env
    from processes import stop_process

    with tempfile.TemporaryDirectory() as scratch:
        env = offline_env(Path(scratch))
        server = subprocess.Popen([sys.executable, "-m", "g4f_autonomous", "serve"], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            assert server.stdout is not None
            base_url = server.stdout.readline().strip()
            print(f"emulator at {base_url}; each case in a fresh interpreter")
            print(f"{'case':<66} {'to error':>9} {'peak +RSS':>10} {'stall':>8}  outcome")
            # The emulator builds its bomb on first use (seconds): not part of what is measured.
            warm_up(CASES_WARM_UP, base_url)
            for name in [name for name in CASES if only in name]:
                done = subprocess.run([sys.executable, "-m", "bench.hostile", name, base_url], cwd=ROOT, env=env,
                                      capture_output=True, text=True, timeout=600)
                if done.returncode != 0:
                    print(f"{name:<66} failed: {done.stderr.strip()[-300:]}")
                    continue
                result = json.loads(done.stdout.strip().splitlines()[-1])
                print(f"{name:<66} {result['seconds']:>8.2f}s {result['peak_growth_mib']:>7.1f} MiB "
                      f"{result['stall'] * 1000:>6.0f}ms  {result['outcome']}", flush=True)
                unbounded = CASES[name][2]
                if unbounded:
                    print(f"{'':<66} {'':>9} {'':>10} {'':>8}  (without the bounds: {unbounded})")
        finally:
            stop_process(server, 10)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        sys.path.insert(0, str(ROOT / "tests"))
        print(json.dumps(run_case(sys.argv[1], sys.argv[2])))
    else:
        raise SystemExit(main(sys.argv[1] if len(sys.argv) == 2 else ""))
