"""Wire protocol v1: the JSON messages exchanged over the WebSocket (see docs/protocol.md).

Pure code, no I/O. Every message is a pydantic model tagged by ``type``; the two
directions each have a union. Unknown fields are kept everywhere
(``extra="allow"``) so nothing a newer server sends is lost. Reading frames
into these models is :mod:`nbchat.parsing`'s.

A lone surrogate (legal in a JSON escape, never in UTF-8) is decided once:
refused at parse time in a client frame (``parsing.LoneSurrogateError``),
written as ``?`` by :func:`encode_frame` and :func:`utf8` rather than failing
a reply.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .attachments import Attachment

__all__ = [
    "ATTACHMENTS_FEATURE",
    "BACKEND_HEADER",
    "CANCEL_FEATURE",
    "CLIENT_ID_HEADER",
    "CLIENT_TOOLS_FEATURE",
    "CONTEXT_FEATURE",
    "FEATURES_HEADER",
    "MAX_ID_LENGTH",
    "PROTOCOL_VERSION",
    "REASONING_FEATURE",
    "AckMessage",
    "CancelRequest",
    "ClientMessage",
    "ClientToolInfo",
    "ContextItem",
    "DoneMessage",
    "ErrorInfo",
    "ErrorMessage",
    "ReasoningMessage",
    "ServerMessage",
    "TokenMessage",
    "ToolAck",
    "ToolCall",
    "ToolCallMessage",
    "ToolControl",
    "ToolRequest",
    "ToolResponse",
    "ToolResultMessage",
    "ToolsDeclaration",
    "UnknownMessage",
    "Usage",
    "UserMessage",
    "WireModel",
    "dump",
    "encode_frame",
    "new_id",
    "utf8",
]

PROTOCOL_VERSION = 1

CLIENT_ID_HEADER = "Nbchat-Client"
"""Handshake header carrying a client's identity: a random secret that survives reconnects.

