"""A custom JSON-over-WebSocket backend, described declaratively, and its translation (pure).

:class:`JsonProtocol` says where things are in a backend's own frames: what
this client sends for a user message (the text's field, the conversation's,
constant fields) and, per value of the frame's kind field, what an incoming
frame is: a text delta, a tool call (whole, or start / arguments / end), a
tool result, the end of a reply, an error, a session id the backend issues
(echoed back in later messages), or nothing to show. Paths are dotted
(``"call.args"``).

:class:`JsonCodec` translates, one client's state: a v1 user message frame
becomes the backend's message (:meth:`JsonCodec.encode`; every other v1 frame
is never sent: None), a backend frame becomes v1 server messages
(:meth:`JsonCodec.decode`) without ``reply_to``, so the session routes them to
the oldest pending message, as for servers written for the TypeScript client.
A frame the protocol does not describe is a :class:`ProtocolError` carrying
the raw frame: one ``error`` event, and the connection goes on.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from .exceptions import ProtocolError
from .protocol import (
    DoneMessage,
    ErrorInfo,
    ErrorMessage,
    ServerMessage,
    TokenMessage,
    ToolCall,
    ToolCallMessage,
    ToolResultMessage,
)

__all__ = ["Codec", "JsonCodec", "JsonProtocol", "ToolCallFields", "ToolResultFields"]


class _Declaration(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolCallFields(_Declaration):
    """Where a tool call's parts are in a frame announcing (part of) it."""

    id: str = "id"
    """Path of the call id: frames of one call share it."""
    name: str | None = "name"
    """Path of the tool's name; None (or absent) in a frame that only adds arguments."""
    arguments: str | None = "arguments"
    """Path of the whole arguments (an object, or its JSON text)."""
    arguments_delta: str | None = None
    """Path of a piece of the arguments' JSON text, appended to what came before."""


class ToolResultFields(_Declaration):
    """Where a tool result's parts are in its frame."""

    id: str = "id"
    """Path of the call id it answers."""
    output: str = "output"
    """Path of the result."""
    name: str | None = None
    """Path of the tool's name, for a result whose call was never announced."""
    error: str | None = None
    """Path of a flag that is true when the tool failed."""


class JsonProtocol(_Declaration):
    """A custom JSON-over-WebSocket backend, described: ``ChatClient(url, protocol=...)``.

    Nothing but user messages is ever sent to it (no cancel, no tool frames),
    and no ack is expected: Stop and timeouts stop locally. Example::

        JsonProtocol(
            event_field="event",
            text_field="prompt", conversation_field="thread",
            text={"delta": "text"},
            tool_call={"tool": {"id": "call.id", "name": "call.name", "arguments": "call.args"}},
            tool_result={"tool_output": {"id": "id", "output": "output"}},
            end=["end"],
            error={"failure": "detail"},
        )
    """

    # What this client sends, one frame per user message.
    text_field: str = "message"
    """Path of the user's text in the outgoing frame."""
    conversation_field: str | None = "conversation_id"
    """Path of the conversation id (or the session id the backend issued); None: not sent."""
    constants: dict[str, Any] = Field(default_factory=dict)
    """Fields sent as they are in every outgoing frame."""

    # What the backend sends: each frame's kind, then what each kind is.
    event_field: str = "type"
    """Path of the field naming an incoming frame's kind."""
    text: dict[str, str] = Field(default_factory=dict)
    """Kind -> path of the text delta it carries."""
    tool_call: dict[str, ToolCallFields] = Field(default_factory=dict)
    """Kind -> where the (part of a) tool call it carries is."""
    tool_end: dict[str, str] = Field(default_factory=dict)
    """Kind -> path of the id of the call whose arguments are complete."""
    tool_result: dict[str, ToolResultFields] = Field(default_factory=dict)
    """Kind -> where the tool result it carries is."""
    end: list[str] = Field(default_factory=list)
    """Kinds that end a reply."""
    error: dict[str, str] = Field(default_factory=dict)
    """Kind -> path of the error's message (the error ends the reply)."""
    session: dict[str, str] = Field(default_factory=dict)
    """Kind -> path of a session id the backend issues: sent back in ``conversation_field``."""
    ignore: list[str] = Field(default_factory=list)
    """Kinds described as carrying nothing to show (a summary the deltas already gave)."""

    def codec(self) -> JsonCodec:
        """A fresh translator for one client."""
        return JsonCodec(self)


_MISSING = object()


def _get(data: Any, path: str | None) -> Any:
    """The value at a dotted path, or ``_MISSING``."""
    if path is None:
        return _MISSING
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return _MISSING
        data = data[key]
    return data


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[last] = value


def _arguments(value: Any) -> dict[str, Any]:
    """Arguments as an object: JSON text decoded (``ToolCall`` keeps what is not JSON)."""
    return ToolCall(id="", name="", arguments=value).arguments


class Codec(Protocol):
    """Translates frames for a backend that does not speak v1 (a :class:`JsonProtocol`'s)."""

    def encode(self, frame: str) -> str | None:
        """The backend's frame for a v1 client frame; None: it is not sent."""

    def decode(self, raw: str | bytes) -> list[ServerMessage]:
        """The v1 server messages a backend frame stands for; ProtocolError if none."""


