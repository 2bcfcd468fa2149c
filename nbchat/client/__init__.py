"""The asyncio shell around the pure core: ``ChatClient`` and what moves its bytes.

``client.py`` is the public API; ``connection.py`` the connection task;
``waiters.py`` and ``events.py`` carry the session's outcomes to callers and
listeners; ``blocking.py`` is the bridge behind every ``*_sync`` method;
``tools.py`` runs the notebook's functions as tools.
"""

from __future__ import annotations

from .client import (
    ChatClient,
    ClientEvent,
    ConnectionState,
    ReplyRestarted,
    destroy_client,
    get_client,
)
from .tools import MAX_KEPT_RESULTS, ClientTool, ToolApprover

__all__ = [
    "MAX_KEPT_RESULTS",
    "ChatClient",
    "ClientEvent",
    "ClientTool",
    "ConnectionState",
    "ReplyRestarted",
    "ToolApprover",
    "destroy_client",
    "get_client",
]
