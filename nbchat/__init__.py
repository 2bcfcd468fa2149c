"""nbchat: chat with a backend from inside Jupyter.

``import nbchat`` stays light: it never imports ipywidgets or IPython, so the
client works in plain scripts and services. ``nbchat.ChatWidget`` is imported
on first use.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .client import ChatClient, ConnectionState, destroy_client, get_client
from .config import ClientConfig
from .exceptions import (
    ClientClosed,
    ConfigError,
    ConnectionFailed,
    HandshakeRejected,
    NbchatError,
    ProtocolError,
    QueueFull,
    ReconnectExhausted,
    ReplyTimeout,
    ServerError,
    TranscriptError,
)
from .policy import Disconnect, backoff, should_reconnect
from .protocol import (
    AckMessage,
    CancelRequest,
    ClientMessage,
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    ServerMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
    UnknownMessage,
    UserMessage,
)
from .reply import Reply
from .server import DemoServer, ReplayServer, serve_demo, serve_replay
from .transcript import Recorder, Transcript, TranscriptWarning

if TYPE_CHECKING:
    from .widget import ChatWidget

# A library logs; the application decides where it goes (no "last resort" stderr lines).
logging.getLogger("nbchat").addHandler(logging.NullHandler())

__all__ = [
    "AckMessage",
    "CancelRequest",
    "ChatClient",
    "ChatWidget",
    "ClientClosed",
    "ClientConfig",
    "ClientMessage",
    "ConfigError",
    "ConnectionFailed",
    "ConnectionState",
    "DemoServer",
    "Disconnect",
    "DoneMessage",
    "ErrorInfo",
    "ErrorMessage",
    "HandshakeRejected",
    "NbchatError",
    "ProtocolError",
    "QueueFull",
    "ReconnectExhausted",
    "Recorder",
    "ReplayServer",
    "Reply",
    "ReplyTimeout",
    "ServerError",
    "ServerMessage",
    "TokenMessage",
    "ToolCall",
    "ToolCallMessage",
    "ToolResultMessage",
    "Transcript",
    "TranscriptError",
    "TranscriptWarning",
    "UnknownMessage",
    "UserMessage",
    "__version__",
    "backoff",
    "destroy_client",
    "get_client",
    "serve_demo",
    "serve_replay",
    "should_reconnect",
]


def __getattr__(name: str) -> Any:
    # PEP 562: the widget pulls in ipywidgets and IPython, so load it only when asked for.
    if name == "ChatWidget":
        from .widget import ChatWidget

        return ChatWidget
    raise AttributeError(f"module 'nbchat' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbchat``: register ``%chat`` and ``%%chat``."""
    from .magics import load_ipython_extension as load

    load(ipython)