class JsonCodec:
    """One client's translation between protocol v1 and a :class:`JsonProtocol` backend."""

    def __init__(self, protocol: JsonProtocol) -> None:
        self.protocol = protocol
        self.session_id: str | None = None
        """The last session id the backend issued, echoed back in later messages."""
        self._calls: dict[str, ToolCall] = {}
        self._deltas: dict[str, list[str]] = {}

    def encode(self, frame: str) -> str | None:
        """The backend's frame for a v1 client frame; None for anything but a user message."""
        data = json.loads(frame)
        if data.get("type") != "message":
            return None
        protocol = self.protocol
        out: dict[str, Any] = json.loads(json.dumps(protocol.constants))
        _put(out, protocol.text_field, data.get("message", ""))
        if protocol.conversation_field is not None:
            # A backend that issues session ids gets its own back (None until it issued one).
            conversation = self.session_id if protocol.session else data.get("conversation_id")
            _put(out, protocol.conversation_field, conversation)
        return json.dumps(out, ensure_ascii=False)

    def decode(self, raw: str | bytes) -> list[ServerMessage]:
        """The v1 server messages one backend frame stands for (none for a session id).

        Raises :class:`ProtocolError` (carrying ``raw``) for a frame the protocol
        does not describe.
        """
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ProtocolError(f"frame is not valid JSON ({exc}): {_preview(raw)}", raw) from exc
        protocol = self.protocol
        kind = _get(data, protocol.event_field)
        if not isinstance(kind, str):
            raise ProtocolError(
                f"frame has no {protocol.event_field!r} naming its kind: {_preview(raw)}", raw
            )
        try:
            return self._translate(kind, data)
        except _Undescribed as exc:
            raise ProtocolError(f"{kind!r} frame {exc}: {_preview(raw)}", raw) from None

    # Private methods

    def _translate(self, kind: str, data: dict[str, Any]) -> list[ServerMessage]:
        protocol = self.protocol
        if kind in protocol.text:
            text = _required(data, protocol.text[kind])
            return [TokenMessage(response=text if isinstance(text, str) else json.dumps(text))]
        if kind in protocol.tool_call:
            return self._call(data, protocol.tool_call[kind])
        if kind in protocol.tool_end:
            call = self._finish(str(_required(data, protocol.tool_end[kind])))
            return [ToolCallMessage(tool_calls=[call])] if call is not None else []
        if kind in protocol.tool_result:
            return [self._result(data, protocol.tool_result[kind])]
        if kind in protocol.end:
            self._calls.clear()
            self._deltas.clear()
            return [DoneMessage()]
        if kind in protocol.error:
            message = _get(data, protocol.error[kind])
            text = "" if message is _MISSING else str(message)
            self._calls.clear()
            self._deltas.clear()
            return [ErrorMessage(error=ErrorInfo(code="error", message=text))]
        if kind in protocol.session:
            self.session_id = str(_required(data, protocol.session[kind]))
            return []
        if kind in protocol.ignore:
            return []
        raise _Undescribed("is not described by this JsonProtocol")

    def _call(self, data: dict[str, Any], fields: ToolCallFields) -> list[ServerMessage]:
        call_id = str(_required(data, fields.id))
        known = self._calls.get(call_id)
        name = _get(data, fields.name)
        if known is None and not (isinstance(name, str) and name):
            raise _Undescribed(f"adds to a tool call {call_id!r} never announced")
        call = known if known is not None else ToolCall(id=call_id, name=str(name))
        arguments = _get(data, fields.arguments)
        if arguments is not _MISSING and arguments is not None:
            call = call.model_copy(update={"arguments": _arguments(arguments)})
        delta = _get(data, fields.arguments_delta)
        if isinstance(delta, str) and delta:
            self._deltas.setdefault(call_id, []).append(delta)
        self._calls[call_id] = call
        return [ToolCallMessage(tool_calls=[call])] if call is not known else []

    def _finish(self, call_id: str) -> ToolCall | None:
        """The call with its streamed arguments joined, once they are complete."""
        call = self._calls.get(call_id)
        pieces = self._deltas.pop(call_id, None)
        if call is not None and pieces:
            call = call.model_copy(update={"arguments": _arguments("".join(pieces))})
            self._calls[call_id] = call
        return call

    def _result(self, data: dict[str, Any], fields: ToolResultFields) -> ServerMessage:
        call_id = str(_required(data, fields.id))
        self._finish(call_id)
        call = self._calls.pop(call_id, None)
        if call is None:
            name = _get(data, fields.name)
            call = ToolCall(id=call_id, name="" if name is _MISSING else str(name))
        output = _get(data, fields.output)
        failed = _get(data, fields.error)
        status = "error" if failed is not _MISSING and bool(failed) else "done"
        return ToolResultMessage(
            tool_calls=[
                call.model_copy(
                    update={"status": status, "result": None if output is _MISSING else output}
                )
            ]
        )


class _Undescribed(Exception):
    """The frame is of a described kind but not as described."""


def _required(data: dict[str, Any], path: str) -> Any:
    value = _get(data, path)
    if value is _MISSING:
        raise _Undescribed(f"has no {path!r}")
    return value


def _preview(raw: str | bytes, limit: int = 80) -> str:
    text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    return repr(text if len(text) <= limit else text[:limit] + "...")
