"""Frames -> protocol models: strict first, lenient second; lone surrogates refused (pure).

A well-formed frame goes through the ``TypeAdapter``'s ``validate_json`` (the
fast path, about as fast as ``json.loads``); anything else is decoded, typed
by its fields when ``type`` is missing, and an unknown ``type`` becomes an
:class:`~nbchat.protocol.UnknownMessage` rather than an error. A client frame
holding a lone surrogate in a field the server reads is refused here, once
(:class:`LoneSurrogateError`). The models themselves are in
:mod:`nbchat.protocol`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, TypeAlias

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from .exceptions import ProtocolError
from .protocol import (
    AckMessage,
    CancelRequest,
    ClientMessage,
    DoneMessage,
    ErrorMessage,
    ReasoningMessage,
    ServerMessage,
    TokenMessage,
    ToolAck,
    ToolCallMessage,
    ToolControl,
    ToolRequest,
    ToolResponse,
    ToolResultMessage,
    ToolsDeclaration,
    UnknownMessage,
    UserMessage,
    WireModel,
    new_id,
)

__all__ = [
    "LoneSurrogateError",
    "as_user_message",
    "parse_client_message",
    "parse_server_frame",
    "parse_server_message",
]

_KnownServerMessage: TypeAlias = (
    AckMessage
    | TokenMessage
    | ReasoningMessage
    | ToolCallMessage
    | ToolResultMessage
    | DoneMessage
    | ErrorMessage
)
_ClientMessage: TypeAlias = UserMessage | CancelRequest | ToolsDeclaration | ToolResponse

_client_adapter: TypeAdapter[_ClientMessage] = TypeAdapter(ClientMessage)


_server_adapter: TypeAdapter[_KnownServerMessage | ToolControl] = TypeAdapter(
    Annotated[_KnownServerMessage | ToolControl, Field(discriminator="type")]
)
_validate_server_json = _server_adapter.validator.validate_json
"""The compiled validator itself: every frame takes this path, and ``TypeAdapter``'s Python
wrapper around it cost a tenth of the client's whole per-frame time."""


_KNOWN_SERVER_TYPES = frozenset(
    {
        "ack",
        "token",
        "reasoning",
        "tool_call",
        "tool_result",
        "done",
        "error",
        "tool_request",
        "tool_ack",
    },
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
        return _validate_server_json(raw)  # type: ignore[no-any-return]
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


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in err["loc"]) or "message"
    return f"{where}: {err['msg']}"


def _preview(raw: str | bytes, limit: int = 80) -> str:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")
