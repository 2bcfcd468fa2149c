"""The reference backend: a protocol v1 WebSocket server, the demo agent and its tools.

``ChatServer`` serves any :class:`Responder`; ``DemoServer`` and ``serve_demo``
serve the deterministic :class:`DemoAgent`. ``nbchat serve`` runs one from the
command line.
"""

from __future__ import annotations

from .agent import DemoAgent
from .app import (
    DEFAULT_MAX_SIZE,
    ChatServer,
    DemoServer,
    ReplyLog,
    Responder,
    ResponderMessage,
    serve_demo,
)
from .tools import ToolError

__all__ = [
    "DEFAULT_MAX_SIZE",
    "ChatServer",
    "DemoAgent",
    "DemoServer",
    "ReplyLog",
    "Responder",
    "ResponderMessage",
    "ToolError",
    "serve_demo",
]
