"""Subprocess checks run ahead of their tests, one at a time, on the core pytest itself leaves idle.

Most of the suite runs in pytest's own process, on one core; a check that needs a
fresh interpreter (half a second of importing g4f) mostly waits. A test module
that defines ``prefetch(jobs, root)`` submits such runs there: conftest.py calls
it for every module of the session before the first test starts, and a worker
thread runs the jobs in that order. A test then takes its job's result (what
the job returned or raised); a job not started yet is taken off the queue and
run by the test itself. Everything a job uses (arguments, environment, folder)
is fixed when it is submitted, so no test's monkeypatching can reach it. A job
runs while other tests do: it has an emulator of its own (helpers.on_an_emulator),
never the session's, and changes nothing they read (so no ``g4f gui``, which may
rewrite g4f's packaged providers.json that test_guest compares).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any


class Prefetch:
    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
        self._jobs: dict[str, tuple[Callable[[], Any], concurrent.futures.Future]] = {}
        self._running = threading.Lock()  # held by the worker through each job, and by paused()

    def submit(self, key: str, job: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        assert key not in self._jobs, key
        call = functools.partial(job, *args, **kwargs)
        self._jobs[key] = (call, self._pool.submit(self._run, call))

    def _run(self, call: Callable[[], Any]) -> Any:
        with self._running:
            return call()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No job runs in the worker meanwhile (the one running ends first): for a test that
        measures what this process holds (memory, descriptors, objects), which a job's own
        allocations, pipes and emulator would change."""
        with self._running:
            yield

    def result(self, key: str) -> Any:
        call, future = self._jobs[key]
        if future.cancel():  # still queued: run it here, now
            future = concurrent.futures.Future()
            try:
                future.set_result(call())
            except Exception as error:
                future.set_exception(error)
            self._jobs[key] = (call, future)
        return future.result()

    def close(self) -> None:
        """Drop what has not started; wait for the one running (each job has a timeout of its own)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
