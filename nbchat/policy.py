"""When to reconnect and how long to wait: pure functions, no I/O, no clock.

The close-code table (RFC 6455 section 7.4.1, and the TypeScript client's table):

====  ====================  ==========================================
code  meaning               action
====  ====================  ==========================================
1000  normal closure        do not reconnect
1001  going away            reconnect
1006  abnormal closure      reconnect with backoff
1011  server error          reconnect after a delay
1012  service restart       reconnect
1013  try again later       reconnect
1014  bad gateway           reconnect
1005  no status received    reconnect (a close frame without a code: not a normal closure)
none  refused / network     reconnect (no close frame: the peer vanished)
1002, 1003, 1007, 1008,     do not reconnect: the same frames would be
1009, 1010, 4000-4999       refused the same way again
====  ====================  ==========================================

A handshake refused with HTTP 401 or 403 (wrong token, forbidden origin) never
reconnects; any other HTTP status (a 502 while a proxy restarts) does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = [
    "MAX_STALLED_RESENDS",
    "NORMAL_CLOSURE",
    "RECONNECT_CODES",
    "Disconnect",
    "ReconnectPolicy",
    "backoff",
    "gives_up_resending",
    "should_reconnect",
]

NORMAL_CLOSURE = 1000
RECONNECT_CODES = frozenset({1001, 1005, 1006, 1011, 1012, 1013, 1014})
_NEVER_RETRY_STATUS = frozenset({400, 401, 403, 404})

MAX_STALLED_RESENDS = 5
"""Resends of one message in a row after which its reply got no further, before it fails.

A reply whose next frame ends every connection (a frame over the peer's size
limit: 1009; a server that crashes on it: 1011) is acked again and again on
each reconnect, and each connection "progressed" (the ack), so the attempt
count never runs out. The session counts, per message, the acks that came with
no more of its reply delivered than before, and fails it past this bound.
"""


@dataclass(frozen=True)
class Disconnect:
    """Why a connection ended (or never started): what a reconnect policy decides on."""

    code: int | None = None
    """The WebSocket close code, or None when no close frame arrived (refused, reset)."""
    reason: str = ""
    status: int | None = None
    """The HTTP status when the opening handshake itself was refused."""
    error: BaseException | None = None


ReconnectPolicy = Callable[[Disconnect], bool]
"""A predicate: given how a connection ended, should the client try again?"""


def should_reconnect(disconnect: Disconnect) -> bool:
    """The default policy: the close-code table above."""
    if disconnect.status is not None:
        return disconnect.status not in _NEVER_RETRY_STATUS
    if disconnect.code is None:
        return True
    return disconnect.code in RECONNECT_CODES


def gives_up_resending(stalls: int) -> bool:
    """Whether a message resent ``stalls`` times in a row without progress is given up."""
    return stalls >= MAX_STALLED_RESENDS


def backoff(
    initial: float,
    factor: float = 2.0,
    maximum: float = 30.0,
    jitter: float = 1.0,
    rng: Callable[[], float] = random.random,
) -> Iterator[float]:
    """Yield reconnection delays: exponential from ``initial``, capped at ``maximum``.

    ``jitter`` is the fraction of each delay drawn at random: 1.0 is "full
    jitter" (uniform between 0 and the delay), which spreads a crowd of clients
    reconnecting to a restarted server; 0.0 is the plain exponential sequence.
    """
    delay = initial
    while True:
        capped = min(delay, maximum)
        yield capped * (1.0 - jitter * rng())
        delay *= factor
