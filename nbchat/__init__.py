"""nbchat: chat with a backend from inside Jupyter.

The public surface is every public name of the modules below, in one place.
``import nbchat`` stays light: the client, the protocol and transcripts load
at once; the reference server (its agent and tools, and the model bridge)
and the widget (ipywidgets, IPython) load on first use of one of their names.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .client import (
    ChatClient,
    ClientEvent,
    ConnectionState,
    ReplyRestarted,
    destroy_client,
    get_client,
)
from .client_tools import MAX_KEPT_RESULTS, ClientTool, ToolApprover
from .config import (
    DEFAULT_MAX_SIZE,
    DEFAULT_URL,
    DEMO_DELAY,
    RECORD_ENV,
    TOKEN_ENV,
    URL_ENV,
    ClientConfig,
    default_url,
)
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
    ToolArgumentsError,
    ToolError,
    ToolSpecError,
    TranscriptError,
)
from .policy import (
    NORMAL_CLOSURE,
    RECONNECT_CODES,
    Disconnect,
    ReconnectPolicy,
    backoff,
    should_reconnect,
)
from .protocol import (
    CLIENT_ID_HEADER,
    CLIENT_TOOLS_FEATURE,
    FEATURES_HEADER,
    PROTOCOL_VERSION,
    AckMessage,
    CancelRequest,
    ClientMessage,
    ClientToolInfo,
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    ServerMessage,
    TokenMessage,
    ToolAck,
    ToolCall,
    ToolCallMessage,
    ToolControl,
    ToolRequest,
    ToolResponse,
    ToolResultMessage,
    ToolsDeclaration,
    UnknownMessage,
    UserMessage,
    WireModel,
    as_user_message,
    dump,
    new_id,
    parse_client_message,
    parse_server_frame,
    parse_server_message,
)
from .reply import Reply, ReplyBuilder
from .toolspec import (
    MAX_ARGUMENT_CHARS,
    MAX_DESCRIPTION_CHARS,
    MAX_RESULT_CHARS,
    ToolResult,
    ToolSpec,
    error_text,
    parse_arguments,
    serialize_result,
    tool_spec,
)
from .transcript import (
    TRANSCRIPT_VERSION,
    Direction,
    EventSource,
    Recorder,
    Transcript,
    TranscriptLine,
    TranscriptWarning,
    redact_url,
)
from .turn import Segment, Turn, TurnEnding

if TYPE_CHECKING:
    from .server import (
        DEFAULT_OPTIONS,
        NOT_IN_TRANSCRIPT,
        TOO_MANY_REPLIES,
        TOOL_RESULT_DIFFERS,
        ChatServer,
        ClientTools,
        DemoAgent,
        DemoServer,
        OpenAIAgent,
        ReplayResponder,
        ReplayServer,
        ReplyLog,
        Responder,
        ResponderMessage,
        ServerOptions,
        current_client_tools,
        serve_demo,
        serve_replay,
    )
    from .views import Throttle, TurnLog, TurnView
    from .widget import ChatWidget, current_widget

# A library logs; the application decides where it goes (no "last resort" stderr lines).
logging.getLogger("nbchat").addHandler(logging.NullHandler())

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        [
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
            "serve_demo",
            "serve_replay",
        ],
        ".server",
    ),
    **dict.fromkeys(["ChatWidget", "Throttle", "TurnLog", "TurnView", "current_widget"], ".widget"),
}
"""Names whose modules load on first use: the server and the widget are heavy."""

__all__ = [
    "CLIENT_ID_HEADER",
    "CLIENT_TOOLS_FEATURE",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_OPTIONS",
    "DEFAULT_URL",
    "DEMO_DELAY",
    "FEATURES_HEADER",
    "MAX_ARGUMENT_CHARS",
    "MAX_DESCRIPTION_CHARS",
    "MAX_KEPT_RESULTS",
    "MAX_RESULT_CHARS",
    "NORMAL_CLOSURE",
    "NOT_IN_TRANSCRIPT",
    "PROTOCOL_VERSION",
    "RECONNECT_CODES",
    "RECORD_ENV",
    "TOKEN_ENV",
    "TOOL_RESULT_DIFFERS",
    "TOO_MANY_REPLIES",
    "TRANSCRIPT_VERSION",
    "URL_ENV",
    "AckMessage",
    "CancelRequest",
    "ChatClient",
    "ChatServer",
    "ChatWidget",
    "ClientClosed",
    "ClientConfig",
    "ClientEvent",
    "ClientMessage",
    "ClientTool",
    "ClientToolInfo",
    "ClientTools",
    "ConfigError",
    "ConnectionFailed",
    "ConnectionState",
    "DemoAgent",
    "DemoServer",
    "Direction",
    "Disconnect",
    "DoneMessage",
    "ErrorInfo",
    "ErrorMessage",
    "EventSource",
    "HandshakeRejected",
    "NbchatError",
    "OpenAIAgent",
    "ProtocolError",
    "QueueFull",
    "ReconnectExhausted",
    "ReconnectPolicy",
    "Recorder",
    "ReplayResponder",
    "ReplayServer",
    "Reply",
    "ReplyBuilder",
    "ReplyLog",
    "ReplyRestarted",
    "ReplyTimeout",
    "Responder",
    "ResponderMessage",
    "Segment",
    "ServerError",
    "ServerMessage",
    "ServerOptions",
    "Throttle",
    "TokenMessage",
    "ToolAck",
    "ToolApprover",
    "ToolArgumentsError",
    "ToolCall",
    "ToolCallMessage",
    "ToolControl",
    "ToolError",
    "ToolRequest",
    "ToolResponse",
    "ToolResult",
    "ToolResultMessage",
    "ToolSpec",
    "ToolSpecError",
    "ToolsDeclaration",
    "Transcript",
    "TranscriptError",
    "TranscriptLine",
    "TranscriptWarning",
    "Turn",
    "TurnEnding",
    "TurnLog",
    "TurnView",
    "UnknownMessage",
    "UserMessage",
    "WireModel",
    "__version__",
    "as_user_message",
    "backoff",
    "current_client_tools",
    "current_widget",
    "default_url",
    "destroy_client",
    "dump",
    "error_text",
    "get_client",
    "new_id",
    "parse_arguments",
    "parse_client_message",
    "parse_server_frame",
    "parse_server_message",
    "redact_url",
    "serialize_result",
    "serve_demo",
    "serve_replay",
    "should_reconnect",
    "tool_spec",
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
    from .magics import load_ipython_extension as load

    load(ipython)
