"""The reference backend: a protocol v1 WebSocket server, the demo agent and its tools.

``ChatServer`` serves any :class:`Responder`; ``DemoServer`` and ``serve_demo``
serve the deterministic :class:`DemoAgent`; ``ReplayServer`` and ``serve_replay``
answer from a recorded transcript (:class:`ReplayResponder`). ``nbchat serve``
runs either from the command line.
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
from .replay import NOT_IN_TRANSCRIPT, ReplayResponder, ReplayServer, serve_replay
from .tools import ToolError

__all__ = [
    "DEFAULT_MAX_SIZE",
    "NOT_IN_TRANSCRIPT",
    "ChatServer",
    "DemoAgent",
    "DemoServer",
    "ReplayResponder",
    "ReplayServer",
    "ReplyLog",
    "Responder",
    "ResponderMessage",
    "ToolError",
    "serve_demo",
    "serve_replay",
]
