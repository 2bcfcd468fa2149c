"""The demo agent's pace: tokens due on a fixed schedule, the way a model streams.

Kept apart from the agent's rules because it is the one part that is about
time and the event loop, not about what the reply says.
"""

from __future__ import annotations

import asyncio

__all__ = ["Pace"]

_MAX_BURST = 64
"""Late tokens yielded in a row before giving the loop a turn."""


class Pace:
    """Token deadlines on a fixed schedule: one timer per token when on time, none when late.

    A late token is yielded at once, without going back to the loop, up to
    :data:`_MAX_BURST` in a row: the reply catches up in one step, and the
    server writes the tokens due together in one socket write.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.due: float | None = None
        self.burst = 0

    async def next(self) -> None:
        """Wait until the next token is due."""
        if self.delay <= 0:
            await asyncio.sleep(0)  # as fast as possible, but fair to other replies
            return
        now = asyncio.get_running_loop().time()
        self.due = (now if self.due is None else self.due) + self.delay
        if self.due > now:
            self.burst = 0
            await asyncio.sleep(self.due - now)
        elif self.burst < _MAX_BURST:
            self.burst += 1
        else:
            self.burst = 0
            await asyncio.sleep(0)
