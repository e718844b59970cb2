"""Benchmarks of the AutonomousAI provider: a table of targets and of other measures, each a ratio.

Run from the repository root: ``python -m bench`` (or ``python bench/run.py``);
``--quick`` does one short run of each for a smoke check. The upstream is a
light server in a process of its own (``bench/upstream.py``) sending
pre-built bytes, so the client is what is measured. Every row compares with
a baseline measured in the same run, alternating which goes first: the
minimal correct loop ("limit", the reference), the readline-per-line loop,
the provider alone (for g4f's client). Nothing here touches any address but
127.0.0.1, and the whole run is bounded by a watchdog (see ``--limit``).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
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
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

if __package__ in (None, ""):  # ``python bench/run.py``: make ``bench`` and the source tree importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from offline import offline_env as _tests_offline_env  # noqa: E402  (tests/ is on the path: bench/__init__)

from bench.streams import Answer  # noqa: E402
from bench.upstream import ROOT, UpstreamProcess, kill_quietly  # noqa: E402

MIB = 1024 * 1024
OP_TIMEOUT = 120.0  # one measured operation
CHILD_TIMEOUT = 120.0
MIN_RUNS = 5  # the targets are judged on medians of at least this many runs


@dataclass
class Plan:
    runs: int = 7
    stream_sizes: tuple[int, ...] = (20_000, 100_000)
    g4f_deltas: int = 20_000
    first_delta_pause: float = 0.05  # seconds between the first event and the rest
    first_delta_samples: int = 15  # per run and client
    short_requests: int = 500
    concurrent_streams: int = 200
    concurrent_deltas: int = 1_000
    child_runs: int = 5  # runs of the fresh-process sections
    memory_sizes: tuple[int, int] = (1_000, 100_000)
    import_runs: int = 7
    sync_calls: int = 1_000
    soft_limit: float = 200.0  # no new run of a section starts after this (seconds since start)
    hard_limit: float = 290.0  # the watchdog ends everything here


QUICK = Plan(runs=1, stream_sizes=(20_000,), first_delta_samples=5, child_runs=1, import_runs=1,
             sync_calls=100, soft_limit=40.0)


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
        ratios = [o / b if b else float("inf") for o, b in zip(self.ours, self.base, strict=True)]
        return statistics.median(self.ours), statistics.median(self.base), statistics.median(ratios)


class Bench:
    def __init__(self, plan: Plan, env: dict[str, str], workdir: Path) -> None:
        self.plan = plan
        self.env = env
        self.workdir = workdir
        self.started = time.monotonic()
        self.samples: dict[str, Samples] = {}
        self.notes: dict[str, dict] = {}
        self.children: set[subprocess.Popen] = set()
        self.upstream: UpstreamProcess | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def runs(self, count: int) -> Iterator[int]:
        """Run indexes for one section; stops early (after one run) once past the soft limit."""
        for index in range(count):
            if index and self.elapsed() > self.plan.soft_limit:
                _progress(f"time budget reached: {index} run(s) of this section")
                return
            yield index

    def row(self, key: str) -> Samples:
        return self.samples.setdefault(key, Samples())

    # --- in the bench process: streams, first delta, short answers ---------

    async def in_process(self, base_url: str) -> None:
        from bench import streams as ops

        plan = self.plan
        target = ops.Target(base_url)
        client = ops.g4f_client(target)
        async with ops.plain_session() as session:
            def clients(answer: Answer, *names: str) -> dict[str, Callable[[], Awaitable]]:
                calls = {"provider": lambda: ops.provider_stream(target, answer),
                         "g4f": lambda: ops.g4f_stream(client, answer)}
                for name, loop in ops.BASELINES.items():
                    calls[name] = lambda loop=loop: loop(session, target, answer)
                return {name: calls[name] for name in names}

            warm = clients(Answer(10), "provider", "g4f", *ops.BASELINES)
            for _ in range(3):  # pooled connections open, caches and code paths hot
                await _alternating(0, warm)

            for run in self.runs(plan.runs):
                _progress(f"run {run + 1}/{plan.runs}: streams, first delta, short answers")
                for per_event in (True, False):
                    for size in plan.stream_sizes:
                        answer = Answer(size, per_event)
                        names = ["provider", "limit", "line", "raw"]
                        if not per_event and size == plan.g4f_deltas:
                            names.append("g4f")
                        took = {name: t.total for name, t in (await _alternating(run, clients(answer, *names))).items()}
                        key = f"{size} {'event' if per_event else 'bulk'}"
                        self.row(f"stream {key}").add(took["provider"], took["limit"])
                        self.row(f"line {key}").add(took["provider"], took["line"])
                        self.row(f"raw {key}").add(took["raw"], took["limit"])
                        if "g4f" in took:
                            self.row("g4f").add(took["g4f"], took["provider"])

                answer = Answer(20, pause=plan.first_delta_pause)
                firsts: dict[str, list[float]] = {"provider": [], "limit": []}
                for sample in range(plan.first_delta_samples):
                    for name, timing in (await _alternating(run + sample, clients(answer, *firsts))).items():
                        firsts[name].append(timing.first)
                self.row("first delta").add(statistics.median(firsts["provider"]), statistics.median(firsts["limit"]))

                # Blocks of 50, alternating, so a load change on this shared machine hits all alike.
                block = 50
                turns = max(1, plan.short_requests // block)
                spent = {"provider": 0.0, "limit": 0.0, "line": 0.0}
                for turn in range(turns):
                    calls = clients(Answer(1), *spent)
                    repeated = {name: functools.partial(_repeat, block, call) for name, call in calls.items()}
                    for name, seconds in (await _alternating(run + turn, repeated)).items():
                        spent[name] += seconds
                rate = {name: block * turns / seconds for name, seconds in spent.items()}
                self.row("short").add(rate["provider"], rate["limit"])
                self.row("short line").add(rate["provider"], rate["line"])

    # --- in fresh processes: concurrent streams, memory, leaks, import cost ---

    def run_module(self, module: str, *args: str, env: dict[str, str] | None = None,
                   timeout: float = CHILD_TIMEOUT) -> str:
        """``python -m module args``: its standard output (bounded in time; raises if it fails)."""
        process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env or self.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.children.add(process)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise RuntimeError(f"{module} {' '.join(args)} took over {timeout:g} s") from None
        finally:
            self.children.discard(process)
        if process.returncode != 0:
            raise RuntimeError(f"{module} {' '.join(args)} failed:\n{err.strip()[-2000:]}")
        return out

    def child(self, *args: str, env: dict[str, str] | None = None) -> dict:
        return json.loads(self.run_module("bench.child", *args, env=env).strip().splitlines()[-1])

    def streams_child(self, client: str, count: int, deltas: int, base_url: str) -> dict:
        result = self.child("streams", "--client", client, "--streams", str(count), "--deltas", str(deltas), base_url)
        result["growth"] = (result["peak_kib"] - result["rss_before_kib"]) * 1024
        return result

    def in_children(self, base_url: str) -> None:
        plan = self.plan
        for run in self.runs(plan.child_runs):
            _progress(f"run {run + 1}/{plan.child_runs}: {plan.concurrent_streams} concurrent streams, memory")
            names = ["provider", "line", "limit"]
            results = {name: self.streams_child(name, plan.concurrent_streams, plan.concurrent_deltas, base_url)
                       for name in (names if run % 2 == 0 else reversed(names))}
            self.row("concurrent rss").add(results["provider"]["growth"], results["line"]["growth"])
            self.row("concurrent rss limit").add(results["limit"]["growth"], results["line"]["growth"])
            self.row("concurrent time").add(results["provider"]["seconds"], results["limit"]["seconds"])
            self.notes.setdefault("rss before", {})[run] = results["provider"]["rss_before_kib"] * 1024

            small, large = plan.memory_sizes
            peaks = {size: self.streams_child("provider", 1, size, base_url) for size in (large, small)}
            self.row("memory").add(peaks[large]["peak_kib"] * 1024, peaks[small]["peak_kib"] * 1024)

        _progress(f"g4f's sync client: {plan.sync_calls:,} calls, each in its own event loop")
        sync = self.notes["sync"] = self.child("sync", "--calls", str(plan.sync_calls), base_url)
        self.row("sync").add(sync["rss_after_kib"] * 1024, sync["rss_before_kib"] * 1024)

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
            if self.upstream is not None:
                kill_quietly(self.upstream.pid)
            os._exit(3)

        timer = threading.Timer(self.plan.hard_limit, expire)
        timer.daemon = True
        timer.start()
        return timer


async def _repeat(count: int, call: Callable[[], Awaitable]) -> float:
    """Seconds for ``count`` sequential calls."""
    start = time.perf_counter()
    for _ in range(count):
        await call()
    return time.perf_counter() - start


async def _alternating(turn: int, calls: dict[str, Callable[[], Awaitable]]) -> dict:
    """Run each call once, in an order that reverses between turns, so drift favours nobody."""
    names = list(calls) if turn % 2 == 0 else list(reversed(calls))
    results = {}
    for name in names:
        gc.collect()
        results[name] = await asyncio.wait_for(calls[name](), OP_TIMEOUT)
    return results


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def offline_env(root: Path) -> dict[str, str]:
    """Environment that keeps g4f off the network: the tests' own recipe (see tests/offline.py)."""
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


