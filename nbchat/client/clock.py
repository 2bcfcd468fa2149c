"""Loop time that leaves out the loop's stalls: what ``connect_timeout`` counts."""

from __future__ import annotations

import asyncio

__all__ = ["AwakeClock"]

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
