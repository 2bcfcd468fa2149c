"""What every connection task of a client has, whichever way it reaches its server.

:class:`~nbchat.client.connection.Connection` keeps a WebSocket open (nbchat
v1, a :class:`~nbchat.JsonProtocol` backend); :class:`~nbchat.client.http.
HttpConnection` runs each message as an HTTP request read as server-sent
events (AG-UI, the AI SDK). The client, its views and the panel read only
what is here: the state, the attempts, why it gave up, what answers.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ..config import ClientConfig
from ..exceptions import NbchatError
from ..policy import Disconnect
from ..redact import redact_url
from ..session import Outcome, Session

__all__ = ["ConnectionState", "Link"]

logger = logging.getLogger("nbchat.client")


class ConnectionState(str, enum.Enum):
    """Where the connection is in its lifecycle (the seed's state diagram)."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSING = "closing"

    def __str__(self) -> str:
        return self.value


class Link:
    """The state a client's connection task keeps and reports; subclasses reach the server."""

    def __init__(
        self,
        config: ClientConfig,
        session: Session,
        carry_out: Callable[[list[Outcome]], None],
        stopped: Callable[[NbchatError], None],
        emit: Callable[..., None],
        reached: bool,
    ) -> None:
        self.config = config
        self.session = session
        self.reached = reached
        """True once a connection of this client has opened: then ``connect_timeout`` is over."""
        self._carry_out = carry_out
        """Carries out the session's outcomes of each server frame."""
        self._stopped = stopped
        """Called once when the connection gives up for good: fail what is pending."""
        self._emit = emit
        """Emits the client events ``state``, ``open``, ``close`` and ``error``."""
        self.safe_url = redact_url(config.url) or ""
        """The URL with credentials replaced by ``***``: the only form logs and errors show."""
        self.state = ConnectionState.DISCONNECTED
        self.attempt = 0
        """Consecutive failed (re)connection attempts; 0 while connected."""
        self.last_disconnect: Disconnect | None = None
        self.failure: NbchatError | None = None
        self.reconnecting = False
        """True between connections while it will try again."""
        self.backend: str | None = None
        """What answers, as the server announced it (``Nbchat-Backend``); None if it did not."""
        self.features: frozenset[str] = frozenset()
        """The extensions the server announced (``Nbchat-Features``) on the last connection."""
        self.opened = asyncio.Event()
        """Set while a connection is open."""
        self.loop = asyncio.get_running_loop()
        self._wake_writer = asyncio.Event()
        self._closing = False
        self.finished: asyncio.Future[None] = self.loop.create_future()
        """Done when the task has ended, for any reason."""
        # The connection outlives whatever started it (in a notebook: a cell), so it
        # runs in a fresh context rather than inheriting the caller's. ipykernel 7
        # keeps the parent request in a context variable; unset, it falls back to
        # the request running now, so output from events reaches the current cell.
        self._task = contextvars.Context().run(
            self.loop.create_task, self._run(), name=f"nbchat-client {self.safe_url}"
        )

    @property
    def running(self) -> bool:
        """True until the task has ended."""
        return not self._task.done()

    def wake(self) -> None:
        """The session has something to write."""
        self._wake_writer.set()

    def set_state(self, state: ConnectionState) -> None:
        """Move to ``state``, emitting ``state`` if it changed."""
        if state is not self.state:
            self.state = state
            self._emit("state", state)

    def _run(self) -> Coroutine[Any, Any, None]:
        """The task itself: reach the server, serve it, reconnect, until told to stop."""
        raise NotImplementedError

    def _stop(self, failure: NbchatError) -> None:
        """Give up for good: say why, once, and fail what is pending."""
        self.failure = failure
        self.reconnecting = False
        logger.error("%s", failure)
        self._stopped(failure)
