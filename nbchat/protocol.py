"""Wire protocol v1: the JSON messages exchanged over the WebSocket (see docs/protocol.md).

Pure code, no I/O. Every message is a pydantic model tagged by ``type``; the two
directions each have a union and a ``TypeAdapter`` built once at import.

Parsing is strict first and lenient second: a well-formed frame goes through
``TypeAdapter.validate_json`` (the fast path, about as fast as ``json.loads``);
anything else is decoded, typed by its fields when ``type`` is missing, and an
unknown ``type`` becomes an :class:`UnknownMessage` rather than an error.
Unknown fields are kept everywhere (``extra="allow"``) so nothing a newer
server sends is lost.
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
    "PROTOCOL_VERSION",
    "AckMessage",
    "CancelRequest",
    "ClientMessage",
    "DoneMessage",
    "ErrorInfo",
    "ErrorMessage",
    "ServerMessage",
    "TokenMessage",
    "ToolCall",
    "ToolCallMessage",
    "ToolResultMessage",
    "UnknownMessage",
    "UserMessage",
    "WireModel",
    "as_user_message",
    "dump",
    "new_id",
    "parse_client_message",
    "parse_server_message",
]

PROTOCOL_VERSION = 1

CLIENT_ID_HEADER = "Nbchat-Client"
"""Handshake header carrying a client's identity: a random secret that survives reconnects.

The server scopes message ids, conversations, resume and cancel to it. A
client that sends none (a browser, the TypeScript client) is scoped to its
connection. Like every header, it is never recorded.
"""


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


ClientMessage: TypeAlias = Annotated[UserMessage | CancelRequest, Field(discriminator="type")]
_client_adapter: TypeAdapter[UserMessage | CancelRequest] = TypeAdapter(ClientMessage)


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


class UnknownMessage(ServerEvent):
    """A message of a type this client does not know: delivered as is, never a crash."""

    type: str = "unknown"


_KnownServerMessage: TypeAlias = (
    AckMessage | TokenMessage | ToolCallMessage | ToolResultMessage | DoneMessage | ErrorMessage
)
ServerMessage: TypeAlias = _KnownServerMessage | UnknownMessage
_server_adapter: TypeAdapter[_KnownServerMessage] = TypeAdapter(
    Annotated[_KnownServerMessage, Field(discriminator="type")]
)
_KNOWN_SERVER_TYPES = frozenset(
    {"ack", "token", "tool_call", "tool_result", "done", "error"},
)


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
    """Parse one server frame; raise :class:`ProtocolError` (carrying ``raw``) if impossible."""
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


def parse_client_message(raw: str | bytes) -> UserMessage | CancelRequest:
    """Parse one client frame; ``type`` defaults to ``message`` (the TypeScript client's shape)."""
    try:
        return _client_adapter.validate_json(raw)
    except ValidationError:
        pass
    data = _decode_object(raw)
    if "type" not in data:
        data = {**data, "type": "message", "id": data.get("id")}
    try:
        return _client_adapter.validate_python(data)
    except ValidationError as exc:
        raise ProtocolError(
            f"client message does not match protocol v1 ({_first_error(exc)}): {_preview(raw)}",
            raw,
        ) from exc


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


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in err["loc"]) or "message"
    return f"{where}: {err['msg']}"


def _preview(raw: str | bytes, limit: int = 80) -> str:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")