Row = tuple[str, str, str, str, str, str]


def table_rows(bench: Bench) -> tuple[list[Row], list[Row]]:
    """(benchmark, ours, baseline, ratio, target, verdict): the targets, then the other measures."""
    plan = bench.plan
    targets: list[Row] = []
    others: list[Row] = []

    def add(key: str, label: str, unit: Callable[[float], str], target: str = "",
            check: Callable[[float, float, float], bool] | None = None, note: str = "") -> None:
        samples = bench.samples.get(key)
        if not samples or not samples.ours:
            return
        ours, base, ratio = samples.medians()
        if check is None:
            others.append((label, unit(ours), unit(base), f"{ratio:.2f}x", "", ""))
        else:
            verdict = "met" if check(ours, base, ratio) else "NOT MET"
            targets.append((label, unit(ours), unit(base), f"{ratio:.2f}x", target, verdict + note))

    sizes = plan.stream_sizes
    for size in sizes:
        add(f"stream {size} event", f"{size:,} deltas, per-event chunks: provider | limit", _seconds,
            "<= 1.05x", lambda o, b, r: r <= 1.05)
    first = bench.samples.get("first delta")
    if first and first.ours:
        ours, base, _ = first.medians()
        add("first delta", "time to first delta: provider | limit", _ms, "<= limit + 0.2 ms",
            lambda o, b, r: o - b <= 0.0002, f" ({(ours - base) * 1000:+.2f} ms)")
    add("short", f"{plan.short_requests} short answers: provider | limit", _rate, ">= 0.95x",
        lambda o, b, r: r >= 0.95)
    add("concurrent rss", f"{plan.concurrent_streams} x {plan.concurrent_deltas:,} concurrent: RSS growth,"
        " provider | line", _mib, "<= 1.00x", lambda o, b, r: o <= b)
    add("g4f", f"{plan.g4f_deltas:,} deltas in bursts: g4f AsyncClient | provider", _seconds,
        "<= 2.00x", lambda o, b, r: r <= 2.0)

    for size in sizes:
        add(f"line {size} event", f"{size:,} deltas, per-event chunks: provider | line", _seconds)
    for size in sizes:
        add(f"raw {size} event", f"{size:,} deltas, per-event chunks: raw read | limit", _seconds)
    for size in sizes:
        add(f"stream {size} bulk", f"{size:,} deltas, one chunk: provider | limit", _seconds)
    for size in sizes:
        add(f"line {size} bulk", f"{size:,} deltas, one chunk: provider | line", _seconds)
    add("short line", f"{plan.short_requests} short answers: provider | line", _rate)
    add("concurrent rss limit", f"{plan.concurrent_streams} x {plan.concurrent_deltas:,} concurrent: RSS growth,"
        " limit | line", _mib)
    add("concurrent time", f"{plan.concurrent_streams} x {plan.concurrent_deltas:,} concurrent: time,"
        " provider | limit", _seconds)
    small, large = plan.memory_sizes
    add("memory", f"peak RSS, one stream: {large:,} | {small:,} deltas (provider)", _mib)
    add("sync", f"sync Client, {plan.sync_calls:,} calls: RSS after | before", _mib)
    add("import", "import time: g4f + g4f_autonomous | g4f", _ms)
    return targets, others


