"""Wire protocol v1: the JSON messages exchanged over the WebSocket (see docs/protocol.md).

Pure code, no I/O. Every message is a pydantic model tagged by ``type``; the two
directions each have a union and a ``TypeAdapter`` built once at import.

Parsing is strict first and lenient second: a well-formed frame goes through
``TypeAdapter.validate_json`` (the fast path, about as fast as ``json.loads``);
anything else is decoded, typed by its fields when ``type`` is missing, and an
unknown ``type`` becomes an :class:`UnknownMessage` rather than an error.
Unknown fields are kept everywhere (``extra="allow"``) so nothing a newer
server sends is lost.

A lone surrogate (legal in a JSON escape, never in UTF-8) is decided here once:
refused at parse time in a client frame (:class:`LoneSurrogateError`), written
as ``?`` by :func:`encode_frame` and :func:`utf8` rather than failing a reply.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from .exceptions import ProtocolError

__all__ = [
    "CLIENT_ID_HEADER",
    "CLIENT_TOOLS_FEATURE",
    "FEATURES_HEADER",
    "MAX_ID_LENGTH",
    "PROTOCOL_VERSION",
    "AckMessage",
    "CancelRequest",
    "ClientMessage",
    "ClientToolInfo",
    "DoneMessage",
    "ErrorInfo",
    "ErrorMessage",
    "LoneSurrogateError",
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
    "UserMessage",
    "WireModel",
    "as_user_message",
    "dump",
    "encode_frame",
    "new_id",
    "parse_client_message",
    "parse_server_frame",
    "parse_server_message",
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

CLIENT_TOOLS_FEATURE = "client-tools"
"""The feature naming client tools (``tools``, ``tool_request``, ``tool_response``,
``tool_ack``): a client sends ``tools`` only to a server that announces it, so a
server that knows nothing of client tools never receives a frame it cannot read."""


def new_id() -> str:
    """A fresh message id: a random UUID4 in hex."""
    return uuid.uuid4().hex


class WireModel(BaseModel):
    """Base of every wire message: unknown fields are kept, not rejected."""

    model_config = ConfigDict(extra="allow")


# Client to server


class UserMessage(WireModel):
    """A user's chat message; the server acks it, then streams a reply."""

    type: Literal["message"] = "message"
    id: str | None = Field(default_factory=new_id)
    """Client-chosen id; a resent id is acked again but never answered twice."""
    conversation_id: str | None = None
    """Groups messages into one conversation with its own memory on the server."""
    message: str
    """The text the user typed."""


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


_ClientMessage: TypeAlias = UserMessage | CancelRequest | ToolsDeclaration | ToolResponse
ClientMessage: TypeAlias = Annotated[_ClientMessage, Field(discriminator="type")]
_client_adapter: TypeAdapter[_ClientMessage] = TypeAdapter(ClientMessage)


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


class DoneMessage(ServerEvent):
    """The reply is complete."""

    type: Literal["done"] = "done"
    cancelled: bool | None = None
    """True when the reply was cut short by a ``cancel``."""


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
    AckMessage | TokenMessage | ToolCallMessage | ToolResultMessage | DoneMessage | ErrorMessage
)
ServerMessage: TypeAlias = _KnownServerMessage | UnknownMessage
"""A message of a reply, as listeners, waiters and transcripts see it."""
ToolControl: TypeAlias = ToolRequest | ToolAck
"""Client-tool messages: handled by the client's session, never handed to listeners."""
_server_adapter: TypeAdapter[_KnownServerMessage | ToolControl] = TypeAdapter(
    Annotated[_KnownServerMessage | ToolControl, Field(discriminator="type")]
)
_KNOWN_SERVER_TYPES = frozenset(
    {"ack", "token", "tool_call", "tool_result", "done", "error", "tool_request", "tool_ack"},
)
_CONTROL_TYPES = (ToolRequest, ToolAck)


def _infer_server_type(data: dict[str, Any]) -> str:
    """Type a message that has no ``type`` by its fields, as older servers send them."""
    if "tool_calls" in data:
        calls = data["tool_calls"]
        finished = (
            isinstance(calls, list)
            and calls
            and all(isinstance(c, dict) and c.get("status") in ("done", "error") for c in calls)
        )
        return "tool_result" if finished else "tool_call"
    if "response" in data:
        return "token"
    if data.get("done") is True:
        return "done"
    if "error" in data:
        return "error"
    return "unknown"


