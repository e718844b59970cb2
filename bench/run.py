"""Benchmarks of the AutonomousAI provider, printed as one table of medians and ratios.

Run from the repository root: ``python -m bench`` (or ``python bench/run.py``);
``--quick`` does one run of each for a smoke check. The emulator runs in a
process of its own on 127.0.0.1 and sends pre-encoded events, so the client is
what is measured. Every row compares with a baseline measured in the same run:
plain aiohttp (one shared session) for the provider, the provider alone for
g4f's client, a short stream for memory, ``import g4f`` for the import cost.
Nothing here touches any address but 127.0.0.1, and the whole run is bounded
by a watchdog (see ``--limit``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Awaitable, Callable, Iterator, Sequence

if __package__ in (None, ""):  # ``python bench/run.py``: make ``bench`` and the source tree importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.emulator_process import ROOT, EmulatorProcess, kill_quietly  # noqa: E402
from offline import offline_env as _tests_offline_env  # noqa: E402  (tests/ is on the path: bench/__init__)

MIB = 1024 * 1024
OP_TIMEOUT = 120.0  # one measured operation (the slowest, g4f's client on 100,000 deltas, takes ~3 s)
CHILD_TIMEOUT = 120.0


@dataclass
class Plan:
    runs: int = 5
    stream_sizes: tuple[int, ...] = (20_000, 100_000)
    first_delta_samples: int = 50  # per run and client
    short_requests: int = 500
    concurrent_streams: int = 200
    concurrent_deltas: int = 1_000
    memory_sizes: tuple[int, int] = (1_000, 100_000)
    import_runs: int = 7
    sync_calls: int = 1_000
    soft_limit: float = 200.0  # no new run of a section starts after this (seconds since start)
    hard_limit: float = 290.0  # the watchdog ends everything here


QUICK = Plan(runs=1, first_delta_samples=20, import_runs=3, sync_calls=200, soft_limit=60.0)


@dataclass
class Samples:
    """Per-run values of one row: ours, the baseline, both in the row's unit."""

    ours: list[float] = field(default_factory=list)
    base: list[float] = field(default_factory=list)

    def add(self, ours: float, base: float) -> None:
        self.ours.append(ours)
        self.base.append(base)

    def medians(self) -> tuple[float, float, float]:
        """Median of ours, of the baseline, and of the per-run ratios."""
        ratios = [o / b for o, b in zip(self.ours, self.base)]
        return statistics.median(self.ours), statistics.median(self.base), statistics.median(ratios)


