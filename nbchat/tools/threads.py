"""nbchat's own threads for plain-function tools: bounded, and never the loop's default executor.

A plain function cannot be stopped: a call given up (Stop, a time limit)
keeps its thread until the function returns, maybe never. On asyncio's default
executor (a handful of threads on a small machine) six such calls left no
thread for any later tool, nor for any other ``run_in_executor(None)`` job of
the kernel. Here:

- at most ``workers`` calls run at once; more wait their turn;
- a call given up while it runs is *stuck*: its thread no longer counts
  against ``workers``, a replacement thread is started for the calls that
  follow (up to ``max_threads`` threads in all), and once the stuck function
  returns its thread is reclaimed (it leaves if it is surplus);
- when every one of ``max_threads`` threads is stuck, a new call is refused at
  once (:class:`ThreadsExhausted`, one line) instead of waiting forever;
- a call given up before it started never runs.

Threads are daemons (a stuck one never keeps the interpreter from exiting) and
each call runs in a copy of its caller's context, as ``asyncio.to_thread`` does.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import itertools
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_THREADS", "WORKERS", "Job", "ThreadsExhausted", "ToolThreads"]

WORKERS = 8
"""Plain-function tool calls that run at once; more wait for a thread."""
MAX_THREADS = 32
"""Tool threads at most, counting those held by calls that could not be stopped."""
IDLE_SECONDS = 30.0
"""A thread with nothing to do for this long leaves."""


class ThreadsExhausted(RuntimeError):
    """Every tool thread is held by a call that could not be stopped."""


@dataclass(eq=False)
class Job:
    """One call handed to the threads: its future, and whether its caller gave it up."""

    function: Callable[[], Any]
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)
    abandoned: bool = False


class ToolThreads:
    """A bounded pool of daemon threads that reclaims the slots of calls it cannot stop."""

    def __init__(
        self, workers: int = WORKERS, max_threads: int = MAX_THREADS, name: str = "nbchat tool"
    ) -> None:
        self.workers = workers
        self.max_threads = max(max_threads, workers)
        self._name = name
        self._numbers = itertools.count(1)
        self._lock = threading.Condition()
        self._queue: deque[Job] = deque()
        self._threads = 0
        self._idle = 0
        self._stuck = 0

    @property
    def threads(self) -> int:
        """Threads alive now."""
        return self._threads

    @property
    def stuck(self) -> int:
        """Threads running a call whose caller gave it up."""
        return self._stuck

    def wait_unstuck(self, timeout: float) -> bool:
        """Block until no call is stuck (or ``timeout`` seconds); whether none is."""
        with self._lock:
            return self._lock.wait_for(lambda: self._stuck == 0, timeout)

    def submit(self, function: Callable[[], Any]) -> Job:
        """Queue ``function`` (run in a copy of this context); ThreadsExhausted if none can."""
        job = Job(_in_context(function))
        with self._lock:
            if self._threads >= self.max_threads and self._stuck >= self._threads:
                raise ThreadsExhausted(
                    f"all {self.max_threads} tool threads are held by calls that could not be "
                    "stopped: the call did not run (restart the kernel to free them)"
                )
            self._queue.append(job)
            self._grow()
        return job

    def abandon(self, job: Job) -> bool:
        """The caller gave ``job`` up: True if it still runs (stuck), False if it never will."""
        with self._lock:
            if job.future.done():
                return False
            if job.future.cancel():  # not started: it never runs
                return False
            if not job.abandoned:
                job.abandoned = True
                self._stuck += 1
                self._grow()
            return True

    # Private methods (called with the lock held, but for _work)

    def _grow(self) -> None:
        """Wake an idle thread for what is queued, or start one within the bounds."""
        waiting = sum(not job.future.cancelled() for job in self._queue)
        if self._idle >= waiting:
            self._lock.notify(waiting)
            return
        self._lock.notify(self._idle)
        allowed = min(self.max_threads, self.workers + self._stuck)
        if self._threads < allowed and waiting:
            self._threads += 1
            thread = threading.Thread(
                target=self._work, name=f"{self._name} {next(self._numbers)}", daemon=True
            )
            thread.start()

    def _work(self) -> None:
        while True:
            with self._lock:
                job = self._next()
                if job is None:
                    self._threads -= 1
                    return
            try:
                job.future.set_result(job.function())
            except BaseException as exc:  # a tool's SystemExit is its caller's to report
                job.future.set_exception(exc)
            with self._lock:
                if job.abandoned:
                    self._stuck -= 1
                    self._lock.notify_all()  # wait_unstuck, and idle threads: one may leave
                job.function = _done  # the function and its context can go now

    def _next(self) -> Job | None:
        """The next job to run, or None when this thread should leave."""
        while True:
            while self._queue:
                job = self._queue.popleft()
                if job.future.set_running_or_notify_cancel():
                    return job
            if self._threads - self._stuck > self.workers:
                return None  # a replacement no longer needed
            self._idle += 1
            woken = self._lock.wait(IDLE_SECONDS)
            self._idle -= 1
            if not woken and not self._queue:
                return None


def _in_context(function: Callable[[], Any]) -> Callable[[], Any]:
    context = contextvars.copy_context()
    return lambda: context.run(function)


def _done() -> None:
    """What a finished job holds instead of its function."""
