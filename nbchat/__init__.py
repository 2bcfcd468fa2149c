"""nbchat: chat with a backend from inside Jupyter.

This is the public surface, the names users call: what ``__all__`` lists
stays put across releases. Everything else lives in the layer that owns it
(``docs/architecture.md``) and may change. ``import nbchat`` stays light: the
client, the protocol and transcripts load at once; the server (its agent,
tools and the model bridge) and the notebook layer (ipywidgets, IPython) load
on first use of one of their names.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .client import (
    ChatClient,
    ClientEvent,
    ClientTool,
    ConnectionState,
    ReplyRestarted,
    ToolApprover,
    destroy_client,
    get_client,
)
from .config import (
    RECORD_ENV,
    TOKEN_ENV,
    URL_ENV,
    ClientConfig,
)
from .exceptions import (
    AttachmentError,
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
    ToolArgumentsError,
    ToolError,
    ToolSpecError,
    TranscriptError,
)
from .jsonprotocol import JsonProtocol
from .policy import (
    Disconnect,
    ReconnectPolicy,
)
from .protocol import (
    PROTOCOL_VERSION,
    AckMessage,
    CancelRequest,
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
from .reply import (
    Reply,
)
from .schematool import (
    Tool,
)
from .transcript import (
    TRANSCRIPT_VERSION,
    Recorder,
    Transcript,
    TranscriptWarning,
)
from .turn import (
    Turn,
)

if TYPE_CHECKING:
    from .notebook import (
        ChatWidget,
        current_widget,
    )
    from .server import (
        NOT_IN_TRANSCRIPT,
        TOO_MANY_REPLIES,
        TOOL_RESULT_DIFFERS,
        ChatServer,
        ClientTools,
        DemoAgent,
        DemoServer,
        OpenAIAgent,
        ReplayServer,
        Responder,
        ResponderMessage,
        ServerOptions,
        current_client_tools,
        serve_demo,
        serve_replay,
    )

# A library logs; the application decides where it goes (no "last resort" stderr lines).
logging.getLogger("nbchat").addHandler(logging.NullHandler())

_LAZY: dict[str, str] = {
    **dict.fromkeys(["ChatWidget", "current_widget"], ".notebook"),
    **dict.fromkeys(
        [
            "NOT_IN_TRANSCRIPT",
            "TOOL_RESULT_DIFFERS",
            "TOO_MANY_REPLIES",
            "ChatServer",
            "ClientTools",
            "DemoAgent",
            "DemoServer",
            "OpenAIAgent",
            "ReplayServer",
            "Responder",
            "ResponderMessage",
            "ServerOptions",
            "current_client_tools",
            "serve_demo",
            "serve_replay",
        ],
        ".server",
    ),
}
"""Names whose modules load on first use: the server and the notebook layer are heavy."""

__all__ = [
    "NOT_IN_TRANSCRIPT",
    "PROTOCOL_VERSION",
    "RECORD_ENV",
    "TOKEN_ENV",
    "TOOL_RESULT_DIFFERS",
    "TOO_MANY_REPLIES",
    "TRANSCRIPT_VERSION",
    "URL_ENV",
    "AckMessage",
    "AttachmentError",
    "CancelRequest",
    "ChatClient",
    "ChatServer",
    "ChatWidget",
    "ClientClosed",
    "ClientConfig",
    "ClientEvent",
    "ClientTool",
    "ClientTools",
    "ConfigError",
    "ConnectionFailed",
    "ConnectionState",
    "DemoAgent",
    "DemoServer",
    "Disconnect",
    "DoneMessage",
    "ErrorInfo",
    "ErrorMessage",
    "HandshakeRejected",
    "JsonProtocol",
    "NbchatError",
    "OpenAIAgent",
    "ProtocolError",
    "QueueFull",
    "ReconnectExhausted",
    "ReconnectPolicy",
    "Recorder",
    "ReplayServer",
    "Reply",
    "ReplyRestarted",
    "ReplyTimeout",
    "Responder",
    "ResponderMessage",
    "ServerError",
    "ServerMessage",
    "ServerOptions",
    "TokenMessage",
    "Tool",
    "ToolApprover",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallMessage",
    "ToolError",
    "ToolResultMessage",
    "ToolSpecError",
    "Transcript",
    "TranscriptError",
    "TranscriptWarning",
    "Turn",
    "UnknownMessage",
    "UserMessage",
    "__version__",
    "current_client_tools",
    "current_widget",
    "destroy_client",
    "get_client",
    "serve_demo",
    "serve_replay",
]


def __getattr__(name: str) -> Any:
    # PEP 562: import the module that defines ``name`` on first use, then keep it here.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbchat' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext nbchat``: register ``%chat`` and ``%%chat``."""
    from .notebook.magics import load_ipython_extension as load

    load(ipython)