def _table(rows: list[Row], columns: Row) -> list[str]:
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]

    def line(row: Row) -> str:
        return "  ".join(cell.ljust(widths[i]) if i in (0, 4, 5) else cell.rjust(widths[i])
                         for i, cell in enumerate(row)).rstrip()

    return [line(columns), "-" * len(line(columns)), *map(line, rows)]


LEGEND = [
    "limit: the minimal correct loop (64 KiB reads, split on blank lines, json.loads of each data: payload).",
    "line: the common aiohttp loop, one readline per line. raw read: the body read, nothing decoded (the floor).",
    "per-event chunks: one HTTP chunk per event, as event-stream servers send; one chunk: the whole answer at once.",
    "time to first delta: request start to first delta; the first event is sent at once, the rest after {pause}.",
    "bursts: several deltas per network read (one chunk). RSS growth: peak while streaming minus RSS before,",
    "each client in a fresh process.",
]


def render(bench: Bench, header: Sequence[str]) -> str:
    targets, others = table_rows(bench)
    lines = [*header, ""]
    lines += _table(targets, ("target", "ours", "baseline", "ratio", "target", "verdict"))
    lines += [""] + _table(others, ("also measured", "ours", "baseline", "ratio", "", ""))
    lines += [""] + [line.format(pause=f"{bench.plan.first_delta_pause * 1000:g} ms") for line in LEGEND]
    if "import" in bench.samples:
        ours, base, _ = bench.samples["import"].medians()
        lines.append(f"import g4f_autonomous on top of g4f: {(ours - base) * 1000:.1f} ms (median of"
                     f" {len(bench.samples['import'].ours)} fresh interpreters, autoload off, bytecode cached)")
    sync = bench.notes.get("sync")
    if sync:
        lines.append(f"sync Client: {bench.plan.sync_calls:,} calls in {sync['seconds']:.2f} s; open files "
                     f"{sync['fds_before']} -> {sync['fds_after']}; event loops left in the session pool: "
                     f"{sync['pooled_loops']}")
    before = bench.notes.get("rss before")
    if before:
        lines.append(f"RSS after imports, before any stream (concurrent children): "
                     f"{_mib(statistics.median(before.values()))}")
    return "\n".join(lines)


