"""Measurements that need a fresh interpreter: peak memory, leaks, import cost.

``python -m bench.child streams --client provider|limit|line --streams 200 --deltas 1000 URL``
``python -m bench.child sync --calls 1000 URL``
``python -m bench.child import``

Each prints one JSON line. Peak RSS is the process's high-water mark
(``VmHWM``), reset after the imports where Linux allows it, so it is the
peak while the streams run; every case gets a process of its own.
Nothing is imported at module level: the import case must start clean.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def _status_kib(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status (Linux), in KiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Start the peak (VmHWM) afresh from the current RSS, so the import peak does not mask
    what the streams use (Linux >= 4.0: writing 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _peak_rss_kib() -> int:
    peak = _status_kib("VmHWM")
    if peak is not None:
        return peak
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def streams(client: str, count: int, deltas: int, base_url: str) -> dict:
    """``count`` concurrent answers of ``deltas`` events, one HTTP chunk each."""
    import asyncio
    import gc

    from bench import streams as ops

    target = ops.Target(base_url)
    answer = ops.Answer(deltas)

    async def run() -> float:
        async with ops.plain_session() as session:
            if client == "provider":
                calls = [ops.provider_stream(target, answer) for _ in range(count)]
            else:
                calls = [ops.BASELINES[client](session, target, answer) for _ in range(count)]
            start = time.perf_counter()
            await asyncio.gather(*calls)
            return time.perf_counter() - start

    gc.collect()
    import_peak = _peak_rss_kib()
    before = _status_kib("VmRSS") or import_peak  # after the imports, before any stream
    reset = _reset_peak()
    seconds = asyncio.run(run())
    return {"seconds": seconds, "rss_before_kib": before, "peak_kib": _peak_rss_kib(),
            "import_peak_kib": import_peak, "peak_reset": reset}


def sync_calls(calls: int, base_url: str) -> dict:
    """g4f's sync Client, which runs every call in an event loop of its own: what stays behind."""
    import gc
    import os

    import g4f.debug

    g4f.debug.version_check = False
    from g4f.client import Client

    from bench import streams as ops
    from g4f_autonomous import AutonomousAI
    from g4f_autonomous import session as pool

    client = Client(provider=AutonomousAI, base_url=base_url)
    headers = ops.fault_headers(ops.Answer(1))

    def call() -> None:
        answer = client.chat.completions.create(ops.MESSAGES, ops.MODEL, headers=headers)
        if answer.choices[0].message.content != ops.DELTA_TEXT:
            raise RuntimeError("the sync client returned a wrong answer")

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else -1

    for _ in range(20):  # warm-up: lazy imports and caches settle first
        call()
    gc.collect()
    before, fds_before = _status_kib("VmRSS") or 0, open_fds()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    seconds = time.perf_counter() - start
    gc.collect()
    return {"seconds": seconds, "rss_before_kib": before, "rss_after_kib": _status_kib("VmRSS") or 0,
            "fds_before": fds_before, "fds_after": open_fds(), "pooled_loops": len(pool._pool)}


def import_cost() -> dict:
    start = time.perf_counter()
    import g4f  # noqa: F401

    middle = time.perf_counter()
    import g4f_autonomous  # noqa: F401

    end = time.perf_counter()
    if "g4f_autonomous" not in sys.modules:
        raise RuntimeError("g4f_autonomous did not import")
    return {"g4f": middle - start, "plugin": end - middle}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    modes = parser.add_subparsers(dest="mode", required=True)
    run_streams = modes.add_parser("streams")
    run_streams.add_argument("--client", choices=("provider", "limit", "line"), required=True)
    run_streams.add_argument("--streams", type=int, required=True)
    run_streams.add_argument("--deltas", type=int, required=True)
    run_streams.add_argument("base_url")
    run_sync = modes.add_parser("sync")
    run_sync.add_argument("--calls", type=int, required=True)
    run_sync.add_argument("base_url")
    modes.add_parser("import")
    args = parser.parse_args(argv)
    if args.mode == "import":
        result = import_cost()
    elif args.mode == "sync":
        result = sync_calls(args.calls, args.base_url)
    else:
        result = streams(args.client, args.streams, args.deltas, args.base_url)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
