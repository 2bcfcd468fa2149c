"""The asyncio shell around the pure core: ``ChatClient`` and what moves its bytes.

``client.py`` is the public API (its tool methods in ``offering.py``, its
recording in ``recording.py``); ``registry.py`` the app-wide client;
``connection.py`` the connection task; ``dispatch.py`` carries the session's
outcomes to the callers waiting (``waiters.py``) and the listeners
(``events.py``); ``blocking.py`` is the bridge behind every ``*_sync`` method;
``tools.py`` runs the notebook's functions as tools.
"""

from __future__ import annotations

from .client import ChatClient, ClientEvent, ConnectionState, ReplyRestarted
from .registry import destroy_client, get_client
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