def _header(plan: Plan, base_url: str, runs_done: int, child_runs_done: int) -> list[str]:
    from importlib.metadata import version

    import g4f_autonomous

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    source = Path(g4f_autonomous.__file__).resolve().parent
    lines = [
        "g4f-autonomous benchmarks",
        f"Python {platform.python_version()} ({platform.python_implementation()}), {platform.system()} "
        f"{platform.machine()}, cores: {os.cpu_count()} ({usable} usable)",
        f"aiohttp {version('aiohttp')}, g4f {version('g4f')}, plugin from {source}",
        f"upstream: bench/upstream.py, own process, {base_url} (raw asyncio, pre-built bytes, keep-alive)",
        f"medians of {runs_done} run(s) in process, {child_runs_done} in fresh processes; ratio = ours / baseline,"
        " median of per-run ratios; lower is better except req/s",
    ]
    if min(runs_done, child_runs_done) < MIN_RUNS:
        lines.append(f"fewer than {MIN_RUNS} runs: the verdicts are a smoke check, not a measurement")
    return lines


def redaction_section(bench: Bench) -> str | None:
    """bench/redaction.py (another engineer's), if present: run as is, its output as a section of its own."""
    if not (ROOT / "bench" / "redaction.py").exists():
        return None
    _progress("bench/redaction.py")
    try:
        # It redacts against a 10 MB prompt whatever the plan: on busy cores that alone took over 120 s,
        # so it may use what is left before the watchdog.
        left = bench.plan.hard_limit - bench.elapsed() - 5
        out = bench.run_module("bench.redaction", timeout=max(CHILD_TIMEOUT, left)).rstrip()
    except RuntimeError as error:
        out = f"failed: {error}"
    return f"\nredaction (bench/redaction.py)\n{out}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short run of each: a smoke check "
                        "(measured 97 to 201 s on 2 busy cores)")
    parser.add_argument("--runs", type=int, help=f"runs per section (default {Plan.runs} in process,"
                        f" {Plan.child_runs} in fresh processes; --quick 1)")
    parser.add_argument("--limit", type=float, help=f"hard time limit in seconds (default {Plan.hard_limit:g})")
    args = parser.parse_args(argv)
    plan = replace(QUICK) if args.quick else Plan()
    if args.runs:
        plan.runs = plan.child_runs = max(1, args.runs)
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
        with UpstreamProcess(env) as upstream:
            bench.upstream = upstream
            asyncio.run(bench.in_process(upstream.base_url))
            bench.in_children(upstream.base_url)
            runs_done = len(bench.row(f"stream {plan.stream_sizes[0]} event").ours)
            header = _header(plan, upstream.base_url, runs_done, len(bench.row("concurrent rss").ours))
            print(render(bench, header), flush=True)
        section = redaction_section(bench)
        if section:
            print(section, flush=True)
    finally:
        bench.upstream = None
        watchdog.cancel()
        workdir.cleanup()
    _progress(f"done in {bench.elapsed():.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
