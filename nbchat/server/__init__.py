"""The reference backend: a protocol v1 WebSocket server, the demo agent and its tools.

``ChatServer`` serves any :class:`Responder` (``responder.py`` holds the
contract); ``DemoServer`` and ``serve_demo`` serve the deterministic
:class:`DemoAgent`; ``ReplayServer`` and ``serve_replay`` answer from a recorded
transcript (:class:`ReplayResponder`); :class:`OpenAIAgent` bridges to any
OpenAI-compatible model endpoint. ``nbchat serve`` runs any of them.
"""

from __future__ import annotations

from .app import DEFAULT_OPTIONS, ChatServer, ServerOptions
from .demo.agent import DemoAgent
from .demo.server import DemoServer, serve_demo
from .openai.bridge import OpenAIAgent
from .registry import TOO_MANY_REPLIES
from .replay import (
    NOT_IN_TRANSCRIPT,
    TOOL_RESULT_DIFFERS,
    ReplayResponder,
    ReplayServer,
    serve_replay,
)
from .replylog import ReplyLog
from .responder import (
    ClientTools,
    Responder,
    ResponderMessage,
    current_client_tools,
    current_context,
)

__all__ = [
    "DEFAULT_OPTIONS",
    "NOT_IN_TRANSCRIPT",
    "TOOL_RESULT_DIFFERS",
    "TOO_MANY_REPLIES",
    "ChatServer",
    "ClientTools",
    "DemoAgent",
    "DemoServer",
    "OpenAIAgent",
    "ReplayResponder",
    "ReplayServer",
    "ReplyLog",
    "Responder",
    "ResponderMessage",
    "ServerOptions",
    "current_client_tools",
    "current_context",
    "serve_demo",
    "serve_replay",
]