class Bench:
    def __init__(self, plan: Plan, env: dict[str, str], workdir: Path) -> None:
        self.plan = plan
        self.env = env
        self.workdir = workdir
        self.started = time.monotonic()
        self.samples: dict[str, Samples] = {}
        self.rss_before: dict[str, list[float]] = {}
        self.sync: dict | None = None
        self.children: set[subprocess.Popen] = set()
        self.emulator: EmulatorProcess | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def runs(self) -> Iterator[int]:
        """Run indexes for one section; stops early (after one run) once past the soft limit."""
        for index in range(self.plan.runs):
            if index and self.elapsed() > self.plan.soft_limit:
                _progress(f"time budget reached: {index} run(s) of this section")
                return
            yield index

    def row(self, key: str) -> Samples:
        return self.samples.setdefault(key, Samples())

    # --- in the bench process: streams, first delta, short answers ---------

    async def in_process(self, base_url: str) -> None:
        from bench import streams as ops

        target = ops.Target(base_url)
        client = ops.g4f_client(target)
        async with ops.plain_session() as session:
            # Warm up: pooled connections open, caches and code paths hot.
            for _ in range(3):
                await _bounded(ops.plain_stream(session, target, 10))
                await _bounded(ops.provider_stream(target, 10))
                await _bounded(ops.g4f_stream(client, 10))
            for run in self.runs():
                _progress(f"run {run + 1}/{self.plan.runs}: streams, first delta, short answers")
                for size in self.plan.stream_sizes:
                    timings = await _alternating(run, {
                        "plain": lambda: ops.plain_stream(session, target, size),
                        "provider": lambda: ops.provider_stream(target, size),
                        "g4f": lambda: ops.g4f_stream(client, size),
                    })
                    self.row(f"stream {size}").add(timings["provider"].total, timings["plain"].total)
                    self.row(f"g4f {size}").add(timings["g4f"].total, timings["provider"].total)

                firsts: dict[str, list[float]] = {"plain": [], "provider": []}
                for sample in range(self.plan.first_delta_samples):
                    timings = await _alternating(run + sample, {
                        "plain": lambda: ops.plain_stream(session, target, 1),
                        "provider": lambda: ops.provider_stream(target, 1),
                    })
                    for name, timing in timings.items():
                        firsts[name].append(timing.first)
                self.row("first delta").add(statistics.median(firsts["provider"]), statistics.median(firsts["plain"]))

                # Blocks of 50, alternating, so a load change on this shared machine hits both alike.
                spent = {"plain": 0.0, "provider": 0.0}
                block = 50
                for turn in range(max(1, self.plan.short_requests // block)):
                    timings = await _alternating(run + turn, {
                        "plain": lambda: _repeat(block, lambda: ops.plain_stream(session, target, 1)),
                        "provider": lambda: _repeat(block, lambda: ops.provider_stream(target, 1)),
                    })
                    for name, seconds in timings.items():
                        spent[name] += seconds
                count = block * max(1, self.plan.short_requests // block)
                rates = {name: count / seconds for name, seconds in spent.items()}
                self.row("short").add(rates["provider"], rates["plain"])

    # --- in fresh processes: memory, 200 streams, import cost ---------------

    def child(self, *args: str, env: dict[str, str] | None = None) -> dict:
        command = [sys.executable, "-m", "bench.child", *args]
        process = subprocess.Popen(command, cwd=ROOT, env=env or self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        self.children.add(process)
        try:
            out, err = process.communicate(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise RuntimeError(f"bench.child {' '.join(args)} took over {CHILD_TIMEOUT:g} s") from None
        finally:
            self.children.discard(process)
        if process.returncode != 0:
            raise RuntimeError(f"bench.child {' '.join(args)} failed:\n{err.strip()[-2000:]}")
        return json.loads(out.strip().splitlines()[-1])

    def streams_child(self, client: str, count: int, deltas: int, base_url: str) -> dict:
        return self.child("streams", "--client", client, "--streams", str(count), "--deltas", str(deltas), base_url)

    def in_children(self, base_url: str) -> None:
        plan = self.plan
        for run in self.runs():
            _progress(f"run {run + 1}/{plan.runs}: {plan.concurrent_streams} concurrent streams, memory")
            order = ["plain", "provider"] if run % 2 == 0 else ["provider", "plain"]
            results = {name: self.streams_child(name, plan.concurrent_streams, plan.concurrent_deltas, base_url)
                       for name in order}
            self.row("concurrent time").add(results["provider"]["seconds"], results["plain"]["seconds"])
            self.row("concurrent rss").add(results["provider"]["peak_kib"] * 1024, results["plain"]["peak_kib"] * 1024)
            self.rss_before.setdefault("concurrent", []).append(results["provider"]["rss_before_kib"] * 1024)

            small, large = plan.memory_sizes
            peaks = {size: self.streams_child("provider", 1, size, base_url) for size in (large, small)}
            self.row("memory").add(peaks[large]["peak_kib"] * 1024, peaks[small]["peak_kib"] * 1024)
            self.rss_before.setdefault("memory", []).append(peaks[large]["rss_before_kib"] * 1024)

        _progress(f"g4f's sync client: {plan.sync_calls:,} calls, each in its own event loop")
        self.sync = self.child("sync", "--calls", str(plan.sync_calls), base_url)
        self.row("sync").add(self.sync["rss_after_kib"] * 1024, self.sync["rss_before_kib"] * 1024)

        _progress(f"import cost: {plan.import_runs} fresh interpreters")
        # Autoload off: the .pth hook would otherwise import the plugin inside ``import g4f``.
        # Bytecode on, cached outside the tree (PYTHONDONTWRITEBYTECODE would make every
        # run compile the sources, which an installed package never does); one run fills it.
        env = {**self.env, "G4F_AUTONOMOUS_AUTOLOAD": "0", "PYTHONPYCACHEPREFIX": str(self.workdir / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.child("import", env=env)
        for _ in range(plan.import_runs):
            result = self.child("import", env=env)
            self.row("import").add(result["g4f"] + result["plugin"], result["g4f"])

    # --- the watchdog -------------------------------------------------------

    def arm_watchdog(self) -> threading.Timer:
        def expire() -> None:
            print(f"\nbench: over its {self.plan.hard_limit:g} s limit, stopping", file=sys.stderr, flush=True)
            for process in list(self.children):
                kill_quietly(process.pid)
            if self.emulator is not None:
                kill_quietly(self.emulator.pid)
            os._exit(3)

        timer = threading.Timer(self.plan.hard_limit, expire)
        timer.daemon = True
        timer.start()
        return timer


async def _bounded(awaitable: Awaitable):
    return await asyncio.wait_for(awaitable, OP_TIMEOUT)


async def _repeat(count: int, call: Callable[[], Awaitable]) -> float:
    """Seconds for ``count`` sequential calls."""
    start = time.perf_counter()
    for _ in range(count):
        await call()
    return time.perf_counter() - start


async def _alternating(turn: int, calls: dict[str, Callable[[], Awaitable]]) -> dict:
    """Run each call once, in an order that alternates between turns, so drift favours nobody."""
    names = list(calls) if turn % 2 == 0 else list(reversed(calls))
    results = {}
    for name in names:
        gc.collect()
        results[name] = await _bounded(calls[name]())
    return results


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def offline_env(root: Path) -> dict[str, str]:
    """Environment that keeps g4f off the network (DESIGN.md 5): the tests' own recipe."""
    env = _tests_offline_env(root)
    env.pop("G4F_AUTONOMOUS_BASE_URL", None)
    return env


# --- the table ---------------------------------------------------------------

def _seconds(value: float) -> str:
    return f"{value:.3f} s"


def _ms(value: float) -> str:
    return f"{value * 1000:.2f} ms"


def _mib(value: float) -> str:
    return f"{value / MIB:.1f} MiB"


def _rate(value: float) -> str:
    return f"{value:,.0f} req/s"


def table_rows(bench: Bench) -> list[tuple[str, str, str, str, str, str]]:
    """(benchmark, ours, baseline, ratio, target, verdict) for each measured row."""
    plan = bench.plan
    rows = []

    def add(key: str, label: str, unit: Callable[[float], str], target: str,
            check: Callable[[float, float, float], bool] | None, note: str = "") -> None:
        samples = bench.samples.get(key)
        if not samples or not samples.ours:
            return
        ours, base, ratio = samples.medians()
        verdict = "-" if check is None else ("ok" if check(ours, base, ratio) else "MISSED")
        rows.append((label, unit(ours), unit(base), f"{ratio:.2f}x", target, verdict + note))

    for size in plan.stream_sizes:
        add(f"stream {size}", f"stream {size:,} deltas: provider | plain aiohttp", _seconds,
            "<= 0.80x", lambda o, b, r: r <= 0.80)
    for size in plan.stream_sizes:
        add(f"g4f {size}", f"stream {size:,} deltas: g4f AsyncClient | provider", _seconds,
            "reported", None)
    first = bench.samples.get("first delta")
    if first and first.ours:
        ours, base, _ = first.medians()
        add("first delta", "time to first delta: provider | plain aiohttp", _ms,
            "<= plain + 1 ms", lambda o, b, r: o - b <= 0.001, f" ({(ours - base) * 1000:+.2f} ms)")
    add("short", f"{plan.short_requests} short answers: provider | plain aiohttp", _rate,
        ">= 0.90x", lambda o, b, r: r >= 0.90)
    add("concurrent time", f"{plan.concurrent_streams} streams x {plan.concurrent_deltas:,} deltas: time",
        _seconds, "reported", None)
    add("concurrent rss", f"{plan.concurrent_streams} streams: peak RSS, provider | plain", _mib,
        "< 150 MiB", lambda o, b, r: o < 150 * MIB)
    small, large = plan.memory_sizes
    add("memory", f"peak RSS: {large:,} | {small:,} deltas (provider)", _mib,
        "flat (< +4 MiB)", lambda o, b, r: o - b < 4 * MIB)
    sync = bench.sync or {}
    add("sync", f"sync Client, {plan.sync_calls:,} calls: RSS after | before", _mib, "no growth (< +2 MiB)",
        lambda o, b, r: o - b < 2 * MIB and sync.get("fds_after") == sync.get("fds_before")
        and sync.get("pooled_loops") == 0)
    add("import", "import time: g4f + g4f_autonomous | g4f", _ms, "reported", None)
    return rows


def render(bench: Bench, header: Sequence[str]) -> str:
    columns = ("benchmark", "ours", "baseline", "ratio", "target", "verdict")
    rows = table_rows(bench)
    widths = [max(len(str(row[i])) for row in [columns, *rows]) for i in range(len(columns))]
    lines = list(header) + [""]
    line = "  ".join(name.ljust(widths[i]) if i in (0, 4, 5) else name.rjust(widths[i])
                     for i, name in enumerate(columns))
    lines += [line.rstrip(), "-" * len(line.rstrip())]
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) if i in (0, 4, 5) else cell.rjust(widths[i])
                               for i, cell in enumerate(row)).rstrip())
    notes = []
    if "import" in bench.samples:
        ours, base, _ = bench.samples["import"].medians()
        notes.append(f"import g4f_autonomous on top of g4f: {(ours - base) * 1000:.1f} ms (median of"
                     f" {len(bench.samples['import'].ours)} fresh interpreters, autoload off, bytecode cached)")
    if bench.sync:
        sync = bench.sync
        notes.append(f"sync Client: {bench.plan.sync_calls:,} calls in {sync['seconds']:.2f} s; open files "
                     f"{sync['fds_before']} -> {sync['fds_after']}; event loops left in the session pool: "
                     f"{sync['pooled_loops']}")
    for key, what in (("concurrent", "concurrent"), ("memory", "memory")):
        if bench.rss_before.get(key):
            notes.append(f"RSS after imports, before any stream ({what} children): "
                         f"{_mib(statistics.median(bench.rss_before[key]))}")
    return "\n".join(lines + [""] + notes)


def _header(plan: Plan, base_url: str, runs_done: int) -> list[str]:
    from importlib.metadata import version

    import g4f_autonomous

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    source = Path(g4f_autonomous.__file__).resolve().parent
    return [
        "g4f-autonomous benchmarks",
        f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.system()} "
        f"{platform.machine()}, cores: {os.cpu_count()} ({usable} usable)",
        f"aiohttp {version('aiohttp')}, g4f {version('g4f')}, plugin from {source}",
        f"emulator: separate process at {base_url} (pre-encoded events)",
        f"medians of {runs_done} run(s); ratio = ours / baseline, median of per-run ratios"
        "; lower is better except req/s",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run of each: a smoke check (~15 s)")
    parser.add_argument("--runs", type=int, help="runs per section (default 5, --quick 1)")
    parser.add_argument("--limit", type=float, help="hard time limit in seconds (default 290)")
    args = parser.parse_args(argv)
    plan = replace(QUICK) if args.quick else Plan()
    if args.runs:
        plan.runs = max(1, args.runs)
    if args.limit:
        plan.hard_limit = args.limit
        plan.soft_limit = min(plan.soft_limit, args.limit * 0.7)

    workdir = tempfile.TemporaryDirectory(prefix="g4f-autonomous-bench-")
    env = offline_env(Path(workdir.name))
    os.environ.update({key: env[key] for key in ("G4F_CACHE_DIR", "G4F_CONFIG_DIR")})
    import g4f.debug

    g4f.debug.version_check = False  # page renders and clients would ask PyPI otherwise

    bench = Bench(plan, env, Path(workdir.name))
    watchdog = bench.arm_watchdog()
    try:
        with EmulatorProcess(env) as emulator:
            bench.emulator = emulator
            asyncio.run(bench.in_process(emulator.base_url))
            bench.in_children(emulator.base_url)
            runs_done = len(bench.samples.get("stream %d" % plan.stream_sizes[0], Samples()).ours)
            print(render(bench, _header(plan, emulator.base_url, runs_done)))
    finally:
        bench.emulator = None
        watchdog.cancel()
        workdir.cleanup()
    _progress(f"done in {bench.elapsed():.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