The server scopes message ids, conversations, resume and cancel to it. A
client that sends none (a browser, the TypeScript client) is scoped to its
connection. Like every header, it is never recorded.
"""

MAX_ID_LENGTH = 256
"""Characters at most of a message, conversation or tool call id: the server refuses more."""

FEATURES_HEADER = "Nbchat-Features"
"""Handshake response header: the protocol extensions a server supports, comma-separated."""

BACKEND_HEADER = "Nbchat-Backend"
"""Handshake response header: what answers, in a few words (``demo agent``, ``model 'llama3.2'
at http://host/v1``). A header, so a client that does not read it is sent nothing new."""

CLIENT_TOOLS_FEATURE = "client-tools"
"""The feature naming client tools (``tools``, ``tool_request``, ``tool_response``,
``tool_ack``): a client sends ``tools`` only to a server that announces it, so a
server that knows nothing of client tools never receives a frame it cannot read."""

CANCEL_FEATURE = "cancel"
"""The feature naming ``cancel``: a client sends one only to a server that announces it;
against any other, Stop and a caller giving up stop the reply locally and send nothing."""

ATTACHMENTS_FEATURE = "attachments"
"""The feature naming ``attachments`` (:mod:`nbchat.attachments`) on a user message and on
a ``tool_response`` (the images a tool's value showed): a client attaches nothing for a
server that does not announce it, and says so in one line for a message (a tool's
images are left out silently: its result describes them)."""

REASONING_FEATURE = "reasoning"
"""The feature naming ``reasoning`` messages (a model's thinking, apart from its answer) and
the ``usage`` and ``truncated`` fields of ``done``: a client that knows none of them reads
``reasoning`` as an unknown message and ignores the fields."""


CONTEXT_FEATURE = "context"
"""The feature naming ``context`` on a user message (what an ``@``-mention described): a client
sends the field only to a server that announces it; to any other, the message's text alone."""


def new_id() -> str:
    """A fresh message id: a random UUID4 in hex."""
    return uuid.uuid4().hex


class WireModel(BaseModel):
    """Base of every wire message: unknown fields are kept, not rejected."""

    model_config = ConfigDict(extra="allow")


# Client to server


class ContextItem(WireModel):
    """One piece of context a user message carries: AG-UI's ``Context``, and what it names."""

    description: str
    """What this is, for a model to interpret (``the notebook variable df``)."""
    value: str
    """The context itself: plain text, redacted, bounded by the client."""
    mention: str | None = None
    """The name the message mentions (``df`` for ``@df``): the panel shows it as a chip."""

    def as_text(self) -> str:
        """The item as a model reads it beside the message: labelled, plain text (the bridge,
        the AI SDK stream)."""
        return f"Context: {self.description}\n{self.value}"


class UserMessage(WireModel):
    """A user's chat message; the server acks it, then streams a reply."""

    type: Literal["message"] = "message"
    id: str | None = Field(default_factory=new_id)
    """Client-chosen id; a resent id is acked again but never answered twice."""
    conversation_id: str | None = None
    """Groups messages into one conversation with its own memory on the server."""
    message: str
    """The text the user typed."""
    attachments: list[Attachment] | None = None
    """Images and texts the user attached (announced by :data:`ATTACHMENTS_FEATURE`)."""
    context: list[ContextItem] | None = None
    """What the message points at (``@df``: df's description), for the model to read beside
    the text; written only to a server that announced ``context``."""

    @property
    def mentions(self) -> tuple[str, ...]:
        """The names its context describes (``("df",)`` for ``@df``): a bubble's chips."""
        return tuple(item.mention for item in self.context or () if item.mention)


class CancelRequest(WireModel):
    """Stop the reply being generated for a conversation."""

    type: Literal["cancel"] = "cancel"
    conversation_id: str | None = None
    id: str | None = None
    """The one message whose reply to stop; without it, every reply of the conversation.

    Added compatibly in protocol v1: a server that does not read it stops the
    conversation's reply.
    """


class ClientToolInfo(WireModel):
    """One function the client offers as a tool, as the server (and a model) sees it."""

    name: str
    """Unique among the client's tools: 1-64 letters, digits, ``_`` or ``-``."""
    description: str = ""
    """What the tool does, for a model choosing one (the function's docstring)."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """The JSON Schema (an ``object`` schema) of the arguments."""


class ToolsDeclaration(WireModel):
    """The client's tools, all of them: sent first on every connection and whenever they change.

    Each declaration replaces the previous one. Sent only to a server whose
    handshake response names ``client-tools`` in ``Nbchat-Features``.
    """

    type: Literal["tools"] = "tools"
    tools: list[ClientToolInfo] = Field(default_factory=list)


class ToolResponse(WireModel):
    """The outcome of one ``tool_request``: sent again after every reconnect until acked."""

    type: Literal["tool_response"] = "tool_response"
    id: str
    """The call id of the request it answers."""
    status: Literal["done", "error"] = "done"
    result: Any = None
    """The function's return value as JSON (bounded), or the one-line error."""
    attachments: list[Attachment] | None = None
    """The images the result showed (a figure), bounded as a message's are; written only to
    a server that announced :data:`ATTACHMENTS_FEATURE`."""


_ClientMessage: TypeAlias = UserMessage | CancelRequest | ToolsDeclaration | ToolResponse
ClientMessage: TypeAlias = Annotated[_ClientMessage, Field(discriminator="type")]


# Server to client


class ServerEvent(WireModel):
    """Fields every server message carries."""

    conversation_id: str | None = None
    reply_to: str | None = None
    """The id of the client message this answers, where the server knows it."""


class AckMessage(ServerEvent):
    """The server accepted a client message: it will not be lost or answered twice."""

    type: Literal["ack"] = "ack"
    id: str | None = None
    duplicate: bool | None = None
    """True when the id was seen before: the reply is sent again from its start."""


class TokenMessage(ServerEvent):
    """A piece of the streamed reply text."""

    type: Literal["token"] = "token"
    response: str


class ReasoningMessage(ServerEvent):
    """A piece of the model's reasoning ("thinking"), streamed apart from the answer's tokens."""

    type: Literal["reasoning"] = "reasoning"
    text: str


class ToolCall(WireModel):
    """One tool invocation: announced as ``running``, resolved as ``done`` or ``error``."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    status: Literal["running", "done", "error"] = "running"
    result: Any = None
    runs_in: Literal["server", "client"] | None = None
    """Where the tool runs: ``client`` for a function of the client (a notebook's);
    None (left out of the wire) means the server, as before the field existed."""

    @field_validator("arguments", mode="before")
    @classmethod
    def _arguments_may_be_json(cls, value: Any) -> Any:
        # OpenAI-style servers send arguments as a JSON string.
        if isinstance(value, str):
            try:
                decoded = json.loads(value) if value.strip() else {}
            except ValueError:
                return {"_raw": value}
            return decoded if isinstance(decoded, dict) else {"_value": decoded}
        return {} if value is None else value


class ToolCallMessage(ServerEvent):
    """Tool calls have started."""

    type: Literal["tool_call"] = "tool_call"
    tool_calls: list[ToolCall]


class ToolResultMessage(ServerEvent):
    """Tool calls have finished, with their results."""

    type: Literal["tool_result"] = "tool_result"
    tool_calls: list[ToolCall]


class Usage(WireModel):
    """Tokens one reply cost, as the model server counted them (every round summed)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class DoneMessage(ServerEvent):
    """The reply is complete."""

    type: Literal["done"] = "done"
    cancelled: bool | None = None
    """True when the reply was cut short by a ``cancel``."""
    usage: Usage | None = None
    """The tokens the reply cost, when the server knows them."""
    truncated: bool | None = None
    """True when the model was cut at its token limit (``finish_reason: "length"``)."""

    @property
    def says(self) -> bool:
        """Whether it says more than that the reply ended: its usage, or that it was cut."""
        return self.usage is not None or bool(self.truncated)


class ErrorInfo(WireModel):
    """What went wrong, as a machine-readable code and a human-readable line."""

    code: str = "error"
    message: str = ""


class ErrorMessage(ServerEvent):
    """The server could not handle a message (or the connection)."""

    type: Literal["error"] = "error"
    error: ErrorInfo

    @field_validator("error", mode="before")
    @classmethod
    def _error_may_be_text(cls, value: Any) -> Any:
        return {"code": "error", "message": value} if isinstance(value, str) else value


class ToolRequest(ServerEvent):
    """Run one of the client's tools; part of the reply it belongs to (``reply_to``).

    Sent only to a client that declared tools. It travels in the reply's log, so
    a resumed reply sends it again: the client runs each call id at most once
    and answers a repeat with the result it kept.
    """

    type: Literal["tool_request"] = "tool_request"
    id: str
    """The call id: the ``id`` of the ``tool_call`` card showing this call."""
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)

    def call(self) -> ToolCall:
        """The request as the :class:`ToolCall` a card (and an approver) shows: running."""
        return ToolCall(id=self.id, name=self.name, arguments=self.arguments, runs_in="client")


class ToolAck(ServerEvent):
    """The server has the ``tool_response`` for call ``id``: the client stops resending it."""

    type: Literal["tool_ack"] = "tool_ack"
    id: str


class UnknownMessage(ServerEvent):
    """A message of a type this client does not know: delivered as is, never a crash."""

    type: str = "unknown"


_KnownServerMessage: TypeAlias = (
    AckMessage
    | TokenMessage
    | ReasoningMessage
    | ToolCallMessage
    | ToolResultMessage
    | DoneMessage
    | ErrorMessage
)
ServerMessage: TypeAlias = _KnownServerMessage | UnknownMessage
"""A message of a reply, as listeners, waiters and transcripts see it."""
ToolControl: TypeAlias = ToolRequest | ToolAck
"""Client-tool messages: handled by the client's session, never handed to listeners."""


def dump(message: WireModel) -> str:
    """Serialise a message to the JSON text of one frame, leaving out unset optional fields."""
    return message.model_dump_json(exclude_none=True)


def encode_frame(message: WireModel) -> bytes:
    """A message as one frame's UTF-8 bytes, whatever a responder wrote in it (see :func:`utf8`)."""
    try:
        return dump(message).encode()
    except ValueError:  # pydantic cannot serialise a lone surrogate: json can
        data = message.model_dump(mode="python", exclude_none=True)
        return utf8(json.dumps(data, ensure_ascii=False))


def utf8(text: str) -> bytes:
    """``text`` as UTF-8, each lone surrogate written ``?``: the one place text is made so."""
    return text.encode("utf-8", "replace")
