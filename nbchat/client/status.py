"""What a :class:`~nbchat.client.ChatClient` shows of itself: state, counts, what answers.

Read-only views of the connection and the session, apart from the client's
methods so each module holds one concept.
"""

from __future__ import annotations

from typing import Any

from ..config import ClientConfig
from ..policy import Disconnect
from ..redact import redact_url
from ..session import Session
from .connection import Connection, ConnectionState
from .http import HttpConnection

__all__ = ["ClientStatus"]


class ClientStatus:
    """The public properties of a client (a base of :class:`~nbchat.client.ChatClient`)."""

    config: ClientConfig
    conversation_id: str
    _connection: Connection | None
    _session: Session

    @property
    def state(self) -> ConnectionState:
        """The connection state."""
        connection = self._connection
        return connection.state if connection is not None else ConnectionState.DISCONNECTED

    @property
    def is_connected(self) -> bool:
        """True while a connection is open."""
        return self.state is ConnectionState.CONNECTED

    @property
    def reconnecting(self) -> bool:
        """True between connections while the client will try again."""
        return self._connection is not None and self._connection.reconnecting

    @property
    def attempt(self) -> int:
        """Consecutive failed (re)connection attempts; 0 while connected."""
        return self._connection.attempt if self._connection is not None else 0

    @property
    def last_disconnect(self) -> Disconnect | None:
        """How the last connection ended, for status displays."""
        return self._connection.last_disconnect if self._connection is not None else None

    @property
    def url(self) -> str:
        """The server URL."""
        return self.config.url

    @property
    def safe_url(self) -> str:
        """The server URL with credentials replaced by ``***``: the form logs and errors show."""
        return redact_url(self.config.url) or ""

    @property
    def backend(self) -> str | None:
        """What answers, as the server last announced it (``demo agent``, a model and its
        host); None before a connection or from a server that does not say."""
        connection = self._connection
        return getattr(connection, "backend", None) if connection is not None else None

    @property
    def agent_state(self) -> Any:
        """The AG-UI agent's shared state in the current conversation, as it last sent it
        (each change an ``agent_state`` event); None before that and for other protocols."""
        connection = self._connection
        if isinstance(connection, HttpConnection):
            return connection.threads.state(self.conversation_id)
        return None

    @property
    def queued(self) -> int:
        """Frames accepted but not yet written to a connection."""
        return self._session.queued

    @property
    def pending(self) -> int:
        """Messages whose reply is not complete yet (bounded by ``max_queue``)."""
        return len(self._session.pending)

    @property
    def features(self) -> frozenset[str]:
        """The protocol extensions the server announced on the current connection (none
        before one opens, and from a backend that speaks another protocol)."""
        connection = self._connection
        return connection.features if connection is not None else frozenset()
