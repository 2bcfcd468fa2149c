"""Loop time that leaves out the loop's stalls: what ``connect_timeout`` counts."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

__all__ = ["AwakeClock", "awake_timeout"]

_TICK = 0.25
_STALL_TOLERANCE = 0.1
"""A heartbeat due every ``_TICK`` s and later than this by more was a stall of the loop."""


class AwakeClock:
    """Loop time minus the loop's stalls: the time a client could actually try to connect.

    In a kernel the loop is blocked while a cell runs (Run All over a panel, then
    ``time.sleep(10)``): that must not use up ``connect_timeout``. A heartbeat
    measures how late it runs; a stall is counted even before its heartbeat ran.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop, self._stalled, self._due = loop, 0.0, loop.time() + _TICK
        self._handle = loop.call_at(self._due, self._beat)

    def _beat(self) -> None:
        self._stalled += self._late()
        self._due = self._loop.time() + _TICK
        self._handle = self._loop.call_at(self._due, self._beat)

    def _late(self) -> float:
        late = self._loop.time() - self._due
        return late if late > _STALL_TOLERANCE else 0.0

    def stalled(self) -> float:
        """Seconds the loop was blocked since this clock started."""
        return self._stalled + self._late()

    def time(self) -> float:
        """Loop time, stalls left out."""
        return self._loop.time() - self.stalled()

    def stop(self) -> None:
        self._handle.cancel()


@contextlib.asynccontextmanager
async def awake_timeout(timeout: float | None) -> AsyncIterator[None]:
    """``asyncio.timeout`` counting only the time the loop ran.

    An opening handshake that a cell blocked (the server's answer sat in the
    socket while ``time.sleep(10)`` ran) had no chance to finish: timing it out
    when the loop wakes would be a false failure, decided by which callback the
    loop happens to run first. The body runs in the caller's task, as with
    ``asyncio.timeout``, so what it awaits is resumed as soon as it is ready.
    """
    if timeout is None:
        yield
        return
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None, "awake_timeout runs in a task"
    clock = AwakeClock(loop)
    deadline = clock.time() + timeout
    expired = False
    handle: asyncio.TimerHandle | None = None

    def check() -> None:
        nonlocal handle, expired
        left = deadline - clock.time()
        if left > 0:  # the loop was blocked meanwhile: that time is given back
            handle = loop.call_later(left, check)
        else:
            expired = True
            task.cancel()  # delivered where the body awaits: it is suspended now

    handle = loop.call_later(timeout, check)
    try:
        yield
    except asyncio.CancelledError:
        if not expired:
            raise
        if sys.version_info >= (3, 11):
            task.uncancel()
        raise asyncio.TimeoutError from None
    finally:
        assert handle is not None
        handle.cancel()
        clock.stop()