def _decode_object(raw: str | bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ProtocolError(f"frame is not valid JSON ({exc}): {_preview(raw)}", raw) from exc
    if not isinstance(data, dict):
        raise ProtocolError(
            f"frame is JSON but not an object ({type(data).__name__}): {_preview(raw)}", raw
        )
    return data


def parse_server_message(raw: str | bytes) -> ServerMessage:
    """Parse one server frame; raise :class:`ProtocolError` (carrying ``raw``) if impossible.

    A client-tool message (``tool_request``, ``tool_ack``) is an
    :class:`UnknownMessage` here, as for a client that knows nothing of them;
    the client's connection reads frames with :func:`parse_server_frame`.
    """
    message = parse_server_frame(raw)
    if isinstance(message, _CONTROL_TYPES):
        return UnknownMessage.model_validate(message.model_dump(exclude_none=True))
    return message


def parse_server_frame(raw: str | bytes) -> ServerMessage | ToolControl:
    """Parse one server frame, client-tool messages included; ProtocolError if impossible."""
    try:
        return _server_adapter.validate_json(raw)
    except ValidationError:
        pass  # not the strict shape: take the lenient path below
    data = _decode_object(raw)
    kind = data.get("type")
    if not isinstance(kind, str):
        kind = _infer_server_type(data)
        data = {**data, "type": kind}
    try:
        if kind in _KNOWN_SERVER_TYPES:
            return _server_adapter.validate_python(data)
        return UnknownMessage.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError(
            f"{kind!r} message does not match protocol v1 ({_first_error(exc)}): {_preview(raw)}",
            raw,
        ) from exc


class LoneSurrogateError(ProtocolError):
    """A client frame with a lone surrogate in a field the server reads: it cannot be UTF-8.

    A message's or cancel's valid ids are kept, to address the refusal to it.
    """

    message_id: str | None = None
    conversation_id: str | None = None


def parse_client_message(
    raw: str | bytes,
) -> UserMessage | CancelRequest | ToolsDeclaration | ToolResponse:
    """Parse one client frame; ``type`` defaults to ``message`` (the TypeScript client's shape).

    Raises :class:`ProtocolError`, :class:`LoneSurrogateError` if a field cannot be UTF-8.
    """
    try:
        message = _client_adapter.validate_json(raw)
    except ValidationError:
        data = _decode_object(raw)
        if "type" not in data:
            data = {**data, "type": "message", "id": data.get("id")}
        try:
            message = _client_adapter.validate_python(data)
        except ValidationError as exc:
            raise ProtocolError(
                f"client message does not match protocol v1 ({_first_error(exc)}): {_preview(raw)}",
                raw,
            ) from exc
    _refuse_lone_surrogates(message, raw)
    return message


def _refuse_lone_surrogates(message: WireModel, raw: str | bytes) -> None:
    """Refuse a declared field (nested values too) that cannot be UTF-8; linear in its size.

    Unknown top-level fields are not read by the server: they may hold anything.
    """
    bad = next((name for name in type(message).model_fields if not _encodable(message, name)), None)
    if bad is None:
        return
    error = LoneSurrogateError(
        f"field {bad!r} holds a lone surrogate (\\ud800-\\udfff): send valid Unicode", raw
    )
    if isinstance(message, UserMessage | CancelRequest):  # a tool message's id is a call's
        error.message_id = message.id if _encodable(message, "id") else None
        error.conversation_id = message.conversation_id
        if not _encodable(message, "conversation_id"):
            error.conversation_id = None
    raise error


def _encodable(message: WireModel, name: str) -> bool:
    """Whether every string in a field (models, dicts and lists walked) can be UTF-8."""
    stack = [getattr(message, name)]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and not item.isascii():
            try:
                item.encode()
            except UnicodeEncodeError:
                return False
        elif isinstance(item, BaseModel):
            stack.extend([*item.__dict__.values(), *(item.model_extra or {}).values()])
        elif isinstance(item, dict):
            stack.extend([*item, *item.values()])
        elif isinstance(item, list):
            stack.extend(item)
    return True


def as_user_message(
    message: str | UserMessage | Mapping[str, Any], conversation_id: str
) -> UserMessage:
    """What a caller may send (text, a mapping shaped like the wire, a model) as a UserMessage.

    The result always has an id; its conversation is ``conversation_id`` unless
    the message named one. Raises :class:`ProtocolError` for what is not a
    user message (a cancel, a non-serialisable mapping, a wrong type).
    """
    if isinstance(message, str):
        return UserMessage(message=message, conversation_id=conversation_id)
    if isinstance(message, UserMessage):
        parsed = message
    elif isinstance(message, Mapping):
        try:
            text = json.dumps(dict(message))
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"message is not JSON-serialisable: {exc}") from exc
        decoded = parse_client_message(text)
        if not isinstance(decoded, UserMessage):
            raise ProtocolError("send a cancel with client.cancel(), not send()")
        parsed = decoded
    else:
        raise ProtocolError(
            f"cannot send a {type(message).__name__}: send text, a mapping or a UserMessage"
        )
    updates: dict[str, Any] = {}
    if parsed.id is None:
        updates["id"] = new_id()
    if parsed.conversation_id is None:
        updates["conversation_id"] = conversation_id
    return parsed.model_copy(update=updates) if updates else parsed


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


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in err["loc"]) or "message"
    return f"{where}: {err['msg']}"


def _preview(raw: str | bytes, limit: int = 80) -> str:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")
